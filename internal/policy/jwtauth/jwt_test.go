package jwtauth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/mcpgate/mcpgate/internal/policy/jwtauth"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/testutil/authtest"
)

const (
	testIssuer   = "https://idp.test"
	testAudience = "http://example.com/mcp/test"
	prmURL       = "http://example.com/.well-known/oauth-protected-resource/mcp/test"
	// testAdminAudience is MCPGATE_ADMIN_AUDIENCE in the tests that set it.
	testAdminAudience = "https://admin.example.test/mcpgate"
)

// testJWKS is an issuer's JWKS endpoint serving the public halves of keys the test signs with.
// It is an httptest fake because the negative matrix needs tokens no real issuer would make
// (alg none, tampered, HMAC-signed with the public key, unknown kid, …).
type testJWKS struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []jwk.Key
	fetches atomic.Int32
}

func newTestJWKS(t testing.TB) *testJWKS {
	j := &testJWKS{}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		j.fetches.Add(1)
		set := jwk.NewSet()
		j.mu.Lock()
		for _, k := range j.keys {
			_ = set.AddKey(k)
		}
		j.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(j.Close)
	return j
}

// publish adds the public half of priv under kid.
func (j *testJWKS) publish(t testing.TB, priv any, kid string) {
	t.Helper()
	k, err := jwk.PublicKeyOf(priv)
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	_ = k.Set(jwk.KeyUsageKey, "sig")
	j.mu.Lock()
	j.keys = append(j.keys, k)
	j.mu.Unlock()
}

var (
	keyOnce sync.Once
	rsaKey  *rsa.PrivateKey
	rsaKey2 *rsa.PrivateKey
	ecKey   *ecdsa.PrivateKey
)

func keys(t testing.TB) {
	keyOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
		if rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	})
}

func sign(t testing.TB, alg jwa.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	if kid != "" {
		_ = h.Set(jws.KeyIDKey, kid)
	}
	_ = h.Set("typ", "at+jwt")
	tok, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func claimsAt(now time.Time, mutate func(map[string]any)) map[string]any {
	c := map[string]any{
		"iss": testIssuer, "sub": "alice", "aud": []string{testAudience},
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "scp": []string{"mcp"},
	}
	if mutate != nil {
		mutate(c)
	}
	return c
}

func jwksGateway(t testing.TB, j *testJWKS, extra string) (*authtest.Gateway, *time.Time) {
	t.Helper()
	opts := `{"issuer":"` + testIssuer + `","audience":"` + testAudience + `","jwkUrl":"` + j.URL + `","oAuthResourceMetadataEnabled":true` + extra + `}`
	g := authtest.New(t, authtest.Options{Export: jwtauth.Export, Options: opts})
	now := time.Now()
	jwtauth.SetClock(g.Value.(*jwtauth.Policy), func() time.Time { return now })
	return g, &now
}

func TestValidTokenSetsUserAndIsStripped(t *testing.T) {
	keys(t)
	j := newTestJWKS(t)
	j.publish(t, rsaKey, "k1")
	j.publish(t, ecKey, "k-ec")
	g, now := jwksGateway(t, j, "")

	for _, tc := range []struct {
		name string
		tok  string
	}{
		{"RS256", sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, nil))},
		{"PS384", sign(t, jwa.PS384(), rsaKey, "k1", claimsAt(*now, nil))},
		{"ES256", sign(t, jwa.ES256(), ecKey, "k-ec", claimsAt(*now, nil))},
		{"aud as a string, exp within the clock skew", sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, func(c map[string]any) {
			c["aud"] = testAudience
			c["exp"] = now.Add(-20 * time.Second).Unix()
		}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+tc.tok)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
			}
			seen := g.Upstream.Last(t)
			if v := seen.Header.Get("Authorization"); v != "" {
				t.Errorf("the token went upstream: %q", v)
			}
			u := seen.User
			if u == nil || u.Sub != "alice" || u.Namespace != "jwt:"+testIssuer || u.Admin {
				t.Fatalf("user %+v", u)
			}
			if u.Subject() != "jwt:https://idp.test|alice" {
				t.Errorf("subject %q", u.Subject())
			}
			// The same person signed in at the same IdP through mcp-oauth-inbound gets this subject
			// (internal/signin builds it with subject.JWT from the IdP's issuer and the ID token's
			// sub), so a connection made on one kind of route serves the other.
			if u.Subject() != subject.JWT(testIssuer, "alice").String() {
				t.Errorf("subject %q differs from a sign-in's %q", u.Subject(), subject.JWT(testIssuer, "alice"))
			}
			if u.Data["iss"] != testIssuer || u.Data["scp"] == nil {
				t.Errorf("user data %v, want the claims", u.Data)
			}
		})
	}
	if n := j.fetches.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times for known keys, want 1 (cached)", n)
	}
}

