package pgtest

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestMissingPostgres runs TestUsesDatabase in a child process with no PostgreSQL to be found: a local
// run skips with a message naming what to install, a CI run fails.
func TestMissingPostgres(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ci       string
		wantFail bool
		want     string
	}{
		{"local skips", "", false, "SKIP"},
		{"CI fails", "true", true, "PostgreSQL is required in CI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestUsesDatabase$", "-test.v")
			cmd.Env = append(os.Environ(), BinEnv+"=/nonexistent", "CI="+tc.ci, "PGTEST_CHILD=1")
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if failed := errors.As(err, &ee); failed != tc.wantFail {
				t.Fatalf("child failed=%v, want %v:\n%s", failed, tc.wantFail, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("child output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}

func TestUsesDatabase(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") != "1" {
		t.Skip("run by TestMissingPostgres")
	}
	NewDatabase(t)
}

func TestDatabaseRoundTrip(t *testing.T) {
	url := NewDatabase(t)
	other := NewDatabase(t)
	if url == other {
		t.Fatal("two tests share a database")
	}
	if dump := Dump(t, url); !strings.Contains(string(dump), "PostgreSQL database dump") {
		t.Fatalf("dump: %.200s", dump)
	}
}
