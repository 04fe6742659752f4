package jwtauth_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/mcpgate/mcpgate/internal/policy/jwtauth"
	"github.com/mcpgate/mcpgate/internal/testutil/authtest"
)

// TestAdminTokenNeedsTheAdminAudience: a JWT is an admin credential (for the setup UI and the
// admin API) only when it is valid for the issuer, its aud contains MCPGATE_ADMIN_AUDIENCE and it
// carries MCPGATE_ADMIN_CLAIM. The tokens MCP clients hold for a route (aud: the route) are not,
// whatever claims they carry; without MCPGATE_ADMIN_AUDIENCE no JWT is.
func TestAdminTokenNeedsTheAdminAudience(t *testing.T) {
	keys(t)
	t.Setenv(jwtauth.AdminClaimEnv, "roles=mcpgate-admin")
	t.Setenv(jwtauth.AdminAudienceEnv, testAdminAudience)
	j := newTestJWKS(t)
	j.publish(t, rsaKey, "k1")
	g, now := jwksGateway(t, j, "")
	p := g.Value.(*jwtauth.Policy)
	admin := func(mutate func(map[string]any)) map[string]any {
		return claimsAt(*now, func(c map[string]any) {
			c["aud"] = testAdminAudience
			c["roles"] = []string{"mcpgate-admin"}
			if mutate != nil {
				mutate(c)
			}
		})
	}
	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"admin audience and claim", sign(t, jwa.RS256(), rsaKey, "k1", admin(nil)), ""},
		{"admin audience among others", sign(t, jwa.RS256(), rsaKey, "k1", admin(func(c map[string]any) { c["aud"] = []string{testAudience, testAdminAudience} })), ""},
		{"route token with the admin claim", sign(t, jwa.RS256(), rsaKey, "k1", admin(func(c map[string]any) { c["aud"] = testAudience })), jwtauth.AdminWrongAudience},
		{"no aud", sign(t, jwa.RS256(), rsaKey, "k1", admin(func(c map[string]any) { delete(c, "aud") })), jwtauth.AdminWrongAudience},
		{"admin audience without the claim", sign(t, jwa.RS256(), rsaKey, "k1", admin(func(c map[string]any) { c["roles"] = []string{"reader"} })), jwtauth.AdminNoClaim},
		{"expired", sign(t, jwa.RS256(), rsaKey, "k1", admin(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })), "expired"},
		{"another issuer", sign(t, jwa.RS256(), rsaKey, "k1", admin(func(c map[string]any) { c["iss"] = "https://evil.test" })), "invalid_issuer"},
		{"a key the issuer does not publish", sign(t, jwa.RS256(), rsaKey2, "k2", admin(nil)), "unknown_key"},
		{"not a JWT", "a.b.c", "invalid_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, reason, err := p.AdminToken(t.Context(), tc.token)
			if err != nil {
				t.Fatal(err)
			}
			if reason != tc.reason {
				t.Fatalf("reason %q, want %q", reason, tc.reason)
			}
			if tc.reason == "" && (u == nil || !u.Admin || u.Subject() != "jwt:"+testIssuer+"|alice") {
				t.Errorf("user %+v, want the admin jwt:%s|alice", u, testIssuer)
			}
			if tc.reason != "" && u != nil {
				t.Errorf("user %+v with reason %q", u, reason)
			}
		})
	}

	// On the policy's MCP route an admin-only token is refused: its aud is not the route's.
	resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+tests[0].token)
	if resp.StatusCode != http.StatusUnauthorized || resp.JSON["reasonCode"] != "invalid_audience" {
		t.Errorf("admin token on the MCP route: status %d reason %v, want 401 invalid_audience", resp.StatusCode, resp.JSON["reasonCode"])
	}
}