// TestNegativeMatrix: each bad token is refused with 401, the route's resource_metadata
// challenge with error="invalid_token", its reason code in the problem body, and an audit event.
func TestNegativeMatrix(t *testing.T) {
	keys(t)
	j := newTestJWKS(t)
	j.publish(t, rsaKey, "k1")
	g, now := jwksGateway(t, j, "")
	good := sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, nil))
	parts := strings.Split(good, ".")

	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	tests := []struct {
		name   string
		header string
		reason string
	}{
		{"no token", "", "missing_token"},
		{"not bearer", "Basic YWxpY2U6c2VjcmV0", "invalid_token"},
		{"not a JWT", "Bearer abc.def", "invalid_token"},
		{"expired", "Bearer " + sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, func(c map[string]any) { c["exp"] = now.Add(-31 * time.Second).Unix() })), "expired"},
		{"no exp", "Bearer " + sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, func(c map[string]any) { delete(c, "exp") })), "invalid_token"},
		{"not yet valid", "Bearer " + sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() })), "not_yet_valid"},
		{"wrong audience", "Bearer " + sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, func(c map[string]any) { c["aud"] = "http://example.com/mcp/other" })), "invalid_audience"},
		{"no audience", "Bearer " + sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, func(c map[string]any) { delete(c, "aud") })), "invalid_audience"},
		{"wrong issuer", "Bearer " + sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, func(c map[string]any) { c["iss"] = "https://evil.test" })), "invalid_issuer"},
		{"no subject", "Bearer " + sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, func(c map[string]any) { delete(c, "sub") })), "invalid_token"},
		{"alg none", "Bearer " + b64(map[string]string{"alg": "none", "kid": "k1"}) + "." + parts[1] + ".", "unsupported_algorithm"},
		{"alg none with the real signature", "Bearer " + b64(map[string]string{"alg": "none", "kid": "k1"}) + "." + parts[1] + "." + parts[2], "unsupported_algorithm"},
		{"tampered payload", "Bearer " + parts[0] + "." + b64(claimsAt(*now, func(c map[string]any) { c["sub"] = "mallory" })) + "." + parts[2], "invalid_signature"},
		{"tampered signature", "Bearer " + parts[0] + "." + parts[1] + "." + flip(parts[2]), "invalid_signature"},
		{"signed by another key under a published kid", "Bearer " + sign(t, jwa.RS256(), rsaKey2, "k1", claimsAt(*now, nil)), "invalid_signature"},
		{"unknown kid", "Bearer " + sign(t, jwa.RS256(), rsaKey2, "k-unknown", claimsAt(*now, nil)), "unknown_key"},
		{"HMAC signed with the public key (alg confusion)", "Bearer " + sign(t, jwa.HS256(), pubPEM, "k1", claimsAt(*now, nil)), "unsupported_algorithm"},
		{"HMAC signed with the public key DER", "Bearer " + sign(t, jwa.HS256(), pubDER, "", claimsAt(*now, nil)), "unsupported_algorithm"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(g.Rejections(t))
			var resp authtest.Response
			if tc.header == "" {
				resp = g.Post(t, "/mcp/test")
			} else {
				resp = g.Post(t, "/mcp/test", "Authorization", tc.header)
			}
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", resp.StatusCode, resp.Body)
			}
			want := `Bearer resource_metadata="` + prmURL + `", error="invalid_token"`
			if tc.reason == "missing_token" {
				want = `Bearer resource_metadata="` + prmURL + `"`
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != want {
				t.Errorf("challenge %q, want %q", got, want)
			}
			if resp.JSON["reasonCode"] != tc.reason {
				t.Errorf("reasonCode %v, want %s (detail %v)", resp.JSON["reasonCode"], tc.reason, resp.JSON["detail"])
			}
			if g.Upstream.Count() != 0 {
				t.Error("a refused request reached the handler")
			}
			evs := g.Rejections(t)
			if len(evs) != before+1 || evs[0].ReasonCode != tc.reason {
				t.Fatalf("audit: %d events (want %d), newest %+v", len(evs), before+1, evs)
			}
			if strings.Contains(string(evs[0].Details), parts[2]) {
				t.Error("the audit event carries the token")
			}
		})
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	return string(b)
}

