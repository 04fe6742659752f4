// Package oauthinbound is the option layer of Zuplo's mcp-oauth-inbound policy family: the
// gateway as the OAuth authorization server of MCP clients, signing people in at the
// organisation's OpenID provider. It holds the generic policy (McpOAuthInboundPolicy) and the
// provider wrappers (McpAuth0OAuthInboundPolicy … McpPingOAuthInboundPolicy): each decodes and
// validates its options offline, resolves them into a policy.SignInSpec, and at Provision hands
// that to the gateway's sign-in server (Host.SignIn), whose inbound step then authenticates every
// request of the policy's routes. The runtime itself (endpoints, tokens) is internal/signin.
//
// ID-JAG (the idJag option) is validated but not implemented: a policy with idJag.enabled true
// passes `mcpgate validate` (so it reports only real problems) and fails Provision with an error
// that says ID-JAG is not supported in this build.
package oauthinbound

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// Defaults of the options (docs/configuration.md; PKCE differs from Zuplo, see PKCES256).
const (
	DefaultScope                  = "openid profile email"
	DefaultSubjectClaim           = "sub"
	DefaultRolesClaim             = "roles"
	DefaultGroupsClaim            = "groups"
	DefaultRemoteTimeoutMs        = 10000
	DefaultStateTTLSeconds        = 900
	DefaultSessionTTLSeconds      = 28800
	DefaultAccessTokenTTLSeconds  = 900
	DefaultRefreshTokenTTLSeconds = 2592000 // 30 days
)

// PKCE methods the gateway may use at the IdP. Zuplo defaults to none; mcpgate defaults to S256,
// which every provider the wrappers name supports.
const (
	PKCES256 = "S256"
	PKCENone = "none"
)

// ID-JAG subject mappings.
const (
	SubjectMappingIssPrefix       = "iss_prefix"
	SubjectMappingIssTenantPrefix = "iss_tenant_prefix"
	SubjectMappingSubIDOnly       = "sub_id_only"
)

// Accepted ranges of the numeric options (inclusive).
var (
	remoteTimeoutRange = bounds{100, 120000}
	stateTTLRange      = bounds{60, 3600}
	sessionTTLRange    = bounds{300, 2592000}  // 5 minutes … 30 days
	accessTTLRange     = bounds{10, 86400}     // 10 seconds … 1 day
	refreshTTLRange    = bounds{60, 315360000} // … 10 years (Zuplo's reference page names ~10 years)
	subjectMappings    = []string{SubjectMappingIssPrefix, SubjectMappingIssTenantPrefix, SubjectMappingSubIDOnly}
	pkceMethods        = []string{PKCES256, PKCENone}
	hostPattern        = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[0-9]{1,5})?$`)
	guidPattern        = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
	claimPattern       = regexp.MustCompile(`^[^\s"\\]+$`)
)

type bounds struct{ min, max int64 }

// BrowserLoginOverrides are the browser-login settings every export shares: the wrappers'
// browserLoginOverrides option, and part of the generic policy's browserLogin.
type BrowserLoginOverrides struct {
	// RemoteTimeoutMs bounds each call to the IdP (default 10000).
	RemoteTimeoutMs *int64 `json:"remoteTimeoutMs,omitempty"`
	// StateTTLSeconds is how long a browser may take to sign in at the IdP (default 900).
	StateTTLSeconds *int64 `json:"stateTtlSeconds,omitempty"`
	// SessionTTLSeconds is the lifetime of the gateway's browser session (default 28800).
	SessionTTLSeconds *int64 `json:"sessionTtlSeconds,omitempty"`
	// PKCE is S256 (default) or none.
	PKCE string `json:"pkce,omitempty"`
}

// GatewayOptions bound the tokens the gateway issues to MCP clients.
type GatewayOptions struct {
	// AccessTokenTTLSeconds is the access token lifetime (default 900).
	AccessTokenTTLSeconds *int64 `json:"accessTokenTtlSeconds,omitempty"`
	// RefreshTokenTTLSeconds is the lifetime of a refresh grant (default 2592000, 30 days).
	RefreshTokenTTLSeconds *int64 `json:"refreshTokenTtlSeconds,omitempty"`
	// CIMDEnabled accepts https client ids (client ID metadata documents); default true.
	CIMDEnabled *bool `json:"cimdEnabled,omitempty"`
	// CIMDAllowedHosts (an mcpgate addition), when set, limits those client ids to these hosts:
	// exact, or "*.example.com".
	CIMDAllowedHosts []string `json:"cimdAllowedHosts,omitempty"`
}

// IDJagOptions is Zuplo's idJag option (identity assertion JWT authorization grants). It is
// validated only: enabled fails Provision in this build.
type IDJagOptions struct {
	Enabled                          bool            `json:"enabled"`
	TrustedIssuers                   []TrustedIssuer `json:"trustedIssuers,omitempty"`
	AuthorizationDetailsTypesAllowed []string        `json:"authorizationDetailsTypesAllowed,omitempty"`
}

