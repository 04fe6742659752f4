package jwtauth_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/mcpgate/mcpgate/internal/policy/jwtauth"
	"github.com/mcpgate/mcpgate/internal/testutil/authtest"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
)

// TestHydraJWTAccessTokens checks the policy against a real issuer: Ory Hydra's JWT access
// tokens, verified with its published JWKS, with the audience check on.
func TestHydraJWTAccessTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Ory Hydra")
	}
	h := hydra.Start(t, hydra.Options{JWTAccessTokens: true})
	const gatewayResource = "http://example.com/mcp/test"
	const otherResource = "http://example.com/mcp/other"
	client := h.CreateClient(t, hydra.ClientSpec{
		GrantTypes:              []string{"client_credentials"},
		ResponseTypes:           []string{"token"},
		Audience:                []string{gatewayResource, otherResource},
		TokenEndpointAuthMethod: "client_secret_basic",
	})
	token := func(aud string) string {
		t.Helper()
		cc := clientcredentials.Config{ClientID: client.ID, ClientSecret: client.Secret, TokenURL: h.TokenURL(),
			Scopes: []string{"mcp"}, EndpointParams: url.Values{"audience": {aud}}}
		tok, err := cc.Token(context.Background())
		if err != nil {
			t.Fatalf("client credentials grant: %v", err)
		}
		return tok.AccessToken
	}

	opts := `{"issuer":"` + h.Issuer() + `","audience":"` + gatewayResource + `","jwkUrl":"` + h.JWKSURL() + `","oAuthResourceMetadataEnabled":true}`
	g := authtest.New(t, authtest.Options{Export: jwtauth.Export, Options: opts})

	resp := g.Post(t, "/mcp/test", "Authorization", "Bearer "+token(gatewayResource))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Hydra token for this gateway: status %d: %s", resp.StatusCode, resp.Body)
	}
	seen := g.Upstream.Last(t)
	if seen.User == nil || seen.User.Sub != client.ID || seen.User.Namespace != "jwt:"+h.Issuer() {
		t.Fatalf("user %+v, want the client id as sub in namespace jwt:%s", seen.User, h.Issuer())
	}
	if seen.Header.Get("Authorization") != "" {
		t.Error("the Hydra token went upstream")
	}

	resp = g.Post(t, "/mcp/test", "Authorization", "Bearer "+token(otherResource))
	if resp.StatusCode != http.StatusUnauthorized || resp.JSON["reasonCode"] != "invalid_audience" {
		t.Fatalf("Hydra token for another resource: status %d reason %v, want 401 invalid_audience", resp.StatusCode, resp.JSON["reasonCode"])
	}
}
