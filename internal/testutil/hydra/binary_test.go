package hydra

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBinary covers where the Hydra binary comes from, except the build
// itself (minutes on a cold cache; CI runs test/tools/build-hydra.sh).
func TestBinary(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "present", "hydra")
	if err := os.MkdirAll(filepath.Dir(present), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(present, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")

	tests := []struct {
		name     string
		env      map[string]string
		want     string
		wantErr  string
		wantSkip bool
	}{
		{
			name: "env names an existing binary",
			env:  map[string]string{EnvBinary: present, "CI": "true", EnvToolsDir: empty},
			want: present,
		},
		{
			name:    "env names a missing binary",
			env:     map[string]string{EnvBinary: filepath.Join(empty, "nope")},
			wantErr: EnvBinary + "=",
		},
		{
			name: "CI uses the cache",
			env:  map[string]string{EnvBinary: "", "CI": "true", EnvToolsDir: filepath.Dir(present)},
			want: present,
		},
		{
			name:    "CI fails without the cache",
			env:     map[string]string{EnvBinary: "", "CI": "true", EnvToolsDir: empty},
			wantErr: "run test/tools/build-hydra.sh before the tests",
		},
		{
			name: "build off uses the cache",
			env:  map[string]string{EnvBinary: "", "CI": "", EnvBuild: "0", EnvToolsDir: filepath.Dir(present)},
			want: present,
		},
		{
			name:     "build off skips without the cache",
			env:      map[string]string{EnvBinary: "", "CI": "", EnvBuild: "0", EnvToolsDir: empty},
			wantErr:  "MCPGATE_TEST_HYDRA_BUILD=0",
			wantSkip: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got, err := Binary(t.Logf)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if errors.Is(err, ErrNoBinary) != tt.wantSkip {
					t.Fatalf("errors.Is(err, ErrNoBinary) = %v, want %v", !tt.wantSkip, tt.wantSkip)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Binary() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestHydraDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
	}{
		{"1h", "3600s"}, {"2s", "2s"}, {"1500ms", "1500ms"},
	} {
		d, err := time.ParseDuration(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := hydraDuration(d); got != tt.want {
			t.Errorf("hydraDuration(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
