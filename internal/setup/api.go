package setup

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/requestid"
	"github.com/mcpgate/mcpgate/internal/tracing"
)

// maxJSONBody bounds an admin API request body.
const maxJSONBody = 64 << 10

func requestID(ctx context.Context) string { return requestid.From(ctx) }

// bearer authenticates an admin API request by its Authorization: Bearer credential (an admin
// API key or an admin JWT). A valid admin credential is always accepted; unknown credentials count
// towards the address's failed logins, and past the limit are answered 429.
func (h *Handler) bearer(f func(http.ResponseWriter, *http.Request, *Admin)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		cred, ok := bearerToken(r)
		if !ok {
			h.apiError(w, r, problem.New(http.StatusUnauthorized, "Send an admin API key or admin JWT as Authorization: Bearer <credential>.", nil).
				WithReason("missing_token").WithHeader("WWW-Authenticate", `Bearer realm="mcpgate-admin"`))
			return
		}
		a, err := h.admit(r, cred)
		if err != nil {
			h.apiError(w, r, err)
			return
		}
		f(w, r, a)
	})
}

// admit authenticates an admin credential from the login form or the admin API. The credential is
// always checked first, so a valid admin credential is never refused, however many failures its
// address has (behind a proxy every admin may share one address). Only an unknown credential is
// throttled: it counts as a failure of the address, and once the address has MaxFailedLogins
// recent failures it is answered 429 with Retry-After. A known credential that is no admin's is
// 403 and not counted. Refusals are audited aggregated (audit.Recorder.RecordRefusal).
func (h *Handler) admit(r *http.Request, cred string) (*Admin, error) {
	addr := h.clientAddr(r)
	a, err := h.authenticate(r.Context(), r, cred)
	if err == nil {
		h.limit.succeed(addr)
		return a, nil
	}
	return nil, h.refusal(r, addr, err)
}

// refusal maps an authentication failure to a problem, counts it when the credential is unknown,
// and audits it.
func (h *Handler) refusal(r *http.Request, addr string, err error) *problem.Error {
	refused := func(reason string) {
		h.audit.RecordRefusal(r.Context(), audit.Event{Event: EventAdminLoginRefused, Outcome: audit.OutcomeDenied, ReasonCode: reason,
			RequestID: requestID(r.Context())}, addr)
	}
	switch {
	case errors.Is(err, errNotAdmin):
		refused("not_admin")
		return problem.New(http.StatusForbidden, "This credential does not belong to an administrator. Create one with: mcpgate keys create --consumer ops --admin", err).WithReason("not_admin")
	case errors.Is(err, errAdminAudience), errors.Is(err, errJWTAdminOff):
		refused("not_admin")
		return problem.New(http.StatusForbidden, "This token is not an admin credential: "+err.Error()+" (docs/operations.md, Admins).", err).WithReason("not_admin")
	case errors.Is(err, errInvalidCredential):
		if wait := h.limit.check(addr); wait > 0 {
			refused("too_many_failed_logins")
			return tooMany(wait)
		}
		h.limit.fail(addr)
		refused("invalid_token")
		return problem.New(http.StatusUnauthorized, "The admin credential is not valid.", err).WithReason("invalid_token").
			WithHeader("WWW-Authenticate", `Bearer realm="mcpgate-admin", error="invalid_token"`)
	}
	return unavailable("checking the admin credential", err)
}

// Audit events of the admin side.
const (
	EventAdminLogin        = "mcp_admin_login"
	EventAdminLoginRefused = "mcp_admin_login_refused"
)

func tooMany(wait time.Duration) *problem.Error {
	secs := int((wait + time.Second - 1) / time.Second)
	return problem.New(http.StatusTooManyRequests, "Too many failed sign-ins from this address. Wait and try again.", nil).
		WithReason("too_many_failed_logins").WithHeader("Retry-After", strconv.Itoa(secs))
}

func bearerToken(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
	if len(v) < 7 || !equalFoldASCII(v[:7], "bearer ") {
		return "", false
	}
	tok := v[7:]
	return tok, tok != ""
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// apiError writes err as problem+json; the cause goes to the log only.
func (h *Handler) apiError(w http.ResponseWriter, r *http.Request, err error) {
	pe := problem.From(err)
	if pe.Status >= 500 {
		h.log.Error("admin request failed", "path", r.URL.Path, "requestId", requestID(r.Context()), "error", err)
	} else {
		h.log.Debug("admin request refused", "path", r.URL.Path, "status", pe.Status, "error", err)
	}
	problem.WriteTraced(w, pe, r.URL.Path, requestID(r.Context()), tracing.TraceID(r.Context()))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (h *Handler) apiRoutes(w http.ResponseWriter, _ *http.Request, _ *Admin) {
	writeJSON(w, http.StatusOK, map[string]any{"routes": h.listRoutes()})
}

func (h *Handler) apiUpstreams(w http.ResponseWriter, r *http.Request, _ *Admin) {
	ups, err := h.listUpstreams(r.Context(), r)
	if err != nil {
		h.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"upstreams": ups})
}

func (h *Handler) apiUpstream(w http.ResponseWriter, r *http.Request, _ *Admin) {
	u, err := h.getUpstream(r.Context(), r, r.PathValue("id"))
	if err != nil {
		h.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (h *Handler) apiCheck(w http.ResponseWriter, r *http.Request, a *Admin) {
	u, err := h.check(r.Context(), r, r.PathValue("id"), a.Subject)
	if err != nil {
		h.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (h *Handler) apiConnections(w http.ResponseWriter, r *http.Request, _ *Admin) {
	q, err := connectionQueryOf(r.URL.Query())
	if err == nil {
		var list ConnectionList
		if list, err = h.listConnections(r.Context(), q); err == nil {
			writeJSON(w, http.StatusOK, list)
			return
		}
	}
	h.apiError(w, r, err)
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("the body must be a JSON object with the documented fields: " + err.Error())
	}
	return nil
}

func (h *Handler) apiRevoke(w http.ResponseWriter, r *http.Request, a *Admin) {
	var rr RevokeRequest
	if err := decodeJSON(w, r, &rr); err != nil {
		h.apiError(w, r, err)
		return
	}
	res, err := h.revoke(r.Context(), r, rr, a.Subject)
	if err != nil {
		h.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (h *Handler) apiRevokeAll(w http.ResponseWriter, r *http.Request, a *Admin) {
	var q ConnectionQuery
	if err := decodeJSON(w, r, &q); err != nil {
		h.apiError(w, r, err)
		return
	}
	if q.State != "" && q.State != StateFailing && !validHealth(q.State) {
		h.apiError(w, r, badRequest("state must be one of "+healthList()+" or failing"))
		return
	}
	res, err := h.revokeAll(r.Context(), r, q, a.Subject)
	if err != nil {
		h.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (h *Handler) apiAudit(w http.ResponseWriter, r *http.Request, _ *Admin) {
	q, err := auditQueryOf(r.URL.Query())
	if err == nil {
		var page AuditPage
		if page, err = h.queryAudit(r.Context(), q); err == nil {
			writeJSON(w, http.StatusOK, page)
			return
		}
	}
	h.apiError(w, r, err)
}
