package connect_test

import (
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
)

// TestRefreshRequestIsWhatTheGrantWasIssuedUnder: the refresh request Hydra receives carries the
// connection's resource (RFC 8707) and its client's identity, and the refreshed connection keeps
// the scopes Hydra granted.
func TestRefreshRequestIsWhatTheGrantWasIssuedUnder(t *testing.T) {
	c := newCluster(t, clusterOptions{instances: 1, hydra: hydra.Options{AccessTokenTTL: 3 * time.Second}})
	c.connect("alice")
	before := c.waitExpired("alice")
	var mu sync.Mutex
	var forms []url.Values
	var auths []string
	c.hydra.SetTokenInterceptor(func(_ http.ResponseWriter, r *http.Request, grant string) bool {
		if grant == "refresh_token" {
			_ = r.ParseForm()
			mu.Lock()
			forms = append(forms, r.PostForm)
			auths = append(auths, r.Header.Get("Authorization"))
			mu.Unlock()
		}
		return false // Hydra answers
	})
	if a := c.call(t.Context(), 0, "alice", "whoami"); a.text() != "subject=alice" {
		t.Fatal(a)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(forms) != 1 {
		t.Fatalf("%d refresh requests", len(forms))
	}
	f := forms[0]
	if f.Get("resource") != c.upstream.URL || f.Get("resource") != before.Resource {
		t.Errorf("resource %q, want the connection's %q", f.Get("resource"), before.Resource)
	}
	if f.Get("client_id") != before.ClientID && auths[0] == "" {
		t.Errorf("the refresh request names no client (client_id %q, Authorization %q)", f.Get("client_id"), auths[0])
	}
	if f.Get("refresh_token") == "" || f.Get("refresh_token") != before.RefreshToken.Reveal() {
		t.Error("the refresh request does not carry the stored refresh token")
	}
	after := c.connection("alice")
	if len(after.Scopes) == 0 || after.Resource != before.Resource || after.ClientID != before.ClientID || after.Issuer != before.Issuer {
		t.Errorf("after refresh: scopes %v, resource %q, client %q, issuer %q", after.Scopes, after.Resource, after.ClientID, after.Issuer)
	}
}
