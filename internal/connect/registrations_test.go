package connect

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mcpgate/mcpgate/internal/safehttp"
	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/upstream"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// fakeAS is an in-process authorization server, also serving the protected resource's metadata:
// protected-resource metadata by path insertion for <base>/mcp (RFC 9728), RFC 8414 metadata at
// the root issuer, and a dynamic client registration endpoint (RFC 7591) that answers like Ory
// Hydra v2 (201, a client_secret, client-1, client-2, … in order) and counts its calls.
type fakeAS struct {
	srv *httptest.Server

	mu            sync.Mutex
	registrations int
}

func newFakeAS(t *testing.T) *fakeAS {
	t.Helper()
	f := &fakeAS{}
	mux := http.NewServeMux()
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	base := f.srv.URL
	serveJSON := func(path string, v any) {
		mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(v)
		})
	}
	serveJSON("/.well-known/oauth-protected-resource/mcp", map[string]any{
		"resource": base + "/mcp", "authorization_servers": []string{base}, "scopes_supported": []string{"mcp:read", "mcp:write"}})
	serveJSON("/.well-known/oauth-authorization-server", map[string]any{
		"issuer":                           base,
		"authorization_endpoint":           base + "/authorize",
		"token_endpoint":                   base + "/token",
		"registration_endpoint":            base + "/register",
		"revocation_endpoint":              base + "/revoke",
		"response_types_supported":         []string{"code"},
		"code_challenge_methods_supported": []string{"S256"},
		"scopes_supported":                 []string{"mcp:read", "mcp:write", "offline_access"},
	})
	mux.HandleFunc("/register", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil {
			t.Errorf("registration request: %s, body not JSON", r.Method)
		}
		f.mu.Lock()
		f.registrations++
		id := fmt.Sprintf("client-%d", f.registrations)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, `{"client_id":%q,"client_secret":"dcr-secret","client_secret_expires_at":0,"client_id_issued_at":1700000000,
			"jwks":{"keys":[]},"token_endpoint_auth_method":"client_secret_basic","grant_types":["authorization_code","refresh_token"],
			"registration_access_token":"ory_at_xyz","metadata":{},"skip_consent":false,"created_at":"2026-01-01T00:00:00Z"}`, id)
	})
	return f
}

// registered is how many registrations the fake AS has answered.
func (f *fakeAS) registered() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.registrations
}

// TestStoreRegistrations_SQLite_FakeAS caches DCR registrations (made at an in-process fake AS) in
// the real SQLite store: a second engine (another instance, or a restart) reuses the registration,
// secret included, and Invalidate drops it.
func TestStoreRegistrations_SQLite_FakeAS(t *testing.T) {
	ctx := context.Background()
	key, err := vault.GenerateKey("k1", func() string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ring, err := vault.ParseRing(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db.sqlite"), sqlstore.Options{Ring: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	f := newFakeAS(t)
	up := upstream.Upstream{ID: "linear", URL: f.srv.URL + "/mcp", DisplayName: "Linear", Registration: upstream.RegistrationConfig{Mode: upstream.ModeDCR}}
	ep := upstream.Endpoints{PublicURL: "https://gw.example.com", BasePath: "/__mcpgate"}
	allow, err := safehttp.ParseAllowList("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	engine := func() *upstream.Engine {
		return upstream.New(upstream.Options{Allow: allow, Registrations: storeRegistrations{st}})
	}

	e1 := engine()
	d, err := e1.Discover(ctx, up, "")
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	c1, err := e1.Client(ctx, up, d, ep, nil)
	if err != nil {
		t.Fatal(err)
	}
	e2 := engine()
	c2, err := e2.Client(ctx, up, d, ep, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *c1 != *c2 || c2.ClientSecret.Reveal() != "dcr-secret" || f.registered() != 1 {
		t.Fatalf("second instance: %+v vs %+v, %d registrations", c1, c2, f.registered())
	}
	if err := e2.Invalidate(ctx, up.ID); err != nil {
		t.Fatal(err)
	}
	c3, err := e1.Client(ctx, up, d, ep, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c3.ClientID != "client-2" || f.registered() != 2 {
		t.Errorf("after Invalidate: %+v, %d registrations", c3, f.registered())
	}
}