// TestKeyRotation: a token with a new kid makes the policy fetch the JWKS again, at most once
// per 10 s, so made-up kids cannot make it hammer the issuer.
func TestKeyRotation(t *testing.T) {
	keys(t)
	j := newTestJWKS(t)
	j.publish(t, rsaKey, "k1")
	g, now := jwksGateway(t, j, "")

	if resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, nil))); resp.StatusCode != 200 {
		t.Fatalf("k1: status %d", resp.StatusCode)
	}
	j.publish(t, rsaKey2, "k2")
	*now = now.Add(5 * time.Second)
	for range 3 {
		resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+sign(t, jwa.RS256(), rsaKey2, "k2", claimsAt(*now, nil)))
		if resp.StatusCode != 401 || resp.JSON["reasonCode"] != "unknown_key" {
			t.Fatalf("new kid inside the refetch interval: status %d reason %v", resp.StatusCode, resp.JSON["reasonCode"])
		}
	}
	if n := j.fetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times within 10 s, want 1", n)
	}
	*now = now.Add(6 * time.Second)
	if resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+sign(t, jwa.RS256(), rsaKey2, "k2", claimsAt(*now, nil))); resp.StatusCode != 200 {
		t.Fatalf("rotated key after the interval: status %d: %s", resp.StatusCode, resp.Body)
	}
	if n := j.fetches.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2", n)
	}
}

func TestJWKSUnreachableIsServiceUnavailable(t *testing.T) {
	keys(t)
	j := newTestJWKS(t)
	g, now := jwksGateway(t, j, "")
	j.Close()
	resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, nil)))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.JSON["reasonCode"] != "jwks_unavailable" {
		t.Fatalf("status %d reason %v, want 503 jwks_unavailable", resp.StatusCode, resp.JSON["reasonCode"])
	}
}

