package upstream

import (
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Bucket is who has to act on an error, as the error page and docs/errors.md show it.
type Bucket string

// Buckets. Exactly these three (Zuplo's troubleshooting buckets).
const (
	// BucketGatewayConfig: the mcpgate operator's configuration is wrong or incomplete.
	BucketGatewayConfig Bucket = "gateway configuration"
	// BucketOAuthSetup: the upstream's OAuth metadata or authorization server does not fit (no PRM,
	// issuer mismatch, no S256, client rejected).
	BucketOAuthSetup Bucket = "upstream OAuth setup"
	// BucketUpstreamResponse: the upstream or its authorization server answered badly or not at all
	// at run time (5xx, timeout, an unreadable reply, a grant it no longer honours).
	BucketUpstreamResponse Bucket = "upstream service response"
)

// Stable error codes. docs/errors.md lists each with what to fix; tests assert them.
const (
	CodeInvalidUpstreamURL    = "invalid_upstream_url"
	CodeSSRFBlocked           = "ssrf_blocked"
	CodePRMNotFound           = "prm_not_found"
	CodePRMInvalid            = "prm_invalid"
	CodePRMResourceMismatch   = "prm_resource_mismatch"
	CodePRMNoAuthServers      = "prm_no_authorization_servers"
	CodeASMetadataNotFound    = "as_metadata_not_found"
	CodeASMetadataInvalid     = "as_metadata_invalid"
	CodeIssuerMismatch        = "issuer_mismatch"
	CodePKCES256Unsupported   = "pkce_s256_unsupported"
	CodeMetadataUnreachable   = "metadata_unreachable"
	CodeRegistrationMissing   = "registration_unavailable"
	CodeCIMDRequiresHTTPS     = "cimd_requires_https"
	CodeRegistrationRejected  = "registration_rejected"
	CodeRegistrationFailed    = "registration_failed"
	CodeClientRejected        = "client_rejected"
	CodeTokenEndpointNotFound = "token_endpoint_not_found"
	CodeTokenExchangeFailed   = "token_exchange_failed"
	CodeTokenResponseInvalid  = "token_response_invalid"
	CodeRefreshGrantInvalid   = "refresh_grant_invalid"
	CodeRefreshTransient      = "refresh_transient"
	CodeRefreshFailed         = "refresh_failed"
	CodeTokenTransient        = "token_endpoint_transient"
	CodeIssMissing            = "iss_missing"
	CodeIssMismatch           = "iss_mismatch"
	CodeRevocationFailed      = "revocation_failed"
	CodeInvalidOption         = "invalid_option"
)

// maxUpstreamBody bounds the upstream body kept on an Error for the error page.
const maxUpstreamBody = 16 << 10

// Error is every failure of the engine: which bucket, a stable code, a reason a person can act on,
// and what the upstream said. It never holds tokens, codes, verifiers or secrets: UpstreamBody is
// only kept from non-2xx replies (a 2xx token reply carries tokens), and Error() does not print it.
type Error struct {
	Bucket Bucket
	Code   string
	// Reason is a sentence safe to show an operator or user.
	Reason string
	// URL is the URL involved (without query), when there is one.
	URL string
	// HTTPStatus is the upstream's status code, 0 when there was no reply.
	HTTPStatus int
	// OAuthError is the RFC 6749 error code from the reply ("invalid_grant"), when there is one.
	OAuthError string
	// OAuthErrorDescription is the reply's error_description, bounded.
	OAuthErrorDescription string
	// UpstreamBody is the upstream's non-2xx body (bounded), so the error page can show an upstream
	// HTML error (a firewall 403) instead of a generic message. UpstreamContentType is its media type.
	UpstreamBody        string
	UpstreamContentType string
	// RetryAfter is the upstream's Retry-After, for transient errors.
	RetryAfter time.Duration
	// Trace is what discovery did, for discovery errors.
	Trace []TraceStep
	Err   error // cause
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Bucket))
	b.WriteString(": ")
	b.WriteString(e.Code)
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.HTTPStatus != 0 {
		b.WriteString(" (HTTP ")
		b.WriteString(strconv.Itoa(e.HTTPStatus))
		if e.OAuthError != "" {
			b.WriteString(", ")
			b.WriteString(e.OAuthError)
		}
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Transient reports whether retrying later may succeed (408, 429, 5xx, network, timeout).
func (e *Error) Transient() bool {
	return e.Code == CodeRefreshTransient || e.Code == CodeTokenTransient || e.Code == CodeMetadataUnreachable
}

// CodeOf returns the code of the *Error in err's chain, or "".
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// IsGrantDead reports whether a refresh failed because the AS no longer honours the refresh token
// (invalid_grant, or a 400/401 that is not invalid_client). The caller decides reconsent only after
// checking that the stored refresh token did not change while the attempt ran
// (docs/architecture.md#failure-classification).
func IsGrantDead(err error) bool { return CodeOf(err) == CodeRefreshGrantInvalid }

// isTransient reports whether err is worth retrying later; tokens must be kept.
func isTransient(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Transient()
}

// IsClientRejected reports whether the AS rejected the client (invalid_client): an operator or
// registration problem, never a dead grant.
func IsClientRejected(err error) bool {
	c := CodeOf(err)
	return c == CodeClientRejected || c == CodeRegistrationRejected
}

// bounded cuts s to at most n bytes on a rune boundary.
func bounded(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
