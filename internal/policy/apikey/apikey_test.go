package apikey_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/policy/apikey"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/testutil/authtest"
)

// createKey stores a key the way `mcpgate keys create` does and returns the secret.
func createKey(t testing.TB, s store.Store, consumer string, mutate func(*store.APIKey)) (string, *store.APIKey) {
	t.Helper()
	id, key, hash, err := store.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	k := &store.APIKey{ID: id, Consumer: consumer, Hash: hash, Metadata: json.RawMessage(`{"plan":"gold","orgId":42}`), CreatedAt: time.Now()}
	if mutate != nil {
		mutate(k)
	}
	if err := s.CreateAPIKey(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	return key, k
}

func TestValidKeySetsUserAndNeverReachesUpstream(t *testing.T) {
	g := authtest.New(t, authtest.Options{Export: apikey.Export, Options: `{}`})
	key, _ := createKey(t, g.Store, "acme-bot", nil)

	resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+key)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
	}
	seen := g.Upstream.Last(t)
	if v := seen.Header.Get("Authorization"); v != "" {
		t.Errorf("the API key went upstream: Authorization %q", v)
	}
	u := seen.User
	if u == nil || u.Sub != "acme-bot" || u.Namespace != subject.APIKey || u.Admin {
		t.Fatalf("request user %+v, want sub acme-bot in namespace apikey, not admin", u)
	}
	if u.Subject() != "apikey|acme-bot" {
		t.Errorf("subject %q", u.Subject())
	}
	if u.Data["plan"] != "gold" || u.Data["orgId"] != float64(42) {
		t.Errorf("user data %v, want the key's metadata", u.Data)
	}
}

// TestAdminKeyRefusedOnMCPRoute: privilege separation. A key created with --admin signs in to the
// setup UI and the admin API only; on an MCP route it is a 401 with its own reason, audited with
// the key's subject, and never reaches the upstream.
func TestAdminKeyRefusedOnMCPRoute(t *testing.T) {
	g := authtest.New(t, authtest.Options{Export: apikey.Export, Options: `{}`})
	key, k := createKey(t, g.Store, "ops", func(k *store.APIKey) { k.Admin = true })

	resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+key)
	if resp.StatusCode != http.StatusUnauthorized || resp.JSON["reasonCode"] != "admin_key_on_mcp_route" {
		t.Fatalf("admin key on an MCP route: status %d reason %v, want 401 admin_key_on_mcp_route", resp.StatusCode, resp.JSON["reasonCode"])
	}
	if d, _ := resp.JSON["detail"].(string); !strings.Contains(d, "admin") || !strings.Contains(d, "without --admin") {
		t.Errorf("detail %q does not say why and what to do", d)
	}
	if got, want := resp.Header.Get("WWW-Authenticate"), `Bearer realm="mcpgate", error="invalid_token"`; got != want {
		t.Errorf("challenge %q, want %q", got, want)
	}
	if g.Upstream.Count() != 0 {
		t.Fatal("the admin key's request reached the upstream")
	}
	evs := g.Rejections(t)
	if len(evs) != 1 || evs[0].ReasonCode != "admin_key_on_mcp_route" || evs[0].Subject != "apikey|ops" ||
		!strings.Contains(string(evs[0].Details), k.ID) {
		t.Errorf("audit %+v", evs)
	}
	// The same consumer with an ordinary key is served.
	plain, _ := createKey(t, g.Store, "ops", nil)
	if resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+plain); resp.StatusCode != http.StatusOK {
		t.Fatalf("ordinary key: status %d", resp.StatusCode)
	}
}

func TestCustomHeaderWithBareKey(t *testing.T) {
	g := authtest.New(t, authtest.Options{Export: apikey.Export, Options: `{"authHeader":"x-api-key","authScheme":""}`})
	key, _ := createKey(t, g.Store, "acme", nil)

	resp := g.Post(t, "/mcp/test", "X-Api-Key", key, "Authorization", "Bearer something-else")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
	}
	if v := g.Upstream.Last(t).Header.Get("X-Api-Key"); v != "" {
		t.Errorf("x-api-key went upstream: %q", v)
	}

	resp = g.Post(t, "/mcp/test")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no key: status %d", resp.StatusCode)
	}
	if got, want := resp.Header.Get("WWW-Authenticate"), `ApiKey realm="mcpgate", header="x-api-key"`; got != want {
		t.Errorf("challenge %q, want %q", got, want)
	}
}

