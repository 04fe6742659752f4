package upstream

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/mcpgate/mcpgate/internal/safehttp"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// TestHydra runs the engine against a real Ory Hydra: discovery (Hydra serves only OpenID
// discovery), DCR (Hydra's object-valued jwks reply), a headless authorization with PKCE S256 and
// resource, the code exchange, a rotating refresh, revocation, and invalid_grant after the user's
// consent is revoked. The upstream resource server is a plain handler serving RFC 9728 metadata
// that names Hydra.
func TestHydra(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Ory Hydra")
	}
	h := hydra.Start(t, hydra.Options{EnforcePKCE: true})
	rs := http.NewServeMux()
	srv := httptest.NewServer(rs)
	t.Cleanup(srv.Close)
	rs.HandleFunc("/.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"resource": srv.URL + "/mcp", "authorization_servers": []string{h.Issuer()}, "scopes_supported": []string{"mcp"}})
	})

	allow, err := safehttp.ParseAllowList("127.0.0.1,localhost,::1")
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{Allow: allow})
	up := Upstream{ID: "hydra-up", URL: srv.URL + "/mcp", DisplayName: "Hydra upstream"}
	ep := Endpoints{PublicURL: "http://127.0.0.1:9", BasePath: "/__mcpgate"} // never requested: the redirect is captured
	ctx := context.Background()

	// Discovery: OIDC only.
	d, err := e.Discover(ctx, up, "")
	if err != nil {
		t.Fatalf("discover: %v%s", err, traceString(d))
	}
	as := steps(d, PhaseAS)
	if d.AS.Issuer != h.Issuer() || len(as) == 0 || as[0].Outcome != OutcomeNotFound || as[len(as)-1].Outcome != OutcomeFound ||
		!slices.Contains([]string{"oidc", "oidc path append"}, as[len(as)-1].Source) {
		t.Fatalf("AS discovery: %+v%s", d.AS, traceString(d))
	}
	if d.AS.TokenEndpoint != h.TokenURL() || d.AS.RegistrationEndpoint != h.RegisterURL() || d.Resource != srv.URL+"/mcp" {
		t.Errorf("discovery %+v", d)
	}

	t.Logf("discovery trace:%s", traceString(d))

	// Scopes and DCR (auto: Hydra has no CIMD, the public URL is http anyway).
	scopes := SelectScopes(up, nil, d)
	if !slices.Equal(scopes, []string{"mcp", OfflineAccess}) {
		t.Fatalf("scopes %q", scopes)
	}
	c, err := e.Client(ctx, up, d, ep, scopes)
	if err != nil {
		t.Fatalf("DCR: %v", err)
	}
	if c.Method != ModeDCR || c.ClientID == "" || c.AuthMethod != AuthNone {
		t.Fatalf("client %+v", c)
	}

	// Authorize headlessly, check state and iss, exchange.
	ar, err := e.AuthorizationRequest(up, d, c, scopes)
	if err != nil {
		t.Fatal(err)
	}
	cb := h.AuthorizeHeadless(t, ar.URL, "alice")
	q := cb.Query()
	if q.Get("error") != "" || q.Get("code") == "" {
		t.Fatalf("callback %s?%s", cb.Path, q.Get("error")+" "+q.Get("error_description"))
	}
	if q.Get("state") != ar.State.Reveal() || cb.Scheme+"://"+cb.Host+cb.Path != c.RedirectURI {
		t.Fatalf("callback to %s with another state", cb.Path)
	}
	if err := CheckIssuerParameter(q, ar.Issuer, d.AS.IssParameterSupported); err != nil {
		t.Fatal(err)
	}
	tok, issued, err := e.Exchange(ctx, up, ExchangeRequest{Code: vault.Secret(q.Get("code")), Verifier: ar.Verifier, Client: *c, TokenEndpoint: d.AS.TokenEndpoint, Resource: ar.Resource, RequestedScopes: ar.Scopes})
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken.IsZero() || tok.Expiry.IsZero() || !slices.Contains(tok.Scopes, "mcp") {
		t.Fatalf("token: refresh %v expiry %v scopes %q", !tok.RefreshToken.IsZero(), tok.Expiry, tok.Scopes)
	}
	want := IssuedUnder{Issuer: h.Issuer(), TokenEndpoint: h.TokenURL(), ClientID: c.ClientID, AuthMethod: AuthNone, Resource: srv.URL + "/mcp"}
	if issued != want {
		t.Errorf("issued %+v, want %+v", issued, want)
	}
	in := h.Introspect(t, tok.AccessToken.Reveal())
	if !in.Active || in.Subject != "alice" || !slices.Contains(in.Audience, srv.URL+"/mcp") {
		t.Errorf("introspection %+v", in)
	}

	// Refresh: rotation, one token-endpoint call.
	h.ResetTokenCalls()
	req := RefreshRequest{IssuedUnder: issued, RefreshToken: tok.RefreshToken, Scopes: tok.Scopes}
	tok2, err := e.Refresh(ctx, up, req)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok2.RefreshToken == tok.RefreshToken || tok2.AccessToken == tok.AccessToken {
		t.Error("Hydra rotates refresh tokens; got the same tokens back")
	}
	if n := h.TokenCalls("refresh_token"); n != 1 {
		t.Errorf("refresh token calls %d, want 1", n)
	}
	if in := h.Introspect(t, tok2.AccessToken.Reveal()); !in.Active || in.Subject != "alice" {
		t.Errorf("refreshed token introspection %+v", in)
	}

	// Revocation of the access token (RFC 7009).
	if d.AS.RevocationEndpoint == "" {
		t.Fatal("Hydra advertises revocation_endpoint")
	}
	if err := e.Revoke(ctx, up, RevokeRequest{Endpoint: d.AS.RevocationEndpoint, ClientID: c.ClientID, AuthMethod: c.AuthMethod, Token: tok2.AccessToken, TokenTypeHint: "access_token"}); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if in := h.Introspect(t, tok2.AccessToken.Reveal()); in.Active {
		t.Error("revoked access token still active")
	}

	// The user revokes consent at the AS: the next refresh is a dead grant, never transient.
	h.RevokeConsent(t, "alice")
	_, err = e.Refresh(ctx, up, RefreshRequest{IssuedUnder: issued, RefreshToken: tok2.RefreshToken})
	ue := wantCode(t, err, CodeRefreshGrantInvalid, BucketUpstreamResponse)
	if !IsGrantDead(err) || isTransient(err) || ue.OAuthError == "" {
		t.Errorf("after RevokeConsent: %+v", ue)
	}

	// The AS forgets the registered client: invalid_client is a registration problem, not a dead
	// grant; the registration is dropped and the next connect registers a new client.
	h.DeleteClient(t, c.ClientID)
	_, err = e.Refresh(ctx, up, RefreshRequest{IssuedUnder: issued, RefreshToken: tok2.RefreshToken})
	wantCode(t, err, CodeClientRejected, BucketOAuthSetup)
	if IsGrantDead(err) || !IsClientRejected(err) {
		t.Errorf("after DeleteClient: %v", err)
	}
	d2, err := e.Discover(ctx, up, "")
	if err != nil {
		t.Fatal(err)
	}
	c2, err := e.Client(ctx, up, d2, ep, scopes)
	if err != nil {
		t.Fatalf("re-registering: %v", err)
	}
	if c2.ClientID == c.ClientID {
		t.Error("the dropped client was reused")
	}
	ar2, err := e.AuthorizationRequest(up, d2, c2, scopes)
	if err != nil {
		t.Fatal(err)
	}
	cb2 := h.AuthorizeHeadless(t, ar2.URL, "bob")
	if _, _, err := e.Exchange(ctx, up, ExchangeRequest{Code: vault.Secret(cb2.Query().Get("code")), Verifier: ar2.Verifier, Client: *c2, TokenEndpoint: d2.AS.TokenEndpoint, Resource: ar2.Resource}); err != nil {
		t.Fatalf("exchange with the new client: %v", err)
	}
}
