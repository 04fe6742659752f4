package oauthinbound

import (
	"context"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Export and PolicyType of the generic policy.
const (
	Export     = "McpOAuthInboundPolicy"
	PolicyType = "mcp-oauth-inbound"
)

// Policy is mcp-oauth-inbound (McpOAuthInboundPolicy): sign-in at any OpenID provider, configured
// endpoint by endpoint, or the loopback-only development sign-in.
type Policy struct {
	OIDC         OIDCOptions         `json:"oidc"`
	BrowserLogin BrowserLoginOptions `json:"browserLogin"`
	Gateway      GatewayOptions      `json:"gateway"`
	IDJag        IDJagOptions        `json:"idJag"`

	runtime
}

// OIDCOptions name the OpenID provider.
type OIDCOptions struct {
	// Issuer is the IdP's issuer exactly as its ID tokens carry it. Required unless
	// browserLogin.devLogin is the only sign-in.
	Issuer string `json:"issuer,omitempty"`
	// JWKSURL verifies the ID tokens; empty: from the issuer's discovery document.
	JWKSURL string `json:"jwksUrl,omitempty"`
	// Audience is sent as the audience parameter when browserLogin.audience is not set.
	Audience string `json:"audience,omitempty"`
	// SubjectClaim, RolesClaim and GroupsClaim (mcpgate additions) name the ID-token claims
	// that identify the person (default sub) and that become request.user.data.roles and
	// .groups (defaults roles, groups).
	SubjectClaim string `json:"subjectClaim,omitempty"`
	RolesClaim   string `json:"rolesClaim,omitempty"`
	GroupsClaim  string `json:"groupsClaim,omitempty"`
}

// BrowserLoginOptions are the gateway's client at the IdP and how people sign in.
type BrowserLoginOptions struct {
	// URL and TokenURL are the IdP's authorization and token endpoints; empty: from the issuer's
	// discovery document.
	URL      string `json:"url,omitempty"`
	TokenURL string `json:"tokenUrl,omitempty"`
	ClientID string `json:"clientId,omitempty"`
	// ClientSecret is optional: a public client signs in with PKCE alone.
	ClientSecret vault.Secret `json:"clientSecret,omitempty"`
	// Scope is what the gateway asks the IdP for (default "openid profile email").
	Scope string `json:"scope,omitempty"`
	// Audience is sent as the audience parameter of the authorization request (Auth0).
	Audience string `json:"audience,omitempty"`
	BrowserLoginOverrides
	// DevLogin (an mcpgate addition) turns on the loopback-only development sign-in.
	DevLogin bool `json:"devLogin,omitempty"`
}

// idpFieldsSet lists the IdP options that are written, by their paths under options.
func (p *Policy) idpFieldsSet() []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"oidc.jwksUrl", p.OIDC.JWKSURL != ""},
		{"oidc.audience", p.OIDC.Audience != ""},
		{"browserLogin.url", p.BrowserLogin.URL != ""},
		{"browserLogin.tokenUrl", p.BrowserLogin.TokenURL != ""},
		{"browserLogin.clientId", p.BrowserLogin.ClientID != ""},
		{"browserLogin.clientSecret", !p.BrowserLogin.ClientSecret.IsZero()},
		{"browserLogin.audience", p.BrowserLogin.Audience != ""},
	} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// Validate checks the options without I/O. Secrets never appear in its messages.
func (p *Policy) Validate() error {
	var ps problems
	o, b := p.OIDC, p.BrowserLogin
	switch {
	case o.Issuer == "" && !b.DevLogin && b.ClientID == "":
		ps.add("options: a sign-in method is required: oidc.issuer with browserLogin.clientId (your OpenID provider), or browserLogin.devLogin: true (the loopback-only development sign-in)")
	case o.Issuer == "" && !b.DevLogin:
		ps.add("options.oidc.issuer: required with browserLogin.clientId: the issuer of the OpenID provider people sign in at")
	case o.Issuer == "" && len(p.idpFieldsSet()) > 0:
		ps.add("options.oidc.issuer: required with %s; remove them to use only browserLogin.devLogin", strings.Join(p.idpFieldsSet(), ", "))
	case o.Issuer != "" && b.ClientID == "":
		ps.add("options.browserLogin.clientId: required with oidc.issuer: the client id of the gateway's application at the IdP")
	}
	if o.Issuer != "" {
		ps.checkURL("options.oidc.issuer", o.Issuer, true)
	}
	if o.JWKSURL != "" {
		ps.checkURL("options.oidc.jwksUrl", o.JWKSURL, false)
	}
	if o.Audience != "" && b.Audience != "" && o.Audience != b.Audience {
		ps.add("options.oidc.audience and options.browserLogin.audience: differ (%q and %q); mcpgate uses one audience, set it once", o.Audience, b.Audience)
	}
	ps.checkClaim("options.oidc.subjectClaim", o.SubjectClaim)
	ps.checkClaim("options.oidc.rolesClaim", o.RolesClaim)
	ps.checkClaim("options.oidc.groupsClaim", o.GroupsClaim)
	if b.URL != "" {
		ps.checkURL("options.browserLogin.url", b.URL, false)
	}
	if b.TokenURL != "" {
		ps.checkURL("options.browserLogin.tokenUrl", b.TokenURL, false)
	}
	ps.checkScope("options.browserLogin.scope", b.Scope)
	// With the development sign-in alone there is no IdP client to weigh PKCE against.
	secretSet := !b.ClientSecret.IsZero() || o.Issuer == ""
	ps.checkLogin("options.browserLogin", b.BrowserLoginOverrides, secretSet)
	ps.checkGateway(p.Gateway)
	ps.checkIDJag(p.IDJag)
	return ps.err()
}

// Spec resolves the options into the sign-in the gateway serves (without Name and Routes, which
// Provision adds). It fails when the options are invalid.
func (p *Policy) Spec() (policy.SignInSpec, error) {
	if err := p.Validate(); err != nil {
		return policy.SignInSpec{}, err
	}
	var idp *policy.IdPSpec
	if p.OIDC.Issuer != "" {
		b := p.BrowserLogin
		idp = &policy.IdPSpec{
			Issuer: p.OIDC.Issuer, JWKSURL: p.OIDC.JWKSURL, AuthorizeURL: b.URL, TokenURL: b.TokenURL,
			ClientID: b.ClientID, ClientSecret: b.ClientSecret, Scope: b.Scope,
			Audience:     orDefault(b.Audience, p.OIDC.Audience),
			SubjectClaim: p.OIDC.SubjectClaim, RolesClaim: p.OIDC.RolesClaim, GroupsClaim: p.OIDC.GroupsClaim,
		}
	}
	spec := settings(idp, p.BrowserLogin.BrowserLoginOverrides, p.Gateway)
	spec.DevLogin = p.BrowserLogin.DevLogin
	return spec, nil
}

// Provision attaches the sign-in to the gateway's sign-in server (Host.SignIn).
func (p *Policy) Provision(_ context.Context, env *policy.Env) error {
	return p.attach(env, PolicyType, p.IDJag, p.Spec)
}

var (
	_ policy.Validator   = (*Policy)(nil)
	_ policy.Provisioner = (*Policy)(nil)
	_ policy.Inbound     = (*Policy)(nil)
)