func TestSecretAcceptsOnlyHMAC(t *testing.T) {
	keys(t)
	secret := strings.Repeat("s3cret-", 6)
	opts := `{"issuer":"` + testIssuer + `","audience":"` + testAudience + `","secret":"` + secret + `","subPropertyName":"email"}`
	g := authtest.New(t, authtest.Options{Export: jwtauth.Export, Options: opts})
	now := time.Now()
	withEmail := func(c map[string]any) { c["email"] = "alice@example.com" }

	for _, alg := range []jwa.SignatureAlgorithm{jwa.HS256(), jwa.HS384(), jwa.HS512()} {
		resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+sign(t, alg, []byte(secret), "", claimsAt(now, withEmail)))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", alg, resp.StatusCode, resp.Body)
		}
		if u := g.Upstream.Last(t).User; u == nil || u.Sub != "alice@example.com" {
			t.Fatalf("%s: user %+v, want sub from the email claim", alg, u)
		}
	}
	for _, tc := range []struct {
		name, tok, reason string
	}{
		{"RS256", sign(t, jwa.RS256(), rsaKey, "", claimsAt(now, withEmail)), "unsupported_algorithm"},
		{"alg none", b64(map[string]string{"alg": "none"}) + "." + b64(claimsAt(now, withEmail)) + ".", "unsupported_algorithm"},
		{"wrong secret", sign(t, jwa.HS256(), []byte("another-secret-another-secret-xx"), "", claimsAt(now, withEmail)), "invalid_signature"},
		{"no email claim", sign(t, jwa.HS256(), []byte(secret), "", claimsAt(now, nil)), "invalid_token"},
	} {
		resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+tc.tok)
		if resp.StatusCode != 401 || resp.JSON["reasonCode"] != tc.reason {
			t.Errorf("%s: status %d reason %v, want 401 %s", tc.name, resp.StatusCode, resp.JSON["reasonCode"], tc.reason)
		}
		// Without oAuthResourceMetadataEnabled the challenge names no metadata.
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="mcpgate", error="invalid_token"` {
			t.Errorf("%s: challenge %q", tc.name, got)
		}
	}
	if resp := g.Do(t, httptest.NewRequest("GET", "/.well-known/oauth-protected-resource/mcp/test", nil)); resp.StatusCode != 404 {
		t.Errorf("metadata served without oAuthResourceMetadataEnabled: status %d", resp.StatusCode)
	}
}

func TestProtectedResourceMetadata(t *testing.T) {
	keys(t)
	j := newTestJWKS(t)
	opts := `{"issuer":"` + testIssuer + `","audience":"https://mcp.example.org/mcp/linear","jwkUrl":"` + j.URL + `","oAuthResourceMetadataEnabled":true}`
	g := authtest.New(t, authtest.Options{
		Export: jwtauth.Export, Options: opts, Path: "/mcp/linear", Summary: "Linear MCP Proxy",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	})
	tests := []struct {
		name     string
		remote   string
		headers  map[string]string
		resource string
	}{
		{"direct", "192.0.2.1:5555", nil, "http://example.com/mcp/linear"},
		{"behind a trusted TLS proxy", "10.1.2.3:5555", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "mcp.example.org"}, "https://mcp.example.org/mcp/linear"},
		{"forwarded headers from an untrusted peer", "192.0.2.1:5555", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}, "http://example.com/mcp/linear"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/.well-known/oauth-protected-resource/mcp/linear", nil)
			req.RemoteAddr = tc.remote
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp := g.Do(t, req)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Body)
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Error("metadata without Access-Control-Allow-Origin: *")
			}
			var doc map[string]any
			if err := json.Unmarshal(resp.Body, &doc); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{
				"resource":                 tc.resource,
				"authorization_servers":    []any{testIssuer},
				"bearer_methods_supported": []any{"header"},
				"resource_name":            "Linear MCP Proxy",
			}
			if got, _ := json.Marshal(doc); string(got) != mustJSON(want) {
				t.Errorf("metadata %s, want %s", got, mustJSON(want))
			}

			// The 401 of the MCP route points at the same public metadata URL.
			post := httptest.NewRequest("POST", "/mcp/linear", strings.NewReader(`{}`))
			post.RemoteAddr = tc.remote
			for k, v := range tc.headers {
				post.Header.Set(k, v)
			}
			r401 := g.Do(t, post)
			wantChallenge := `Bearer resource_metadata="` + strings.Replace(tc.resource, "/mcp/linear", "/.well-known/oauth-protected-resource/mcp/linear", 1) + `"`
			if got := r401.Header.Get("WWW-Authenticate"); r401.StatusCode != 401 || got != wantChallenge {
				t.Errorf("status %d challenge %q, want 401 %q", r401.StatusCode, got, wantChallenge)
			}
		})
	}

	pre := httptest.NewRequest("OPTIONS", "/.well-known/oauth-protected-resource/mcp/linear", nil)
	pre.Header.Set("Origin", "https://inspector.example")
	pre.Header.Set("Access-Control-Request-Method", "GET")
	if resp := g.Do(t, pre); resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight: status %d, ACAO %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAllowUnauthenticatedAndAdminClaim(t *testing.T) {
	keys(t)
	t.Setenv(jwtauth.AdminClaimEnv, "roles=mcpgate-admin")
	t.Setenv(jwtauth.AdminAudienceEnv, testAdminAudience)
	j := newTestJWKS(t)
	j.publish(t, rsaKey, "k1")
	g, now := jwksGateway(t, j, `,"allowUnauthenticatedRequests":true`)

	for _, h := range []string{"", "Bearer " + sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, func(c map[string]any) { c["iss"] = "https://evil.test" }))} {
		resp := g.Post(t, "/mcp/test", "Authorization", h)
		if resp.StatusCode != 200 || g.Upstream.Last(t).User != nil {
			t.Fatalf("unauthenticated request %q: status %d user %+v", h, resp.StatusCode, g.Upstream.Last(t).User)
		}
	}
	// The admin claim alone does not make an admin: the token is for the route's audience.
	resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, func(c map[string]any) { c["roles"] = []string{"dev", "mcpgate-admin"} })))
	if u := g.Upstream.Last(t).User; resp.StatusCode != 200 || u == nil || u.Admin {
		t.Fatalf("route token with the admin claim: status %d user %+v, want a user that is not admin", resp.StatusCode, u)
	}
	// With the admin audience too (a token for both), the user is marked admin.
	resp = g.Post(t, "/mcp/test", "Authorization", "Bearer "+sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, func(c map[string]any) {
		c["roles"] = []string{"dev", "mcpgate-admin"}
		c["aud"] = []string{testAudience, testAdminAudience}
	})))
	if u := g.Upstream.Last(t).User; resp.StatusCode != 200 || u == nil || !u.Admin {
		t.Fatalf("admin token: status %d user %+v", resp.StatusCode, u)
	}
}

func TestScopesSupported(t *testing.T) {
	keys(t)
	j := newTestJWKS(t)
	j.publish(t, rsaKey, "k1")
	g, now := jwksGateway(t, j, `,"scopesSupported":["mcp","offline_access"]`)

	resp := g.Do(t, httptest.NewRequest("GET", "/.well-known/oauth-protected-resource/mcp/test", nil))
	var doc struct {
		Scopes []string `json:"scopes_supported"`
	}
	if err := json.Unmarshal(resp.Body, &doc); err != nil || strings.Join(doc.Scopes, " ") != "mcp offline_access" {
		t.Errorf("metadata scopes_supported %v (%v), want [mcp offline_access]", doc.Scopes, err)
	}
	if got, want := g.Post(t, "/mcp/test").Header.Get("WWW-Authenticate"), `Bearer resource_metadata="`+prmURL+`", scope="mcp offline_access"`; got != want {
		t.Errorf("challenge %q, want %q", got, want)
	}
	expired := sign(t, jwa.RS256(), rsaKey, "k1", claimsAt(*now, func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }))
	if got, want := g.Post(t, "/mcp/test", "Authorization", "Bearer "+expired).Header.Get("WWW-Authenticate"), `Bearer resource_metadata="`+prmURL+`", scope="mcp offline_access", error="invalid_token"`; got != want {
		t.Errorf("challenge %q, want %q", got, want)
	}
}
