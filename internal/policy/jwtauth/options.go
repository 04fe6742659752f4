// Package jwtauth is the open-id-jwt-auth-inbound policy (export OpenIdJwtInboundPolicy): it
// authenticates a caller by a bearer JWT checked against an issuer's JWKS or a shared secret.
package jwtauth

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Export and PolicyType are how config names this policy.
const (
	Export     = "OpenIdJwtInboundPolicy"
	PolicyType = "open-id-jwt-auth-inbound"
)

// Defaults of the options.
const (
	DefaultAuthHeader      = "Authorization"
	DefaultSubPropertyName = "sub"
)

// Policy holds the options of open-id-jwt-auth-inbound. The runtime lives in other files of this
// package.
type Policy struct {
	// Issuer is the expected iss claim (required).
	Issuer string `json:"issuer"`
	// Audience is the expected aud claim; empty means aud is not checked.
	Audience string `json:"audience,omitempty"`
	// JwkURL is the JWKS URL that verifies signatures. Exactly one of JwkURL and Secret is set.
	JwkURL string `json:"jwkUrl,omitempty"`
	// Secret is the HMAC key for HS256/384/512 tokens.
	Secret vault.Secret `json:"secret,omitempty"`
	// AuthHeader is the request header carrying "Bearer <jwt>" (default Authorization).
	AuthHeader string `json:"authHeader,omitempty"`
	// AllowUnauthenticatedRequests lets requests without a valid token continue with no user.
	AllowUnauthenticatedRequests bool `json:"allowUnauthenticatedRequests,omitempty"`
	// SubPropertyName is the claim used as the user's sub (default "sub").
	SubPropertyName string `json:"subPropertyName,omitempty"`
	// OAuthResourceMetadataEnabled adds resource_metadata to the WWW-Authenticate of 401s.
	OAuthResourceMetadataEnabled bool `json:"oAuthResourceMetadataEnabled,omitempty"`
	// ScopesSupported (an mcpgate addition, named after Zuplo's OAuthProtectedResourcePlugin
	// option) lists the scopes MCP clients should request: scopes_supported of the protected
	// resource metadata and scope of the 401 challenge. Only with oAuthResourceMetadataEnabled.
	ScopesSupported []string `json:"scopesSupported,omitempty"`

	// st is the runtime state Provision builds (jwt.go).
	st *state
}

func init() {
	policy.Register(policy.Module{
		Export:     Export,
		PolicyType: PolicyType,
		Kind:       policy.KindInbound,
		// Sets the request user.
		Authenticates: true,
		New:           func() any { return new(Policy) },
	})
}

// Header returns the effective header name.
func (p *Policy) Header() string {
	if p.AuthHeader == "" {
		return DefaultAuthHeader
	}
	return p.AuthHeader
}

// SubClaim returns the claim that names the user.
func (p *Policy) SubClaim() string {
	if p.SubPropertyName == "" {
		return DefaultSubPropertyName
	}
	return p.SubPropertyName
}

// Validate checks the options without I/O.
func (p *Policy) Validate() error {
	var errs []error
	if p.Issuer == "" {
		errs = append(errs, errors.New("options.issuer: required: the expected iss claim of accepted tokens"))
	}
	switch {
	case p.JwkURL == "" && p.Secret.IsZero():
		errs = append(errs, errors.New("options: one of jwkUrl or secret is required"))
	case p.JwkURL != "" && !p.Secret.IsZero():
		errs = append(errs, errors.New("options: set either jwkUrl or secret, not both"))
	}
	if p.JwkURL != "" {
		if u, err := url.Parse(p.JwkURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("options.jwkUrl: must be an absolute http(s) URL, got %q", p.JwkURL))
		}
	}
	for i, sc := range p.ScopesSupported {
		if sc == "" || strings.ContainsAny(sc, " \t\"\\") {
			errs = append(errs, fmt.Errorf("options.scopesSupported[%d]: must be a scope name without spaces or quotes, got %q", i, sc))
		}
	}
	if len(p.ScopesSupported) > 0 && !p.OAuthResourceMetadataEnabled {
		errs = append(errs, errors.New("options.scopesSupported: only used with oAuthResourceMetadataEnabled: true"))
	}
	return errors.Join(errs...)
}

var (
	_ policy.Validator = (*Policy)(nil)
	_ policy.Inbound   = (*Policy)(nil)
)
