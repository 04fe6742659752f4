package setup

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/web"
)

// maxFormBody bounds a setup form post.
const maxFormBody = 64 << 10

// browser guards a setup page: a valid session is required (else the login page), and a POST must
// come from the gateway's own origin and carry the CSRF token bound to the session.
func (h *Handler) browser(f func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := h.currentSession(r.Context(), r)
		if err != nil {
			h.pageError(w, r, unavailable("checking the admin session", err))
			return
		}
		if s == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, h.setupPath("/login"), http.StatusSeeOther)
				return
			}
			h.pageError(w, r, problem.New(http.StatusForbidden, "Your setup session has ended. Sign in again.", nil).WithReason("session_required"))
			return
		}
		if r.Method == http.MethodPost {
			if err := h.checkForm(w, r, s.ID); err != nil {
				h.pageError(w, r, err)
				return
			}
		}
		f(w, r, s)
	})
}

// checkForm parses a form post and checks its origin and CSRF token (bound to binding).
func (h *Handler) checkForm(w http.ResponseWriter, r *http.Request, binding string) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		return badRequest("The form could not be read.")
	}
	pub := h.urls.Base(r)
	if err := web.SameOriginPost(r, pub.Scheme+"://"+pub.Host); err != nil {
		return err
	}
	if !h.csrf.Verify(binding, r.PostForm.Get("csrf")) {
		return problem.New(http.StatusForbidden, "The form's security token is missing or wrong. Reload the page and try again.",
			errors.New("csrf token mismatch")).WithReason("csrf_failed")
	}
	return nil
}

func (h *Handler) setupPath(p string) string { return h.urls.BasePath + "/setup" + p }

// pageError renders err as the browser error page; the cause goes to the log only.
func (h *Handler) pageError(w http.ResponseWriter, r *http.Request, err error) {
	pe := problem.From(err)
	rid := requestID(r.Context())
	if pe.Status >= 500 {
		h.log.Error("setup page failed", "path", r.URL.Path, "requestId", rid, "error", err)
	} else {
		h.log.Debug("setup page refused", "path", r.URL.Path, "status", pe.Status, "error", err)
	}
	for k, vs := range pe.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	_ = web.RenderError(w, web.ErrorPage{Status: pe.Status, Message: pe.Detail, RequestID: rid, Code: pe.Reason, Bucket: web.BucketGatewayConfig})
}

func (h *Handler) nav(s *session, current string) web.SetupNav {
	return web.SetupNav{Base: h.setupPath(""), Current: current, Admin: subject.Subject(s.Subject).Display(), CSRF: h.csrf.Token(s.ID)}
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, p web.SetupPage) {
	p.RequestID = requestID(r.Context())
	if err := web.RenderSetup(w, p); err != nil {
		h.log.Error("rendering a setup page", "page", p.Name, "error", err)
	}
}

// flashes are the fixed messages a redirect may ask a page to show (?flash=…), so a link cannot
// make the page say anything else.
var flashes = map[string]string{
	"checked":      "Discovery ran again; the steps below are fresh.",
	"disconnected": "The shared connection was revoked. Users get admin_connect_required until it is connected again.",
	"revoked":      "The connection was revoked. That user is asked to connect again on the next request.",
	"revoked_all":  "Revoked {n} connection(s).",
	"signed_in":    "Signed in.",
}

func flashOf(q url.Values) (string, bool) {
	msg, ok := flashes[q.Get("flash")]
	if !ok {
		return "", false
	}
	n, _ := strconv.Atoi(q.Get("n"))
	if q.Get("failed") != "" {
		return strings.ReplaceAll(msg, "{n}", strconv.Itoa(n)) + " Some failed; see the gateway log.", true
	}
	return strings.ReplaceAll(msg, "{n}", strconv.Itoa(n)), false
}

// --- login ---

// LoginPage is the login page's data.
type LoginPage struct {
	Action string
	CSRF   string
	JWT    bool // a JWT policy and MCPGATE_ADMIN_AUDIENCE are configured: admin JWTs are accepted too
}

