// Package tokenexchange is the mcp-token-exchange-inbound policy (export
// McpTokenExchangeInboundPolicy): it injects the caller's own upstream OAuth credential, held by
// the gateway, into requests to an McpProxyHandler route.
package tokenexchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/upstream"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Export and PolicyType are how config names this policy.
const (
	Export     = "McpTokenExchangeInboundPolicy"
	PolicyType = "mcp-token-exchange-inbound"
	// NamePrefix is the policy-name prefix an upstream id is inferred from.
	NamePrefix = "mcp-token-exchange-"
)

// Auth modes.
const (
	AuthModeUser   = "user-oauth"
	AuthModeShared = "shared-oauth"
)

// DefaultScopeDelimiter joins scopes in the authorization request.
const DefaultScopeDelimiter = " "

var (
	authModes   = []string{AuthModeUser, AuthModeShared}
	regModes    = []string{upstream.ModeAuto, upstream.ModeManual, upstream.ModeDCR, upstream.ModeCIMD}
	authMethods = []string{upstream.AuthBasic, upstream.AuthPost, upstream.AuthNone}
	// upstreamIDPattern keeps ids safe in URL paths (/auth/connections/{id}/connect) and keys.
	upstreamIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// Policy holds the options of mcp-token-exchange-inbound. The runtime lives in other files of
// this package.
type Policy struct {
	// ID is the stable upstream id; when empty it is inferred from the policy name
	// mcp-token-exchange-{id}. Changing it orphans stored connections.
	ID string `json:"id,omitempty"`
	// DisplayName names the upstream in connect-required answers, the consent page and audit.
	DisplayName string `json:"displayName"`
	// Summary is shown on the consent page.
	Summary string `json:"summary,omitempty"`
	// AuthMode is user-oauth (a grant per user) or shared-oauth (one gateway-wide grant).
	AuthMode string `json:"authMode"`
	// Scopes requested upstream; when empty the challenge's or the metadata's scopes are used.
	Scopes []string `json:"scopes,omitempty"`
	// ScopeDelimiter joins Scopes (default a single space).
	ScopeDelimiter string `json:"scopeDelimiter,omitempty"`
	// Prompt overrides the authorize prompt parameter.
	Prompt upstream.Prompt `json:"prompt"`
	// ProtectedResourceMetadataURL overrides discovery of the upstream's RFC 9728 metadata.
	ProtectedResourceMetadataURL string `json:"protectedResourceMetadataUrl,omitempty"`

	// ClientID, ClientSecret and TokenEndpointAuthMethod are the flat form of a manual
	// registration (the policy's documented top-level options).
	ClientID                string       `json:"clientId,omitempty"`
	ClientSecret            vault.Secret `json:"clientSecret,omitempty"`
	TokenEndpointAuthMethod string       `json:"tokenEndpointAuthMethod,omitempty"`
	// ClientRegistration is "auto" | "manual" | "dcr" | "cimd" or the object form
	// {mode, clientId, clientSecret, tokenEndpointAuthMethod} of the policy's JSON schema.
	ClientRegistration *ClientRegistration `json:"clientRegistration,omitempty"`

	// AllowAnonymousCallers (an mcpgate addition, shared-oauth only) lets routes without a gateway
	// auth policy before this one serve the shared grant to anonymous callers. Without it the
	// config loader refuses such a route; with it the gateway logs a warning at start.
	AllowAnonymousCallers bool `json:"allowAnonymousCallers,omitempty"`

	name string
	// inject applies the caller's credential; set by Provision (runtime.go).
	inject policy.Inbound
}

// ClientRegistration is the clientRegistration option in either of its shapes.
type ClientRegistration struct {
	Mode                    string       `json:"mode"`
	ClientID                string       `json:"clientId,omitempty"`
	ClientSecret            vault.Secret `json:"clientSecret,omitempty"`
	TokenEndpointAuthMethod string       `json:"tokenEndpointAuthMethod,omitempty"`
	// ModeOnly is true when config wrote the string shape ("clientRegistration": "dcr").
	ModeOnly bool `json:"-"`
}

// UnmarshalJSON accepts a mode string or the object shape. Unknown keys of the object are
// reported by the config loader's strict decoding.
func (c *ClientRegistration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		*c = ClientRegistration{ModeOnly: true}
		return json.Unmarshal(b, &c.Mode)
	}
	if len(b) == 0 || b[0] != '{' {
		return errors.New("must be a mode string (" + strings.Join(regModes, ", ") + ") or an object {mode, clientId, clientSecret, tokenEndpointAuthMethod}")
	}
	type plain ClientRegistration
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*c = ClientRegistration(p)
	return nil
}