func TestNoAdminAudienceNoJWTAdmin(t *testing.T) {
	keys(t)
	t.Setenv(jwtauth.AdminClaimEnv, "roles=mcpgate-admin")
	t.Setenv(jwtauth.AdminAudienceEnv, "")
	j := newTestJWKS(t)
	j.publish(t, rsaKey, "k1")
	g, now := jwksGateway(t, j, "")
	p := g.Value.(*jwtauth.Policy)
	for _, aud := range []any{testAudience, testAdminAudience, ""} {
		tok := sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, func(c map[string]any) { c["aud"] = aud; c["roles"] = "mcpgate-admin" }))
		if u, reason, err := p.AdminToken(t.Context(), tok); err != nil || u != nil || reason != jwtauth.AdminAudienceUnset {
			t.Errorf("aud %q without %s: user %+v reason %q err %v, want %s", aud, jwtauth.AdminAudienceEnv, u, reason, err, jwtauth.AdminAudienceUnset)
		}
	}
	if p.AdminAudience() != "" {
		t.Errorf("AdminAudience %q", p.AdminAudience())
	}
}

// TestMetadataCacheHeaders: a metadata document built from the request (no --public-url) names
// the Host the client used, so it is private to that client's cache and varies with the headers
// it was built from; with a configured public URL it is the same for everyone and public.
func TestMetadataCacheHeaders(t *testing.T) {
	keys(t)
	j := newTestJWKS(t)
	opts := `{"issuer":"` + testIssuer + `","audience":"` + testAudience + `","jwkUrl":"` + j.URL + `","oAuthResourceMetadataEnabled":true}`
	get := func(g *authtest.Gateway) authtest.Response {
		return g.Do(t, httptest.NewRequest("GET", "/.well-known/oauth-protected-resource/mcp/test", nil))
	}

	derived := get(authtest.New(t, authtest.Options{Export: jwtauth.Export, Options: opts}))
	if cc := derived.Header.Get("Cache-Control"); derived.StatusCode != 200 || !strings.Contains(cc, "private") || strings.Contains(cc, "public") {
		t.Errorf("derived URL: status %d Cache-Control %q, want private", derived.StatusCode, cc)
	}
	if v := derived.Header.Get("Vary"); v != "Host, X-Forwarded-Host, X-Forwarded-Proto" {
		t.Errorf("derived URL: Vary %q", v)
	}

	pub, _ := url.Parse("https://mcp.example.org")
	fixed := get(authtest.New(t, authtest.Options{Export: jwtauth.Export, Options: opts, PublicURL: pub}))
	if cc := fixed.Header.Get("Cache-Control"); fixed.StatusCode != 200 || cc != "public, max-age=300" || fixed.Header.Get("Vary") != "" {
		t.Errorf("configured public URL: status %d Cache-Control %q Vary %q", fixed.StatusCode, cc, fixed.Header.Get("Vary"))
	}
	if !strings.Contains(string(fixed.Body), `"resource":"https://mcp.example.org/mcp/test"`) {
		t.Errorf("metadata %s", fixed.Body)
	}
}

// TestForwardedHeadersRightmostValue: behind a trusted proxy the metadata's resource is built from
// the rightmost X-Forwarded-Host/Proto value — the one the nearest proxy set — not from a value the
// client sent that the proxy appended to.
func TestForwardedHeadersRightmostValue(t *testing.T) {
	keys(t)
	j := newTestJWKS(t)
	opts := `{"issuer":"` + testIssuer + `","audience":"` + testAudience + `","jwkUrl":"` + j.URL + `","oAuthResourceMetadataEnabled":true}`
	g := authtest.New(t, authtest.Options{Export: jwtauth.Export, Options: opts, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	for _, tc := range []struct {
		name    string
		headers http.Header
		want    string
	}{
		{"one list", http.Header{"X-Forwarded-Host": {"evil.example, mcp.example.org"}, "X-Forwarded-Proto": {"http, https"}}, "https://mcp.example.org/mcp/test"},
		{"several header lines", http.Header{"X-Forwarded-Host": {"evil.example", "mcp.example.org"}, "X-Forwarded-Proto": {"http", "https"}}, "https://mcp.example.org/mcp/test"},
		{"not a host", http.Header{"X-Forwarded-Host": {"mcp.example.org, evil.example/x"}}, "http://example.com/mcp/test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/.well-known/oauth-protected-resource/mcp/test", nil)
			req.RemoteAddr = "10.1.2.3:5555"
			req.Header = tc.headers
			resp := g.Do(t, req)
			if !strings.Contains(string(resp.Body), `"resource":"`+tc.want+`"`) {
				t.Errorf("metadata %s, want resource %s", resp.Body, tc.want)
			}
		})
	}
}
