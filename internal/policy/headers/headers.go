// Package headers holds the request-header policies: set-headers-inbound, remove-headers-inbound
// and set-upstream-api-key-inbound. They change the request the route handler forwards. The
// Authorization header is special: the proxy never forwards the client's own Authorization, so a
// policy that sets Authorization sets the upstream credential (policy.Context.SetUpstreamAuthorization).
package headers

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Export names and policy types, as Zuplo documents them.
const (
	SetHeadersExport            = "SetHeadersInboundPolicy"
	SetHeadersPolicyType        = "set-headers-inbound"
	RemoveHeadersExport         = "RemoveHeadersInboundPolicy"
	RemoveHeadersPolicyType     = "remove-headers-inbound"
	SetUpstreamAPIKeyExport     = "SetUpstreamApiKeyInboundPolicy"
	SetUpstreamAPIKeyPolicyType = "set-upstream-api-key-inbound"
)

// DefaultAPIKeyHeader is set-upstream-api-key-inbound's default header.
const DefaultAPIKeyHeader = "Authorization"

// Header is one entry of set-headers-inbound's options.headers.
type Header struct {
	Name string `json:"name"`
	// Value may hold a secret ("Bearer $env(TOKEN)"), so it never prints.
	Value vault.Secret `json:"value"`
	// Overwrite replaces a value already present (default true; unset and false differ).
	Overwrite *bool `json:"overwrite,omitempty"`
}

// SetHeaders is set-headers-inbound: it sets request headers before forwarding.
type SetHeaders struct {
	Headers []Header `json:"headers"`
}

// RemoveHeaders is remove-headers-inbound: it removes request headers before forwarding.
type RemoveHeaders struct {
	Headers []string `json:"headers"`
}

// SetUpstreamAPIKey is set-upstream-api-key-inbound: one header, usually Authorization, carrying
// the upstream's API key.
type SetUpstreamAPIKey struct {
	// Header is the header name (default Authorization).
	Header string `json:"header,omitempty"`
	// Value is the header value, e.g. "Bearer $env(UPSTREAM_API_KEY)". Required.
	Value vault.Secret `json:"value"`
	// Overwrite replaces a value already present (default true).
	Overwrite *bool `json:"overwrite,omitempty"`
}

func init() {
	policy.Register(policy.Module{Export: SetHeadersExport, PolicyType: SetHeadersPolicyType,
		Kind: policy.KindInbound, New: func() any { return new(SetHeaders) }})
	policy.Register(policy.Module{Export: RemoveHeadersExport, PolicyType: RemoveHeadersPolicyType,
		Kind: policy.KindInbound, New: func() any { return new(RemoveHeaders) }})
	policy.Register(policy.Module{Export: SetUpstreamAPIKeyExport, PolicyType: SetUpstreamAPIKeyPolicyType,
		Kind: policy.KindInbound, New: func() any { return new(SetUpstreamAPIKey) }})
}

// Validate implements policy.Validator.
func (p *SetHeaders) Validate() error {
	if len(p.Headers) == 0 {
		return errors.New("options.headers: must list at least one header")
	}
	var errs []error
	for i, h := range p.Headers {
		path := fmt.Sprintf("options.headers[%d]", i)
		if err := checkName(path+".name", h.Name); err != nil {
			errs = append(errs, err)
		}
		if err := checkValue(path+".value", h.Value.Reveal()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Validate implements policy.Validator.
func (p *RemoveHeaders) Validate() error {
	if len(p.Headers) == 0 {
		return errors.New("options.headers: must list at least one header")
	}
	var errs []error
	for i, name := range p.Headers {
		if err := checkName(fmt.Sprintf("options.headers[%d]", i), name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Validate implements policy.Validator.
func (p *SetUpstreamAPIKey) Validate() error {
	var errs []error
	if p.Header != "" {
		if err := checkName("options.header", p.Header); err != nil {
			errs = append(errs, err)
		}
	}
	if p.Value.IsZero() {
		errs = append(errs, errors.New("options.value: is required"))
	} else if err := checkValue("options.value", p.Value.Reveal()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// reserved are headers the transport or the proxy owns; a policy setting them would either be
// ignored or corrupt the request.
var reserved = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true}

func checkName(path, name string) error {
	if name == "" {
		return fmt.Errorf("%s: must not be empty", path)
	}
	if !validToken(name) {
		return fmt.Errorf("%s: %q is not a valid header name", path, name)
	}
	if reserved[http.CanonicalHeaderKey(name)] {
		return fmt.Errorf("%s: %q is managed by the gateway and cannot be changed by a policy", path, name)
	}
	return nil
}

// checkValue rejects values that cannot be sent. It never quotes the value: it may be a secret.
func checkValue(path, v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("%s: must not contain CR, LF or NUL characters", path)
	}
	return nil
}

// validToken reports whether s is an RFC 9110 token (a legal header field name).
func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}

func overwrite(b *bool) bool { return b == nil || *b }

// isAuthorization reports whether name is the Authorization header, in any case.
func isAuthorization(name string) bool { return strings.EqualFold(name, "Authorization") }

// set applies one header to the request, or to the upstream credential when it is Authorization.
func set(c *policy.Context, r *http.Request, name, value string, replace bool) {
	if isAuthorization(name) {
		if _, has := c.UpstreamAuthorization(); has && !replace {
			return
		}
		c.SetUpstreamAuthorization(value)
		return
	}
	if !replace && len(r.Header.Values(name)) > 0 {
		return
	}
	r.Header.Set(name, value)
}

// HandleRequest implements policy.Inbound.
func (p *SetHeaders) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	for _, h := range p.Headers {
		set(c, r, h.Name, h.Value.Reveal(), overwrite(h.Overwrite))
	}
	return nil, nil
}

// HandleRequest implements policy.Inbound. Removing Authorization also clears an upstream
// credential an earlier policy set.
func (p *RemoveHeaders) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	for _, name := range p.Headers {
		if isAuthorization(name) {
			c.SetUpstreamAuthorization("")
		}
		r.Header.Del(name)
	}
	return nil, nil
}

// HandleRequest implements policy.Inbound.
func (p *SetUpstreamAPIKey) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	name := p.Header
	if name == "" {
		name = DefaultAPIKeyHeader
	}
	set(c, r, name, p.Value.Reveal(), overwrite(p.Overwrite))
	return nil, nil
}

var (
	_ policy.Inbound   = (*SetHeaders)(nil)
	_ policy.Inbound   = (*RemoveHeaders)(nil)
	_ policy.Inbound   = (*SetUpstreamAPIKey)(nil)
	_ policy.Validator = (*SetHeaders)(nil)
	_ policy.Validator = (*RemoveHeaders)(nil)
	_ policy.Validator = (*SetUpstreamAPIKey)(nil)
)