// TrustedIssuer is one issuer whose ID-JAG assertions would be accepted.
type TrustedIssuer struct {
	Issuer            string   `json:"issuer"`
	JWKSURL           string   `json:"jwksUrl"`
	ExpectedClientIDs []string `json:"expectedClientIds,omitempty"`
	SubjectMapping    string   `json:"subjectMapping,omitempty"`
}

// problems collects every problem of a Validate, each "options.<path>: message".
type problems struct{ errs []error }

func (ps *problems) add(format string, a ...any) { ps.errs = append(ps.errs, fmt.Errorf(format, a...)) }

func (ps *problems) err() error { return errors.Join(ps.errs...) }

// intOr returns *v, or def when unset.
func intOr(v *int64, def int64) int64 {
	if v == nil {
		return def
	}
	return *v
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func seconds(n int64) time.Duration { return time.Duration(n) * time.Second }

// checkRange reports a set value outside b.
func (ps *problems) checkRange(path string, v *int64, b bounds) {
	if v != nil && (*v < b.min || *v > b.max) {
		ps.add("%s: must be between %d and %d, got %d", path, b.min, b.max, *v)
	}
}

// checkLogin validates the shared browser-login settings under prefix (options.browserLogin or
// options.browserLoginOverrides). secretSet says whether the IdP client has a secret.
func (ps *problems) checkLogin(prefix string, o BrowserLoginOverrides, secretSet bool) {
	ps.checkRange(prefix+".remoteTimeoutMs", o.RemoteTimeoutMs, remoteTimeoutRange)
	ps.checkRange(prefix+".stateTtlSeconds", o.StateTTLSeconds, stateTTLRange)
	ps.checkRange(prefix+".sessionTtlSeconds", o.SessionTTLSeconds, sessionTTLRange)
	switch {
	case o.PKCE != "" && !oneOf(o.PKCE, pkceMethods):
		ps.add("%s.pkce: must be S256 or none, got %q", prefix, o.PKCE)
	case o.PKCE == PKCENone && !secretSet:
		ps.add("%s.pkce: none needs a clientSecret: a public client (no secret) must use PKCE; use S256", prefix)
	}
}

// checkScope requires openid in a set scope: the gateway reads the person from the ID token.
func (ps *problems) checkScope(path, scope string) {
	if scope == "" {
		return
	}
	if !oneOf("openid", strings.Fields(scope)) {
		ps.add("%s: must include openid (the gateway reads who signed in from the ID token), got %q", path, scope)
	}
}

// checkClaim validates a claim-name option.
func (ps *problems) checkClaim(path, v string) {
	if v != "" && !claimPattern.MatchString(v) {
		ps.add("%s: must be a claim name without spaces or quotes, got %q", path, v)
	}
}

// checkGateway validates the gateway option.
func (ps *problems) checkGateway(g GatewayOptions) {
	ps.checkRange("options.gateway.accessTokenTtlSeconds", g.AccessTokenTTLSeconds, accessTTLRange)
	ps.checkRange("options.gateway.refreshTokenTtlSeconds", g.RefreshTokenTTLSeconds, refreshTTLRange)
	access := intOr(g.AccessTokenTTLSeconds, DefaultAccessTokenTTLSeconds)
	refresh := intOr(g.RefreshTokenTTLSeconds, DefaultRefreshTokenTTLSeconds)
	if access > refresh && access >= accessTTLRange.min && refresh >= refreshTTLRange.min {
		ps.add("options.gateway.accessTokenTtlSeconds: must not exceed refreshTokenTtlSeconds (%d), got %d", refresh, access)
	}
	for i, h := range g.CIMDAllowedHosts {
		if !validHostPattern(h) {
			ps.add("options.gateway.cimdAllowedHosts[%d]: must be a host name such as claude.ai or a wildcard such as *.example.com, got %q", i, h)
		}
	}
	if len(g.CIMDAllowedHosts) > 0 && g.CIMDEnabled != nil && !*g.CIMDEnabled {
		ps.add("options.gateway.cimdAllowedHosts: only used with cimdEnabled: true")
	}
}

// checkIDJag validates idJag. Required fields are required only when it is enabled; what is
// written is checked either way.
func (ps *problems) checkIDJag(j IDJagOptions) {
	if j.Enabled && len(j.TrustedIssuers) == 0 {
		ps.add("options.idJag.trustedIssuers: required with idJag.enabled: at least one issuer whose assertions are accepted")
	}
	for i, ti := range j.TrustedIssuers {
		p := fmt.Sprintf("options.idJag.trustedIssuers[%d]", i)
		switch {
		case ti.Issuer == "" && j.Enabled:
			ps.add("%s.issuer: required", p)
		case ti.Issuer != "":
			ps.checkURL(p+".issuer", ti.Issuer, true)
		}
		switch {
		case ti.JWKSURL == "" && j.Enabled:
			ps.add("%s.jwksUrl: required", p)
		case ti.JWKSURL != "":
			ps.checkURL(p+".jwksUrl", ti.JWKSURL, false)
		}
		for k, c := range ti.ExpectedClientIDs {
			if strings.TrimSpace(c) == "" {
				ps.add("%s.expectedClientIds[%d]: must not be empty", p, k)
			}
		}
		if ti.SubjectMapping != "" && !oneOf(ti.SubjectMapping, subjectMappings) {
			ps.add("%s.subjectMapping: must be one of %s, got %q", p, strings.Join(subjectMappings, ", "), ti.SubjectMapping)
		}
	}
	for i, t := range j.AuthorizationDetailsTypesAllowed {
		if strings.TrimSpace(t) == "" {
			ps.add("options.idJag.authorizationDetailsTypesAllowed[%d]: must not be empty", i)
		}
	}
}

// checkURL requires an absolute https URL (http only for a loopback host). An issuer must also
// have no query or fragment (OpenID Connect Discovery §3).
func (ps *problems) checkURL(path, v string, issuer bool) bool {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || !httpsOrLoopback(u) {
		ps.add("%s: must be an absolute https URL (http only for localhost, 127.0.0.1 or ::1), got %q", path, v)
		return false
	}
	if issuer && (u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(v, "?") || strings.HasSuffix(v, "#")) {
		ps.add("%s: must not have a query or fragment, got %q", path, v)
		return false
	}
	return true
}

func httpsOrLoopback(u *url.URL) bool {
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

// checkHost requires a bare host name (what the wrappers' *Domain options take).
func (ps *problems) checkHost(path, v, example string) bool {
	switch {
	case strings.Contains(v, "://"):
		ps.add("%s: must be a bare host name such as %s, without https://, got %q", path, example, v)
	case strings.ContainsAny(v, "/?#"):
		ps.add("%s: must be a bare host name such as %s, without a path, got %q", path, example, v)
	case !hostPattern.MatchString(v):
		ps.add("%s: must be a host name such as %s, got %q", path, example, v)
	default:
		return true
	}
	return false
}

// checkBaseURL validates a wrapper option that is a base URL (keycloakBaseUrl, logtoEndpoint,
// frontendApiUrl): https (http only on loopback), no query or fragment; pathOK allows a path.
func (ps *problems) checkBaseURL(path, v string, pathOK bool, example string) bool {
	if !ps.checkURL(path, v, true) {
		return false
	}
	if u, _ := url.Parse(v); !pathOK && strings.Trim(u.Path, "/") != "" {
		ps.add("%s: must be a URL without a path such as %s, got %q", path, example, v)
		return false
	}
	return true
}

// validHostPattern accepts a host, or "*." followed by a host with at least one dot.
func validHostPattern(h string) bool {
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		return strings.Contains(rest, ".") && hostPattern.MatchString(rest)
	}
	return hostPattern.MatchString(h)
}

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// settings turns the shared options into a SignInSpec around idp (nil: development login only).
// Name and Routes are added by Provision.
func settings(idp *policy.IdPSpec, lo BrowserLoginOverrides, g GatewayOptions) policy.SignInSpec {
	if idp != nil {
		idp.PKCE = orDefault(lo.PKCE, PKCES256)
		idp.RemoteTimeout = time.Duration(intOr(lo.RemoteTimeoutMs, DefaultRemoteTimeoutMs)) * time.Millisecond
		idp.Scope = orDefault(idp.Scope, DefaultScope)
		idp.SubjectClaim = orDefault(idp.SubjectClaim, DefaultSubjectClaim)
		idp.RolesClaim = orDefault(idp.RolesClaim, DefaultRolesClaim)
		idp.GroupsClaim = orDefault(idp.GroupsClaim, DefaultGroupsClaim)
	}
	spec := policy.SignInSpec{
		IdP:             idp,
		StateTTL:        seconds(intOr(lo.StateTTLSeconds, DefaultStateTTLSeconds)),
		SessionTTL:      seconds(intOr(lo.SessionTTLSeconds, DefaultSessionTTLSeconds)),
		AccessTokenTTL:  seconds(intOr(g.AccessTokenTTLSeconds, DefaultAccessTokenTTLSeconds)),
		RefreshTokenTTL: seconds(intOr(g.RefreshTokenTTLSeconds, DefaultRefreshTokenTTLSeconds)),
		CIMDEnabled:     g.CIMDEnabled == nil || *g.CIMDEnabled,
	}
	for _, h := range g.CIMDAllowedHosts {
		spec.CIMDAllowedHosts = append(spec.CIMDAllowedHosts, strings.ToLower(h))
	}
	return spec
}