// TestRefusals is the API-key half of the negative matrix: each refusal is a 401 problem with
// the reason code, the challenge, and an mcp_request_rejected audit event with the same code.
func TestRefusals(t *testing.T) {
	s := authtest.Store(t)
	valid, _ := createKey(t, s, "valid", nil)
	revoked, revokedKey := createKey(t, s, "gone", nil)
	if err := s.RevokeAPIKey(t.Context(), revokedKey.ID); err != nil {
		t.Fatal(err)
	}
	expired, _ := createKey(t, s, "late", func(k *store.APIKey) { k.ExpiresAt = time.Now().Add(-time.Minute) })
	_ = valid

	tests := []struct {
		name      string
		headers   []string
		reason    string
		challenge string
		subject   string
	}{
		{name: "no header", reason: "missing_token", challenge: `Bearer realm="mcpgate"`},
		{name: "wrong scheme", headers: []string{"Authorization", "Basic " + valid}, reason: "invalid_token", challenge: `Bearer realm="mcpgate", error="invalid_token"`},
		{name: "unknown key", headers: []string{"Authorization", "Bearer mcpg_" + strings.Repeat("x", 43)}, reason: "invalid_token", challenge: `Bearer realm="mcpgate", error="invalid_token"`},
		{name: "revoked key", headers: []string{"Authorization", "Bearer " + revoked}, reason: "revoked", challenge: `Bearer realm="mcpgate", error="invalid_token"`, subject: "apikey|gone"},
		{name: "expired key", headers: []string{"Authorization", "bearer " + expired}, reason: "expired", challenge: `Bearer realm="mcpgate", error="invalid_token"`, subject: "apikey|late"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := authtest.New(t, authtest.Options{Export: apikey.Export, Options: `{}`, Store: s})
			before := len(g.Rejections(t))
			resp := g.Post(t, "/mcp/test", tc.headers...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", resp.StatusCode, resp.Body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("content type %q", ct)
			}
			if resp.JSON["reasonCode"] != tc.reason {
				t.Errorf("reasonCode %v, want %s", resp.JSON["reasonCode"], tc.reason)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("challenge %q, want %q", got, tc.challenge)
			}
			if g.Upstream.Count() != 0 {
				t.Error("a refused request reached the handler")
			}
			evs := g.Rejections(t)
			if len(evs) != before+1 {
				t.Fatalf("%d rejection events, want %d", len(evs), before+1)
			}
			ev := evs[0]
			if ev.ReasonCode != tc.reason || ev.Outcome != "denied" || ev.Subject != tc.subject || ev.OperationID != "test-mcp" || ev.RequestID == "" {
				t.Errorf("audit event %+v", ev)
			}
			if strings.Contains(string(ev.Details), "mcpg_") {
				t.Errorf("audit details carry a key: %s", ev.Details)
			}
		})
	}
}

func TestAllowUnauthenticatedRequestsContinueWithoutUser(t *testing.T) {
	g := authtest.New(t, authtest.Options{Export: apikey.Export, Options: `{"allowUnauthenticatedRequests":true}`})
	for _, h := range [][]string{nil, {"Authorization", "Bearer not-a-key"}} {
		resp := g.Post(t, "/mcp/test", h...)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("headers %v: status %d", h, resp.StatusCode)
		}
		if u := g.Upstream.Last(t).User; u != nil {
			t.Errorf("headers %v: user %+v, want none", h, u)
		}
	}
	if n := len(g.Rejections(t)); n != 0 {
		t.Errorf("%d rejection events for requests that were let through", n)
	}
}

