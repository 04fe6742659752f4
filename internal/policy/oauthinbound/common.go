package oauthinbound

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Common holds the options every provider wrapper shares.
type Common struct {
	// ClientID is the gateway's application at the IdP (required).
	ClientID string `json:"clientId,omitempty"`
	// ClientSecret is optional: a public client signs in with PKCE alone.
	ClientSecret vault.Secret `json:"clientSecret,omitempty"`
	// Scope is what the gateway asks the IdP for (default "openid profile email").
	Scope                 string                `json:"scope,omitempty"`
	Gateway               GatewayOptions        `json:"gateway"`
	IDJag                 IDJagOptions          `json:"idJag"`
	BrowserLoginOverrides BrowserLoginOverrides `json:"browserLoginOverrides"`
	// SubjectClaim, RolesClaim and GroupsClaim are mcpgate additions, as the generic policy's
	// oidc.subjectClaim, oidc.rolesClaim and oidc.groupsClaim.
	SubjectClaim string `json:"subjectClaim,omitempty"`
	RolesClaim   string `json:"rolesClaim,omitempty"`
	GroupsClaim  string `json:"groupsClaim,omitempty"`

	runtime
}

// validate checks the shared options; provider is the IdP's name, for messages.
func (c *Common) validate(ps *problems, provider string) {
	if c.ClientID == "" {
		ps.add("options.clientId: required: the client id of the gateway's application at %s", provider)
	}
	ps.checkScope("options.scope", c.Scope)
	ps.checkClaim("options.subjectClaim", c.SubjectClaim)
	ps.checkClaim("options.rolesClaim", c.RolesClaim)
	ps.checkClaim("options.groupsClaim", c.GroupsClaim)
	ps.checkLogin("options.browserLoginOverrides", c.BrowserLoginOverrides, !c.ClientSecret.IsZero())
	ps.checkGateway(c.Gateway)
	ps.checkIDJag(c.IDJag)
}

// wrapper is one provider wrapper.
type wrapper interface {
	policy.Validator
	common() *Common
	// derive picks the row of the derivation table and the template values of the options. It
	// is called on valid options only.
	derive() (variant string, vars map[string]string)
}

// audiencer is a wrapper with an audience option (Auth0).
type audiencer interface{ audience() string }

func (c *Common) common() *Common { return c }

// resolve turns a wrapper's options into the sign-in spec through the derivation table.
func resolve(export string, w wrapper) (policy.SignInSpec, error) {
	if err := w.Validate(); err != nil {
		return policy.SignInSpec{}, err
	}
	variant, vars := w.derive()
	c := w.common()
	if vars == nil {
		vars = map[string]string{}
	}
	vars["clientId"] = url.PathEscape(c.ClientID)
	d, ok := derivation(export, variant)
	if !ok {
		return policy.SignInSpec{}, fmt.Errorf("%s: no derivation for variant %q", export, variant)
	}
	idp, err := d.expand(vars)
	if err != nil {
		return policy.SignInSpec{}, err
	}
	idp.ClientID, idp.ClientSecret, idp.Scope = c.ClientID, c.ClientSecret, c.Scope
	idp.SubjectClaim, idp.RolesClaim, idp.GroupsClaim = c.SubjectClaim, c.RolesClaim, c.GroupsClaim
	if a, ok := w.(audiencer); ok {
		idp.Audience = a.audience()
	}
	return settings(idp, c.BrowserLoginOverrides, c.Gateway), nil
}

// trimURL drops the trailing slashes of a base URL option before it is used in a template.
func trimURL(s string) string { return strings.TrimRight(s, "/") }