func init() {
	policy.Register(policy.Module{
		Export:        Export,
		PolicyType:    PolicyType,
		Kind:          policy.KindInbound,
		TokenExchange: true,
		New:           func() any { return new(Policy) },
	})
}

// SetName implements policy.Namer: the name an id is inferred from.
func (p *Policy) SetName(name string) { p.name = name }

// Describe names the upstream for listings (the MCP registry): its displayName and summary.
func (p *Policy) Describe() (displayName, summary string) { return p.DisplayName, p.Summary }

// UpstreamID returns options.id, else the id inferred from the policy name
// mcp-token-exchange-{id}, else "".
func (p *Policy) UpstreamID() string {
	if p.ID != "" {
		return p.ID
	}
	if id, ok := strings.CutPrefix(p.name, NamePrefix); ok {
		return id
	}
	return ""
}

// NeedsUser reports whether the policy needs an authenticated caller (user-oauth keys each
// connection by the caller); the config loader checks a gateway auth policy runs before it.
func (p *Policy) NeedsUser() bool { return p.AuthMode == AuthModeUser }

// SharesGrant reports whether every caller acts upstream with one gateway-wide grant
// (shared-oauth); the config loader refuses routes that would serve it to anonymous callers.
func (p *Policy) SharesGrant() bool { return p.AuthMode == AuthModeShared }

// AnonymousCallersAllowed reports the allowAnonymousCallers opt-in.
func (p *Policy) AnonymousCallersAllowed() bool { return p.AllowAnonymousCallers }

// Delimiter returns the effective scope delimiter.
func (p *Policy) Delimiter() string {
	if p.ScopeDelimiter == "" {
		return DefaultScopeDelimiter
	}
	return p.ScopeDelimiter
}

// Registration resolves the flat and nested shapes. Validate reports conflicts; here the
// nested value wins.
func (p *Policy) Registration() upstream.RegistrationConfig {
	r := upstream.RegistrationConfig{
		ClientID:                p.ClientID,
		ClientSecret:            p.ClientSecret,
		TokenEndpointAuthMethod: p.TokenEndpointAuthMethod,
	}
	if c := p.ClientRegistration; c != nil {
		r.Mode = c.Mode
		if c.ClientID != "" {
			r.ClientID = c.ClientID
		}
		if !c.ClientSecret.IsZero() {
			r.ClientSecret = c.ClientSecret
		}
		if c.TokenEndpointAuthMethod != "" {
			r.TokenEndpointAuthMethod = c.TokenEndpointAuthMethod
		}
	}
	if r.Mode == "" {
		r.Mode = upstream.ModeAuto
		if r.ClientID != "" {
			r.Mode = upstream.ModeManual
		}
	}
	if r.Mode != upstream.ModeManual {
		return upstream.RegistrationConfig{Mode: r.Mode}
	}
	if r.TokenEndpointAuthMethod == "" {
		r.TokenEndpointAuthMethod = upstream.AuthNone
		if !r.ClientSecret.IsZero() {
			r.TokenEndpointAuthMethod = upstream.AuthBasic
		}
	}
	return r
}

// Validate checks the options without I/O. Secrets never appear in its messages.
func (p *Policy) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	switch {
	case p.ID != "" && !upstreamIDPattern.MatchString(p.ID):
		add("options.id: must start with a letter or digit and contain only letters, digits, '.', '_' and '-', got %q", p.ID)
	case p.ID == "" && !strings.HasPrefix(p.name, NamePrefix):
		add("options.id: required unless the policy name has the form %s{id}, got name %q", NamePrefix, p.name)
	case p.ID == "" && !upstreamIDPattern.MatchString(p.UpstreamID()):
		add("options.id: the id %q inferred from the policy name is not usable (letters, digits, '.', '_' and '-' only); set options.id", p.UpstreamID())
	}
	if strings.TrimSpace(p.DisplayName) == "" {
		add("options.displayName: required: the name users see on the consent page and in connect-required answers")
	}
	switch {
	case p.AuthMode == "":
		add("options.authMode: required: one of %s", strings.Join(authModes, ", "))
	case !oneOf(p.AuthMode, authModes):
		add("options.authMode: must be one of %s, got %q", strings.Join(authModes, ", "), p.AuthMode)
	}
	for i, s := range p.Scopes {
		if strings.TrimSpace(s) == "" {
			add("options.scopes[%d]: must not be empty", i)
		}
	}
	if p.Prompt.Value != "" && !oneOf(p.Prompt.Value, upstream.PromptValues) {
		add("options.prompt: must be one of %s or false, got %q", strings.Join(upstream.PromptValues, ", "), p.Prompt.Value)
	}
	if p.AllowAnonymousCallers && p.AuthMode == AuthModeUser {
		add("options.allowAnonymousCallers: only allowed with authMode %s: a %s connection belongs to an authenticated caller", AuthModeShared, AuthModeUser)
	}
	if u := p.ProtectedResourceMetadataURL; u != "" && !httpsOrLoopback(u) {
		add("options.protectedResourceMetadataUrl: must be an absolute https URL (http only for localhost, 127.0.0.1 or ::1), got %q", u)
	}
	errs = append(errs, p.validateRegistration()...)
	return errors.Join(errs...)
}