// TestRevocationSeenWithinCacheTTL: a cached key keeps working until the cache entry expires,
// then the revocation applies. Expiry applies at once, whatever the cache holds.
func TestRevocationSeenWithinCacheTTL(t *testing.T) {
	g := authtest.New(t, authtest.Options{Export: apikey.Export, Options: `{"cacheTtlSeconds":60}`})
	now := time.Now()
	apikey.SetClock(g.Value.(*apikey.Policy), func() time.Time { return now })
	key, k := createKey(t, g.Store, "acme", func(k *store.APIKey) { k.ExpiresAt = now.Add(2 * time.Hour) })

	if resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+key); resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh key: status %d", resp.StatusCode)
	}
	if err := g.Store.RevokeAPIKey(t.Context(), k.ID); err != nil {
		t.Fatal(err)
	}
	now = now.Add(30 * time.Second)
	if resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+key); resp.StatusCode != http.StatusOK {
		t.Fatalf("within the cache TTL: status %d, want the cached 200", resp.StatusCode)
	}
	now = now.Add(31 * time.Second)
	resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+key)
	if resp.StatusCode != http.StatusUnauthorized || resp.JSON["reasonCode"] != "revoked" {
		t.Fatalf("after the cache TTL: status %d reason %v, want 401 revoked", resp.StatusCode, resp.JSON["reasonCode"])
	}

	key2, _ := createKey(t, g.Store, "acme", func(k *store.APIKey) { k.ExpiresAt = now.Add(10 * time.Second) })
	if resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+key2); resp.StatusCode != http.StatusOK {
		t.Fatalf("second key: status %d", resp.StatusCode)
	}
	now = now.Add(10 * time.Second)
	resp = g.Post(t, "/mcp/test", "Authorization", "Bearer "+key2)
	if resp.StatusCode != http.StatusUnauthorized || resp.JSON["reasonCode"] != "expired" {
		t.Fatalf("cached key past its expiry: status %d reason %v, want 401 expired", resp.StatusCode, resp.JSON["reasonCode"])
	}
}

func TestCacheDisabledSeesRevocationAtOnce(t *testing.T) {
	g := authtest.New(t, authtest.Options{Export: apikey.Export, Options: `{"cacheTtlSeconds":0}`})
	key, k := createKey(t, g.Store, "acme", nil)
	if resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+key); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := g.Store.RevokeAPIKey(t.Context(), k.ID); err != nil {
		t.Fatal(err)
	}
	if resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+key); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked with cache off: status %d", resp.StatusCode)
	}
}

func TestStoreFailureIsServiceUnavailableNotUnauthorized(t *testing.T) {
	s := authtest.Store(t)
	g := authtest.New(t, authtest.Options{Export: apikey.Export, Options: `{}`, Store: s})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	resp := g.Post(t, "/mcp/test", "Authorization", "Bearer mcpg_whatever")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if g.Upstream.Count() != 0 {
		t.Error("the request went on without a checked key")
	}
}

// countingStore is the real store, counting key lookups.
type countingStore struct {
	store.Store
	lookups atomic.Int32
}

func (s *countingStore) LookupAPIKey(ctx context.Context, hash []byte) (*store.APIKey, error) {
	s.lookups.Add(1)
	return s.Store.LookupAPIKey(ctx, hash)
}

// TestConcurrentRequestsShareOneLookup: a burst of requests with one key (valid or made up) costs
// one store lookup per cache TTL, not one per request.
func TestConcurrentRequestsShareOneLookup(t *testing.T) {
	s := &countingStore{Store: authtest.Store(t)}
	g := authtest.New(t, authtest.Options{Export: apikey.Export, Options: `{}`, Store: s})
	key, _ := createKey(t, s, "burst", nil)
	for _, tc := range []struct {
		key  string
		want int
	}{{key, http.StatusOK}, {"mcpg_made-up-key-made-up-key-made-up-key-xxxx", http.StatusUnauthorized}} {
		s.lookups.Store(0)
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				if resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+tc.key); resp.StatusCode != tc.want {
					t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
				}
			})
		}
		wg.Wait()
		if n := s.lookups.Load(); n != 1 {
			t.Errorf("%d store lookups for 32 requests with one key, want 1", n)
		}
	}
}
