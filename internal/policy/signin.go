package policy

import (
	"time"

	"github.com/mcpgate/mcpgate/internal/vault"
)

// SignIn is the gateway's authorization server for MCP clients (sign-in) as an
// mcp-oauth-inbound policy uses it.
type SignIn interface {
	// Attach serves sign-in for the routes of spec and returns the inbound step that
	// authenticates each request of those routes by a gateway-issued access token.
	Attach(spec SignInSpec) (Inbound, error)
}

// SignInSpec is one mcp-oauth-inbound policy (or provider wrapper) with every endpoint resolved.
type SignInSpec struct {
	// Name is the policy's name in policies.json, for messages.
	Name string
	// Routes are the MCP routes the policy protects.
	Routes []*RouteInfo
	// IdP is where people sign in; nil with DevLogin alone.
	IdP *IdPSpec
	// DevLogin turns on {base}/oauth/dev-login: loopback-only sign-in with a fixed subject, for
	// development and the quickstart.
	DevLogin bool

	StateTTL, SessionTTL time.Duration
	// AccessTokenTTL and RefreshTokenTTL bound the gateway's tokens (a refresh grant's lifetime).
	AccessTokenTTL, RefreshTokenTTL time.Duration
	// CIMDEnabled accepts https client ids (client ID metadata documents); CIMDAllowedHosts, when
	// set, limits them to these hosts (exact, or "*.example.com").
	CIMDEnabled      bool
	CIMDAllowedHosts []string
}

// IdPSpec is the organisation's OpenID provider the gateway signs people in with.
type IdPSpec struct {
	// Issuer is the IdP's issuer exactly as its ID tokens carry it.
	Issuer string
	// JWKSURL, AuthorizeURL and TokenURL: empty ones are taken from the issuer's OpenID discovery
	// document.
	JWKSURL, AuthorizeURL, TokenURL string
	ClientID                        string
	ClientSecret                    vault.Secret
	// Scope is what the gateway asks the IdP for (default "openid profile email").
	Scope string
	// Audience, when set, is sent as the audience parameter (Auth0) and accepted in ID tokens.
	Audience string
	// PKCE is "S256" (default) or "none".
	PKCE string
	// SubjectClaim names the claim that identifies the person (default sub); RolesClaim and
	// GroupsClaim the claims captured as request.user.data.roles and .groups.
	SubjectClaim, RolesClaim, GroupsClaim string
	// RemoteTimeout bounds each call to the IdP.
	RemoteTimeout time.Duration
}
