// Package apikey is the api-key-inbound policy (export ApiKeyInboundPolicy): it authenticates a
// caller by an API key that mcpgate issued (mcpgate keys create) and sets the request user to
// the key's consumer.
package apikey

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// Export and PolicyType are how config names this policy.
const (
	Export     = "ApiKeyInboundPolicy"
	PolicyType = "api-key-inbound"
)

// Defaults of the options, as Zuplo documents them.
const (
	DefaultAuthHeader      = "Authorization"
	DefaultAuthScheme      = "Bearer"
	DefaultCacheTTLSeconds = 60
)

// Policy holds the options of api-key-inbound. The runtime lives in other files of this package.
type Policy struct {
	// AuthHeader is the request header that carries the key (default Authorization).
	AuthHeader string `json:"authHeader,omitempty"`
	// AuthScheme is the scheme before the key in AuthHeader (default Bearer). An explicit empty
	// string means the header holds the bare key (e.g. authHeader "x-api-key"), so unset and ""
	// differ and the field is a pointer.
	AuthScheme *string `json:"authScheme,omitempty"`
	// CacheTTLSeconds is how long a key lookup result is cached (default 60; 0 disables the cache).
	CacheTTLSeconds *int `json:"cacheTtlSeconds,omitempty"`
	// AllowUnauthenticatedRequests lets requests without a valid key continue with no user.
	AllowUnauthenticatedRequests bool `json:"allowUnauthenticatedRequests,omitempty"`
	// BucketName and BucketID name a Zuplo key bucket. mcpgate has one key store, so they are
	// accepted for compatibility and otherwise ignored.
	BucketName string `json:"bucketName,omitempty"`
	BucketID   string `json:"bucketId,omitempty"`
	// DisableAutomaticallyAddingKeyHeaderToOpenApi is accepted for compatibility; mcpgate does
	// not generate OpenAPI documents.
	DisableAutomaticallyAddingKeyHeaderToOpenApi bool `json:"disableAutomaticallyAddingKeyHeaderToOpenApi,omitempty"`

	// st is the runtime state Provision builds (apikey.go).
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

// Scheme returns the effective scheme; "" means the header holds the bare key.
func (p *Policy) Scheme() string {
	if p.AuthScheme == nil {
		return DefaultAuthScheme
	}
	return *p.AuthScheme
}

// CacheTTL returns the effective cache lifetime in seconds.
func (p *Policy) CacheTTL() int {
	if p.CacheTTLSeconds == nil {
		return DefaultCacheTTLSeconds
	}
	return *p.CacheTTLSeconds
}

// Validate checks the options without I/O.
func (p *Policy) Validate() error {
	var errs []error
	if p.AuthHeader != "" && !isToken(p.AuthHeader) {
		errs = append(errs, fmt.Errorf("options.authHeader: must be an HTTP header name, got %q", p.AuthHeader))
	}
	if p.AuthScheme != nil && *p.AuthScheme != "" && !isToken(*p.AuthScheme) {
		errs = append(errs, fmt.Errorf("options.authScheme: must be a single word such as Bearer, or \"\" for a bare key, got %q", *p.AuthScheme))
	}
	if p.CacheTTLSeconds != nil && *p.CacheTTLSeconds < 0 {
		errs = append(errs, fmt.Errorf("options.cacheTtlSeconds: must be 0 or more, got %d", *p.CacheTTLSeconds))
	}
	return errors.Join(errs...)
}

// isToken reports whether s is an RFC 9110 token (header names, auth schemes).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return false
		}
	}
	return true
}

var (
	_ policy.Validator = (*Policy)(nil)
	_ policy.Inbound   = (*Policy)(nil)
)