// jwtAdmins reports whether admin JWTs can sign in: a JWT policy is configured and
// MCPGATE_ADMIN_AUDIENCE is set.
func (h *Handler) jwtAdmins() bool {
	for _, p := range h.jwt {
		if p.AdminAudience() != "" {
			return true
		}
	}
	return false
}

func (h *Handler) serveLoginPage(w http.ResponseWriter, r *http.Request) {
	if s, err := h.currentSession(r.Context(), r); err == nil && s != nil {
		http.Redirect(w, r, h.setupPath(""), http.StatusSeeOther)
		return
	}
	h.renderLogin(w, r, http.StatusOK, "", false)
}

// renderLogin shows the login form with a fresh login nonce (the CSRF binding before a session exists).
func (h *Handler) renderLogin(w http.ResponseWriter, r *http.Request, status int, flash string, bad bool) {
	nonce := randomID(16)
	http.SetCookie(w, h.cookie(r, loginCookieSecure, loginCookiePlain, nonce, int(loginNonceTTL/time.Second)))
	h.render(w, r, web.SetupPage{Name: "setup_login", Title: "Sign in", Status: status, Flash: flash, FlashBad: bad,
		Nav:  web.SetupNav{Base: h.setupPath("")},
		Data: LoginPage{Action: h.setupPath("/login"), CSRF: h.csrf.Token("login:" + nonce), JWT: h.jwtAdmins()}})
}

func (h *Handler) serveLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	nonce := h.cookieValue(r, loginCookieSecure, loginCookiePlain)
	if err := h.checkForm(w, r, "login:"+nonce); err != nil || nonce == "" {
		if err == nil {
			err = problem.New(http.StatusForbidden, "The sign-in form expired. Reload the page and try again.", nil).WithReason("csrf_failed")
		}
		h.pageError(w, r, err)
		return
	}
	a, err := h.admit(r, r.PostForm.Get("key"))
	if err != nil {
		pe := problem.From(err)
		msg := pe.Detail
		switch {
		case pe.Status == http.StatusTooManyRequests:
			w.Header().Set("Retry-After", pe.Header.Get("Retry-After"))
			msg = "Too many failed sign-ins from this address. Try again in " + pe.Header.Get("Retry-After") + " seconds."
		case pe.Status >= 500:
			msg = "The gateway cannot check keys right now; try again shortly."
		}
		h.renderLogin(w, r, pe.Status, msg, true)
		return
	}
	h.startSession(w, r, a)
	http.SetCookie(w, h.cookie(r, loginCookieSecure, loginCookiePlain, "", -1))
	h.audit.Record(ctx, audit.Event{Event: EventAdminLogin, Outcome: audit.OutcomeSuccess, SubjectID: a.Subject, Actor: a.Subject, RequestID: requestID(ctx)})
	http.Redirect(w, r, h.setupPath(""), http.StatusSeeOther)
}

func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request, _ *session) {
	h.endSession(w, r)
	http.Redirect(w, r, h.setupPath("/login"), http.StatusSeeOther)
}

// --- upstreams ---

// UpstreamsPage is the upstreams page's data.
type UpstreamsPage struct {
	Routes    []RouteView
	Upstreams []UpstreamStatus
	States    []string
	Checked   string // the upstream "Check now" just ran for (its steps are shown open)
}

func healthStrings() []string {
	out := make([]string, len(connect.HealthStates))
	for i, s := range connect.HealthStates {
		out[i] = string(s)
	}
	return out
}

func (h *Handler) serveUpstreamsPage(w http.ResponseWriter, r *http.Request, s *session) {
	ups, err := h.listUpstreams(r.Context(), r)
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	flash, bad := flashOf(r.URL.Query())
	h.render(w, r, web.SetupPage{Name: "setup_upstreams", Title: "Upstreams", Nav: h.nav(s, "upstreams"), Flash: flash, FlashBad: bad,
		Data: UpstreamsPage{Routes: h.listRoutes(), Upstreams: ups, States: healthStrings(), Checked: r.URL.Query().Get("checked")}})
}

