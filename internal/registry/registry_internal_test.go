package registry

import (
	"regexp"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
)

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		name, setting, base string
		want                string
		on                  bool
		err                 string
	}{
		{name: "default", base: "/__mcpgate", want: "/__mcpgate/registry", on: true},
		{name: "default under the root base path", base: "/", want: "/registry", on: true},
		{name: "off", setting: "off", base: "/__mcpgate"},
		{name: "moved", setting: "/__zuplo/mcp-registry", base: "/__mcpgate", want: "/__zuplo/mcp-registry", on: true},
		{name: "trailing slash", setting: "/reg/", want: "/reg", on: true},
		{name: "root", setting: "/", want: "", on: true},
		{name: "relative", setting: "registry", err: `must be an absolute path (/…) or "off", got "registry"`},
		{name: "wildcard", setting: "/r/{x}", err: `must be a plain path without wildcards, query, '//', '.' or '..', got "/r/{x}"`},
		{name: "dot dot", setting: "/r/../s", err: `must be a plain path without wildcards, query, '//', '.' or '..', got "/r/../s"`},
		{name: "well-known", setting: "/.well-known/registry", err: `must not be under /.well-known (the OAuth metadata documents live there), got "/.well-known/registry"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, on, err := Path(tc.setting, tc.base)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Path(%q) error = %v, want %q", tc.setting, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want || on != tc.on {
				t.Errorf("Path(%q, %q) = %q, %v, %v; want %q, %v", tc.setting, tc.base, got, on, err, tc.want, tc.on)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.3": "1.2.3", "2.1.0-alpha": "2.1.0-alpha", "1": "1", " 1.0.0 ": "1.0.0",
		"": "0.0.0", "^1.2.3": "0.0.0", "~1.2": "0.0.0", ">=1.0.0": "0.0.0", "1.x": "0.0.0", "1.*": "0.0.0",
		"*": "0.0.0", "1.0.0 - 2.0.0": "0.0.0", "1 || 2": "0.0.0", "X": "0.0.0",
	} {
		if got := version(in); got != want {
			t.Errorf("version(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNamespace(t *testing.T) {
	for in, want := range map[string]string{
		"gateway.example.com":      "com.example.gateway",
		"Gateway.Example.COM:8443": "com.example.gateway",
		"localhost:9000":           "localhost",
		"127.0.0.1:9000":           "1.0.0.127",
		"[::1]:9000":               "--1",
		"example.com.":             "com.example",
	} {
		if got := namespace(in); got != want {
			t.Errorf("namespace(%q) = %q, want %q", in, got, want)
		}
	}
}

// namePattern is the schema's pattern of a server name.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$`)

func TestServerName(t *testing.T) {
	long := strings.Repeat("x", 300)
	a, b := serverName("com.example", long+"a"), serverName("com.example", long+"b")
	if len(a) != MaxNameLength || a == b || !strings.HasPrefix(a, "com.example/xxx") {
		t.Errorf("long names %q and %q: want %d bytes each and distinct", a, b, MaxNameLength)
	}
	ns := strings.Repeat("label.", 40) + "com"
	if got := serverName(ns, "op"); len(got) > MaxNameLength || !namePattern.MatchString(got) || !strings.Contains(got, "/op-") {
		t.Errorf("long namespace: %q (%d bytes)", got, len(got))
	}
	if got := serverName("com.example", "op"); got != "com.example/op" {
		t.Errorf("short name = %q", got)
	}
	if got := sanitize("my op/ä:1"); got != "my-op---1" {
		t.Errorf("sanitize = %q", got)
	}
}

func TestClamp(t *testing.T) {
	s := strings.Repeat("ü", 150)
	if got := clamp(s); got != strings.Repeat("ü", MaxDescription) {
		t.Errorf("clamp cut %d code points, want %d", len([]rune(got)), MaxDescription)
	}
	if got := clamp("short"); got != "short" {
		t.Errorf("clamp(short) = %q", got)
	}
}

func TestShadowed(t *testing.T) {
	p := &config.Project{Routes: []*config.Route{{Path: "/v0.1/servers"}, {Path: "/mcp/a"}, {Path: "/reg/v0.1/x"}}}
	for prefix, want := range map[string]string{"": "/v0.1/servers", "/reg": "/reg/v0.1/x", "/__mcpgate/registry": ""} {
		if got := strings.Join(Shadowed(p, prefix), ","); got != want {
			t.Errorf("Shadowed(%q) = %q, want %q", prefix, got, want)
		}
	}
}
