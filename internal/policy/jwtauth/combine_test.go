package jwtauth_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/mcpgate/mcpgate/internal/policy/apikey"
	"github.com/mcpgate/mcpgate/internal/policy/jwtauth"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/authtest"
)

// TestAPIKeyOrJWT: ["api-key" with allowUnauthenticatedRequests, "jwt"] accepts either
// credential, refuses a request with neither (with the JWT policy's challenge), and strips both.
func TestAPIKeyOrJWT(t *testing.T) {
	keys(t)
	j := newTestJWKS(t)
	j.publish(t, rsaKey, "k1")
	opts := `{"issuer":"` + testIssuer + `","audience":"` + testAudience + `","jwkUrl":"` + j.URL + `","oAuthResourceMetadataEnabled":true}`
	g := authtest.New(t, authtest.Options{
		Export: jwtauth.Export, Options: opts, Policy: "jwt",
		Before: []authtest.Spec{{Name: "api-key", Export: apikey.Export, Options: `{"allowUnauthenticatedRequests":true}`}},
	})
	id, key, hash, err := store.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Store.CreateAPIKey(t.Context(), &store.APIKey{ID: id, Consumer: "bot", Hash: hash, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+key)
	if u := g.Upstream.Last(t).User; resp.StatusCode != http.StatusOK || u == nil || u.Subject() != "apikey|bot" {
		t.Fatalf("API key: status %d user %+v", resp.StatusCode, u)
	}
	resp = g.Post(t, "/mcp/test", "Authorization", "Bearer "+sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(time.Now(), nil)))
	seen := g.Upstream.Last(t)
	if resp.StatusCode != http.StatusOK || seen.User == nil || seen.User.Subject() != "jwt:"+testIssuer+"|alice" || seen.Header.Get("Authorization") != "" {
		t.Fatalf("JWT: status %d user %+v Authorization %q", resp.StatusCode, seen.User, seen.Header.Get("Authorization"))
	}
	resp = g.Post(t, "/mcp/test", "Authorization", "Bearer neither")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer resource_metadata="`+prmURL+`", error="invalid_token"` {
		t.Fatalf("neither: status %d challenge %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