func (h *Handler) serveCheckForm(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if _, err := h.check(r.Context(), r, id, s.Subject); err != nil {
		h.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, h.setupPath("")+"?flash=checked&checked="+url.QueryEscape(id)+"#up-"+url.PathEscape(id), http.StatusSeeOther)
}

func (h *Handler) serveConnectForm(w http.ResponseWriter, r *http.Request, s *session) {
	u, err := h.m.SharedConnectURL(r, r.PathValue("id"), s.Subject)
	switch {
	case errors.Is(err, connect.ErrUnknownUpstream):
		h.pageError(w, r, unknownUpstream(r.PathValue("id")))
		return
	case errors.Is(err, connect.ErrNotShared):
		h.pageError(w, r, badRequest("This upstream uses per-user connections (authMode user-oauth); each user connects from their MCP client."))
		return
	case err != nil:
		h.pageError(w, r, err)
		return
	}
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u, http.StatusSeeOther)
}

func (h *Handler) serveDisconnectForm(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if _, err := h.revoke(r.Context(), r, RevokeRequest{UpstreamID: id, Shared: true}, s.Subject); err != nil {
		h.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, h.setupPath("")+"?flash=disconnected#up-"+url.PathEscape(id), http.StatusSeeOther)
}

// --- connections ---

// UpstreamRef names an upstream in a filter list.
type UpstreamRef struct{ ID, DisplayName string }

// ConnectionsPage is the health view's data.
type ConnectionsPage struct {
	List         ConnectionList
	Upstreams    []UpstreamRef
	States       []string
	UpstreamName string
	// Return is this page's URL, where revoke forms come back to.
	Return string
}

func (h *Handler) upstreamRefs() []UpstreamRef {
	var out []UpstreamRef
	for _, u := range h.m.Upstreams() {
		out = append(out, UpstreamRef{ID: u.ID, DisplayName: u.DisplayName})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DisplayName < out[j].DisplayName })
	return out
}

func (h *Handler) serveConnectionsPage(w http.ResponseWriter, r *http.Request, s *session) {
	q, err := connectionQueryOf(r.URL.Query())
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	list, err := h.listConnections(r.Context(), q)
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	p := ConnectionsPage{List: list, Upstreams: h.upstreamRefs(), States: healthStrings(), Return: h.connectionsURL(q)}
	if up, ok := h.m.Upstream(q.UpstreamID); ok {
		p.UpstreamName = up.DisplayName
	}
	flash, bad := flashOf(r.URL.Query())
	h.render(w, r, web.SetupPage{Name: "setup_connections", Title: "Connections", Nav: h.nav(s, "connections"), Flash: flash, FlashBad: bad, Data: p})
}

func (h *Handler) connectionsURL(q ConnectionQuery) string {
	v := url.Values{}
	for k, val := range map[string]string{"upstream": q.UpstreamID, "state": q.State, "user": q.User} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if len(v) == 0 {
		return h.setupPath("/connections")
	}
	return h.setupPath("/connections") + "?" + v.Encode()
}

