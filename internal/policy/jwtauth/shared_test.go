package jwtauth

import (
	"testing"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// TestPoliciesOfOneJWKSShareItsCache: one policy per route (each with its audience) for the same
// issuer must not multiply JWKS fetches or escape the refetch rate limit.
func TestPoliciesOfOneJWKSShareItsCache(t *testing.T) {
	host := &policy.Host{}
	provision := func(jwk, aud string) keySource {
		p := &Policy{Issuer: "https://idp.test", JwkURL: jwk, Audience: aud}
		if err := p.Provision(t.Context(), &policy.Env{Name: aud, Host: host}); err != nil {
			t.Fatal(err)
		}
		return p.st.keys
	}
	a := provision("https://idp.test/jwks", "https://gw/mcp/a")
	b := provision("https://idp.test/jwks", "https://gw/mcp/b")
	c := provision("https://other.test/jwks", "https://gw/mcp/c")
	if a != b {
		t.Error("two policies of one JWKS URL got separate caches")
	}
	if a == c {
		t.Error("policies of different JWKS URLs share a cache")
	}
}
