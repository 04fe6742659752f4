package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/safehttp"
)

// fakeEnv is one in-process server playing the upstream MCP server (resource server) and its
// authorization server, for the cases a real server cannot produce. Handlers are added after the
// server starts, so documents can name the server's own URL.
type fakeEnv struct {
	t    *testing.T
	mux  *http.ServeMux
	srv  *httptest.Server
	base string

	mu   sync.Mutex
	hits map[string]int
}

func newFakeEnv(t *testing.T) *fakeEnv {
	t.Helper()
	f := &fakeEnv{t: t, mux: http.NewServeMux(), hits: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits[r.URL.Path]++
		f.mu.Unlock()
		f.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	f.base = f.srv.URL
	return f
}

func (f *fakeEnv) hit(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

func (f *fakeEnv) json(path string, v any) {
	f.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	})
}

func (f *fakeEnv) raw(path, body string) {
	f.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	})
}

// prm serves protected-resource metadata at path.
func (f *fakeEnv) prm(path, resource string, servers ...string) {
	f.json(path, map[string]any{"resource": resource, "authorization_servers": servers, "scopes_supported": []string{"mcp:read", "mcp:write"}})
}

// asDoc is a valid RFC 8414 document for issuer whose endpoints live on this server.
func (f *fakeEnv) asDoc(issuer string, mods ...func(map[string]any)) map[string]any {
	m := map[string]any{
		"issuer":                           issuer,
		"authorization_endpoint":           f.base + "/authorize",
		"token_endpoint":                   f.base + "/token",
		"registration_endpoint":            f.base + "/register",
		"revocation_endpoint":              f.base + "/revoke",
		"response_types_supported":         []string{"code"},
		"code_challenge_methods_supported": []string{"S256"},
		"scopes_supported":                 []string{"mcp:read", "mcp:write", "offline_access"},
	}
	for _, mod := range mods {
		mod(m)
	}
	return m
}

// standard sets up the common case: PRM by path insertion, AS at the root issuer (RFC 8414).
func (f *fakeEnv) standard() {
	f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", f.base)
	f.json("/.well-known/oauth-authorization-server", f.asDoc(f.base))
}

func (f *fakeEnv) upstream() Upstream {
	return Upstream{ID: "linear", URL: f.base + "/mcp", DisplayName: "Linear"}
}

func (f *fakeEnv) engine(mods ...func(*Options)) *Engine {
	allow, err := safehttp.ParseAllowList("127.0.0.1")
	if err != nil {
		f.t.Fatal(err)
	}
	o := Options{Allow: allow}
	for _, m := range mods {
		m(&o)
	}
	return New(o)
}

var httpsEndpoints = Endpoints{PublicURL: "https://gw.example.com", BasePath: "/__mcpgate"}

// wantCode asserts err is an *Error with code and bucket and returns it.
func wantCode(t *testing.T, err error, code string, bucket Bucket) *Error {
	t.Helper()
	var ue *Error
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *upstream.Error %s", err, code)
	}
	if ue.Code != code || ue.Bucket != bucket {
		t.Fatalf("err = %v\n got code %q bucket %q, want %q %q", ue, ue.Code, ue.Bucket, code, bucket)
	}
	return ue
}

func discover(t *testing.T, e *Engine, up Upstream, hint string) *Discovery {
	t.Helper()
	d, err := e.Discover(context.Background(), up, hint)
	if err != nil {
		t.Fatalf("discover: %v\ntrace: %s", err, traceString(d))
	}
	return d
}

func traceString(d *Discovery) string {
	if d == nil {
		return "(none)"
	}
	var b strings.Builder
	for _, s := range d.Trace {
		b.WriteString("\n  " + s.Phase + " " + s.Source + " " + s.URL + " → " + string(s.Outcome) + " " + s.Detail)
	}
	return b.String()
}

// clock is a settable clock for cache expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
