// Package authcommon holds what the gateway-auth policies (api-key-inbound,
// open-id-jwt-auth-inbound) share: the 401 answer with its WWW-Authenticate challenge, reason code
// and audit event, credential extraction, and the RFC 9728 protected-resource metadata document
// that makes the gateway an MCP resource server.
package authcommon

import (
	"net/http"
	"strings"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
)

// Reason codes of refused requests. They appear as reasonCode in the problem body and the audit
// event (Zuplo's vocabulary where it has one).
const (
	ReasonMissingToken     = "missing_token"
	ReasonInvalidToken     = "invalid_token"
	ReasonInvalidAudience  = "invalid_audience"
	ReasonInvalidIssuer    = "invalid_issuer"
	ReasonExpired          = "expired"
	ReasonNotYetValid      = "not_yet_valid"
	ReasonRevoked          = "revoked"
	ReasonUnknownKey       = "unknown_key"
	ReasonInvalidSignature = "invalid_signature"
	ReasonUnsupportedAlg   = "unsupported_algorithm"
	// ReasonAdminKeyOnMCPRoute refuses an admin API key on an MCP route: admin keys are for the
	// setup UI and the admin API only.
	ReasonAdminKeyOnMCPRoute = "admin_key_on_mcp_route"
)

// Param is one auth-param of a challenge.
type Param struct{ Name, Value string }

// Challenge formats an RFC 9110 challenge: scheme followed by quoted auth-params, e.g.
// `Bearer resource_metadata="https://gw/.well-known/oauth-protected-resource/mcp", error="invalid_token"`.
// Params with an empty value are left out.
func Challenge(scheme string, params ...Param) string {
	var b strings.Builder
	b.WriteString(scheme)
	first := true
	for _, p := range params {
		if p.Value == "" {
			continue
		}
		if first {
			b.WriteByte(' ')
			first = false
		} else {
			b.WriteString(", ")
		}
		b.WriteString(p.Name)
		b.WriteString(`="`)
		b.WriteString(quote(p.Value))
		b.WriteByte('"')
	}
	return b.String()
}

// quote escapes a quoted-string's content (RFC 9110 §5.6.4) and drops control characters, which
// cannot appear in a header.
func quote(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < ' ' || r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Refusal describes why a policy refuses a request.
type Refusal struct {
	// Policy is the name the policy is configured under, for the audit event.
	Policy string
	Reason string // reason code
	Detail string // safe for the client
	// Challenge is the WWW-Authenticate value.
	Challenge string
	// Subject is the namespaced subject when it is known (a revoked key's consumer, the sub of an
	// expired but correctly signed token).
	Subject string
	// Details are extra non-secret audit facts (key id, token issuer).
	Details map[string]any
	// Cause is logged, never shown.
	Cause error
}

// Refuse records the mcp_request_rejected audit event and returns the 401 problem to answer with.
// The event is aggregated (audit.Recorder.RecordRefusal): refusals of one kind from one client
// address within a minute are one row with a count, written in the background, so anonymous
// traffic cannot grow the database; the log line per refusal is at debug level.
func Refuse(c *policy.Context, r *http.Request, rec *audit.Recorder, f Refusal) *problem.Error {
	details := map[string]any{"policy": f.Policy}
	for k, v := range f.Details {
		details[k] = v
	}
	ev := audit.Event{
		Event:      audit.RequestRejected,
		Outcome:    audit.OutcomeDenied,
		ReasonCode: f.Reason,
		SubjectID:  f.Subject,
		RequestID:  c.RequestID,
		Details:    details,
	}
	if c.Route != nil {
		ev.OperationID = c.Route.OperationID
	}
	rec.RecordRefusal(r.Context(), ev, rec.ClientAddr(r))
	pe := problem.New(http.StatusUnauthorized, f.Detail, f.Cause).WithReason(f.Reason)
	if f.Challenge != "" {
		pe.WithHeader("WWW-Authenticate", f.Challenge)
	}
	return pe
}

// Credential reads the credential from header. scheme "" means the header holds the bare
// credential; otherwise the value must be "<scheme> <credential>" (scheme case-insensitive, RFC
// 9110 §11.1). present reports whether the header was sent at all; a present header with another
// scheme or no credential yields ok false.
func Credential(r *http.Request, header, scheme string) (cred string, present, ok bool) {
	v := strings.TrimSpace(r.Header.Get(header))
	if v == "" {
		return "", false, false
	}
	if scheme == "" {
		return v, true, true
	}
	s, rest, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(s, scheme) {
		return "", true, false
	}
	rest = strings.TrimSpace(rest)
	if rest == "" || strings.ContainsAny(rest, " \t") {
		return "", true, false
	}
	return rest, true, true
}

// Conclude applies an authentication attempt the same way for every gateway auth policy: a
// user continues the request with the credential header removed; with allowAnonymous (or when
// no credential was sent and an earlier policy already set a user) the request continues, and a
// failed Authorization stays for a later auth policy to read (the proxy never forwards it) while
// any other header goes; otherwise the header is removed and refuse answers.
func Conclude(c *policy.Context, r *http.Request, header string, u *policy.User, present, allowAnonymous bool, refuse func() error) error {
	if u != nil {
		r.Header.Del(header)
		c.User = u
		return nil
	}
	if allowAnonymous || (!present && c.User != nil) {
		if !strings.EqualFold(header, "Authorization") {
			r.Header.Del(header)
		}
		return nil
	}
	r.Header.Del(header)
	return refuse()
}