func (p *Policy) validateRegistration() []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	c := p.ClientRegistration
	modePath := "options.clientRegistration"
	if c != nil && !c.ModeOnly {
		modePath += ".mode"
	}
	if c != nil {
		if c.Mode == "" {
			add("%s: required: one of %s", modePath, strings.Join(regModes, ", "))
		} else if !oneOf(c.Mode, regModes) {
			add("%s: must be one of %s, got %q", modePath, strings.Join(regModes, ", "), c.Mode)
		}
		// Both shapes may be written only when they agree.
		if c.ClientID != "" && p.ClientID != "" && c.ClientID != p.ClientID {
			add("options.clientId and options.clientRegistration.clientId: conflicting client ids %q and %q; set the client once", p.ClientID, c.ClientID)
		}
		if !c.ClientSecret.IsZero() && !p.ClientSecret.IsZero() && c.ClientSecret != p.ClientSecret {
			add("options.clientSecret and options.clientRegistration.clientSecret: conflicting client secrets; set the secret once")
		}
		if c.TokenEndpointAuthMethod != "" && p.TokenEndpointAuthMethod != "" && c.TokenEndpointAuthMethod != p.TokenEndpointAuthMethod {
			add("options.tokenEndpointAuthMethod and options.clientRegistration.tokenEndpointAuthMethod: conflicting values %q and %q; set the method once", p.TokenEndpointAuthMethod, c.TokenEndpointAuthMethod)
		}
	}
	r := p.Registration()
	if !oneOf(r.Mode, regModes) {
		return errs // reported above
	}
	for _, m := range []struct{ path, v string }{
		{"options.tokenEndpointAuthMethod", p.TokenEndpointAuthMethod},
		{"options.clientRegistration.tokenEndpointAuthMethod", nested(c).TokenEndpointAuthMethod},
	} {
		if m.v != "" && !oneOf(m.v, authMethods) {
			add("%s: must be one of %s, got %q", m.path, strings.Join(authMethods, ", "), m.v)
		}
	}
	if r.Mode != upstream.ModeManual {
		// Client settings only mean something for a manually registered client.
		for _, f := range []struct {
			path string
			set  bool
		}{
			{"options.clientId", p.ClientID != ""},
			{"options.clientSecret", !p.ClientSecret.IsZero()},
			{"options.tokenEndpointAuthMethod", p.TokenEndpointAuthMethod != ""},
			{"options.clientRegistration.clientId", nested(c).ClientID != ""},
			{"options.clientRegistration.clientSecret", !nested(c).ClientSecret.IsZero()},
			{"options.clientRegistration.tokenEndpointAuthMethod", nested(c).TokenEndpointAuthMethod != ""},
		} {
			if f.set {
				add("%s: only allowed with clientRegistration mode manual, got mode %s", f.path, r.Mode)
			}
		}
		return errs
	}
	// Name the fields in the shape config used.
	base := "options."
	if c != nil && !c.ModeOnly {
		base = "options.clientRegistration."
	}
	if r.ClientID == "" {
		add("%sclientId: required with clientRegistration mode manual", base)
	}
	switch {
	case (r.TokenEndpointAuthMethod == upstream.AuthBasic || r.TokenEndpointAuthMethod == upstream.AuthPost) && r.ClientSecret.IsZero():
		add("%sclientSecret: required with tokenEndpointAuthMethod %s", base, r.TokenEndpointAuthMethod)
	case r.TokenEndpointAuthMethod == upstream.AuthNone && !r.ClientSecret.IsZero():
		add("%sclientSecret: not used with tokenEndpointAuthMethod none; remove it or pick client_secret_basic or client_secret_post", base)
	}
	return errs
}

func nested(c *ClientRegistration) ClientRegistration {
	if c == nil {
		return ClientRegistration{}
	}
	return *c
}

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// httpsOrLoopback reports whether s is an absolute https URL, or an http URL of a loopback host.
func httpsOrLoopback(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return true
		}
		ip := net.ParseIP(h)
		return ip != nil && ip.IsLoopback()
	}
	return false
}

var (
	_ policy.Validator = (*Policy)(nil)
	_ policy.Namer     = (*Policy)(nil)
	_ policy.Inbound   = (*Policy)(nil)
)