// returnTo is where a revoke form goes back to: the connections page it came from, never elsewhere.
func (h *Handler) returnTo(r *http.Request, flash string, extra url.Values) string {
	ret := r.PostForm.Get("return")
	u, err := url.Parse(ret)
	if err != nil || u.IsAbs() || u.Host != "" || u.Path != h.setupPath("/connections") {
		u, _ = url.Parse(h.setupPath("/connections"))
	}
	q := u.Query()
	q.Set("flash", flash)
	for k, vs := range extra {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (h *Handler) serveRevokeForm(w http.ResponseWriter, r *http.Request, s *session) {
	rr := RevokeRequest{UpstreamID: r.PostForm.Get("upstream"), Subject: r.PostForm.Get("subject")}
	if _, err := h.revoke(r.Context(), r, rr, s.Subject); err != nil {
		h.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, h.returnTo(r, "revoked", nil), http.StatusSeeOther)
}

func (h *Handler) serveRevokeAllForm(w http.ResponseWriter, r *http.Request, s *session) {
	q, err := connectionQueryOf(url.Values{"upstream": {r.PostForm.Get("upstream")}, "state": {r.PostForm.Get("state")}, "user": {r.PostForm.Get("user")}})
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	res, err := h.revokeAll(r.Context(), r, q, s.Subject)
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	extra := url.Values{"n": {strconv.Itoa(res.Revoked)}}
	if res.Failed > 0 {
		extra.Set("failed", strconv.Itoa(res.Failed))
	}
	http.Redirect(w, r, h.returnTo(r, "revoked_all", extra), http.StatusSeeOther)
}

// --- audit ---

// AuditPageView is the audit page's data.
type AuditPageView struct {
	Page         AuditPage
	Upstreams    []UpstreamRef
	Events       []string
	Outcomes     []string
	Since, Until string
	Older        string // link to the next (older) page
	Newest       string // link to the first page, when not on it
}

// auditEvents are the event names the filter offers.
var auditEvents = []string{
	audit.ConnectRequired, audit.ConsentApproved, audit.ConsentDenied, audit.UpstreamConnectStarted,
	audit.UpstreamConnectionEstablished, audit.UpstreamConnectionFailed, audit.UpstreamTokenRefreshed,
	audit.UpstreamRefreshFailed, audit.UpstreamReconsentRequired, audit.UpstreamConnectionRevoked,
	audit.RequestRejected, audit.RequestAccepted, EventAdminLogin, EventAdminLoginRefused, EventDiscoveryChecked,
}

func (h *Handler) serveAuditPage(w http.ResponseWriter, r *http.Request, s *session) {
	q, err := auditQueryOf(r.URL.Query())
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	page, err := h.queryAudit(r.Context(), q)
	if err != nil {
		h.pageError(w, r, err)
		return
	}
	v := AuditPageView{Page: page, Upstreams: h.upstreamRefs(), Events: auditEvents,
		Outcomes: []string{audit.OutcomeSuccess, audit.OutcomeFailure, audit.OutcomeDenied, audit.OutcomeConnectRequired}}
	if !q.Since.IsZero() {
		v.Since = q.Since.Format("2006-01-02T15:04")
	}
	if !q.Until.IsZero() {
		v.Until = q.Until.Format("2006-01-02T15:04")
	}
	params := r.URL.Query()
	params.Del("before")
	if page.NextBefore != 0 {
		older := url.Values{}
		for k, vs := range params {
			older[k] = vs
		}
		older.Set("before", strconv.FormatInt(page.NextBefore, 10))
		v.Older = h.setupPath("/audit") + "?" + older.Encode()
	}
	if q.Before != 0 {
		v.Newest = h.setupPath("/audit") + "?" + params.Encode()
	}
	h.render(w, r, web.SetupPage{Name: "setup_audit", Title: "Audit log", Nav: h.nav(s, "audit"), Data: v})
}

// ToolsPageView is the tools page: this instance's capability calls since start, by route.
type ToolsPageView struct {
	Started  time.Time
	Outcomes []string
	Routes   []ToolsRoute
}

// ToolsRoute is one route's rows of the tools page.
type ToolsRoute struct {
	Route string
	Rows  []telemetry.CapabilityRow
}

func (h *Handler) serveToolsPage(w http.ResponseWriter, r *http.Request, s *session) {
	v := ToolsPageView{Started: telemetry.Default.Started(), Outcomes: telemetry.Outcomes}
	for _, row := range telemetry.Default.CapabilityTable() {
		if n := len(v.Routes); n == 0 || v.Routes[n-1].Route != row.Route {
			v.Routes = append(v.Routes, ToolsRoute{Route: row.Route})
		}
		last := &v.Routes[len(v.Routes)-1]
		last.Rows = append(last.Rows, row)
	}
	h.render(w, r, web.SetupPage{Name: "setup_tools", Title: "Tools", Nav: h.nav(s, "tools"), Data: v})
}
