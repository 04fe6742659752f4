package connect

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/failpoint"
	"github.com/mcpgate/mcpgate/internal/requestid"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/upstream"
	"github.com/mcpgate/mcpgate/internal/vault"
	"github.com/mcpgate/mcpgate/internal/web"
)

// Browser-binding cookie of the OAuth callback (docs/architecture.md#browser-binding): __Host-
// prefixed behind https; on plain http (development) a path-scoped cookie without the prefix, which
// needs Secure.
const (
	bindingCookieSecure = "__Host-mcpgate-connect"
	bindingCookiePlain  = "mcpgate-connect"
)

// Error codes of the browser flow (docs/errors.md).
const (
	codeUnknownUpstream = "unknown_upstream"
	codeTicketInvalid   = "ticket_invalid"
	codeTicketUsed      = "ticket_used"
	codeCSRF            = "csrf_failed"
	codeNotBound        = "browser_not_signed_in_as_subject"
	codeStateInvalid    = "state_invalid"
	codeBrowserMismatch = "browser_mismatch"
	codeUpstreamDenied  = "upstream_authorization_error"
	codeStorage         = "storage_unavailable"
	codeAuthzLimited    = "authorization_limited"
)

// routes registers the browser endpoints under the base path.
func (m *Manager) routes(register func(string, http.Handler)) {
	base := m.urls.BasePath
	register("GET "+base+"/auth/connections/{id}/connect", http.HandlerFunc(m.serveConsent))
	register("POST "+base+"/auth/connections/{id}/connect", http.HandlerFunc(m.serveDecision))
	register("GET "+base+"/auth/connections/{id}/callback", http.HandlerFunc(m.serveCallback))
	register("GET "+base+"/.well-known/oauth-client/{id}", http.HandlerFunc(m.serveClientMetadata))
}

// pageError renders the browser error page; the cause goes to the log only.
func (m *Manager) pageError(w http.ResponseWriter, r *http.Request, status int, bucket web.Bucket, code, title, msg string, cause error) {
	rid := requestid.From(r.Context())
	log := m.log.With("requestId", rid, "code", code)
	if status >= 500 {
		log.Error("browser flow failed", "error", cause)
	} else {
		log.Info("browser flow refused", "error", cause)
	}
	p := web.ErrorPage{Status: status, Title: title, Message: msg, RequestID: rid, Code: code, Bucket: bucket}
	if cause != nil {
		p.Reason = safeText(cause)
	}
	var ue *upstream.Error
	if errors.As(cause, &ue) {
		p.Code, p.Reason, p.Bucket = ue.Code, ue.Reason, bucketOf(ue.Bucket)
		p.UpstreamStatus = ue.HTTPStatus
		if strings.Contains(strings.ToLower(ue.UpstreamContentType), "html") {
			p.UpstreamHTML = ue.UpstreamBody
		} else if ue.UpstreamBody != "" {
			p.UpstreamText = ue.UpstreamBody
		}
	}
	if err := web.RenderError(w, p); err != nil {
		log.Error("rendering the error page", "error", err)
	}
}

func bucketOf(b upstream.Bucket) web.Bucket {
	switch b {
	case upstream.BucketGatewayConfig:
		return web.BucketGatewayConfig
	case upstream.BucketOAuthSetup:
		return web.BucketUpstreamOAuth
	default:
		return web.BucketUpstreamResponse
	}
}

// safeText is an error's text for a page: an upstream.Error's reason, our own sentinel errors'
// text; anything else is summarised (causes may name internals).
func safeText(err error) string {
	var ue *upstream.Error
	switch {
	case errors.As(err, &ue):
		return ue.Reason
	case errors.Is(err, ErrTicketExpired), errors.Is(err, ErrTicketMalformed), errors.Is(err, ErrTicketSignature),
		errors.Is(err, ErrTicketMismatch), errors.Is(err, store.ErrAlreadyUsed), errors.Is(err, errBrowser), errors.Is(err, errState),
		errors.Is(err, errAuthzLimited):
		return err.Error()
	}
	return "see the gateway log for this request id"
}

var (
	errBrowser      = errors.New("this browser is not the one that approved the connection; start again from the MCP client's link")
	errState        = errors.New("the authorization response is unknown, expired or was already used")
	errAuthzLimited = errors.New("at most " + strconv.Itoa(AuthorizationLimit) + " sign-ins per person and upstream within 10 minutes")
)

// ticketFor verifies the ticket of a connect request against the path's upstream and the
// operationId the link names.
func (m *Manager) ticketFor(r *http.Request, raw, operationID string) (*Upstream, Ticket, error) {
	up, ok := m.Upstream(r.PathValue("id"))
	if !ok {
		return nil, Ticket{}, errUnknownUpstream
	}
	t, err := m.signer.Verify(raw)
	if err != nil {
		return nil, Ticket{}, err
	}
	if t.UpstreamID != up.ID || t.OperationID != operationID {
		return nil, Ticket{}, ErrTicketMismatch
	}
	return up, t, nil
}

var errUnknownUpstream = errors.New("no upstream with this id is configured")

func (m *Manager) ticketError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errUnknownUpstream) {
		m.pageError(w, r, http.StatusNotFound, web.BucketGatewayConfig, codeUnknownUpstream, "Unknown connection",
			"This gateway has no upstream with the id in this link.", err)
		return
	}
	msg := "This connect link cannot be used. Go back to your MCP client and try the request again to get a new link."
	if errors.Is(err, ErrTicketExpired) {
		msg = "This connect link has expired (links work for 15 minutes). Go back to your MCP client and try the request again to get a new link."
	}
	m.pageError(w, r, http.StatusBadRequest, web.BucketGatewayConfig, codeTicketInvalid, "This link no longer works", msg, err)
}

// serveConsent shows the consent page. Viewing does not consume the ticket.
func (m *Manager) serveConsent(w http.ResponseWriter, r *http.Request) {
	raw, op := r.URL.Query().Get("browserTicket"), r.URL.Query().Get("operationId")
	up, t, err := m.ticketFor(r, raw, op)
	if err != nil {
		m.ticketError(w, r, err)
		return
	}
	if !m.bound(w, r, t, m.consentURL(r, up, raw, op)) {
		return
	}
	d, err := m.engine.Discover(r.Context(), up.Upstream, up.Challenge().ResourceMetadata)
	if err != nil {
		m.pageError(w, r, http.StatusBadGateway, web.BucketUpstreamOAuth, upstream.CodeOf(err), "Cannot connect "+up.DisplayName,
			"The gateway could not find how to sign you in to "+up.DisplayName+".", err)
		return
	}
	scopes := scopesFor(up, t, d)
	// The host the person will sign in at is the authorization server's, which is what they
	// should recognise (github.com, not the MCP endpoint's API host).
	host := ""
	if u, err := url.Parse(d.AS.Issuer); err == nil {
		host = u.Host
	}
	who := subject.Subject(t.Subject).Display()
	shared := t.Mode == string(store.ModeShared)
	if shared {
		who = "every user of " + up.DisplayName + " (the shared connection)"
	}
	err = web.RenderConsent(w, web.ConsentPage{
		DisplayName: up.DisplayName, Summary: up.Summary, Scopes: scopes, AddedScopes: t.Added,
		Reconnect: t.State == "reconsent_required", Subject: who, Shared: shared, UpstreamHost: host, ExpiresAt: t.ExpiresAt,
		Action:    m.urls.Gateway(r, "/auth/connections/"+url.PathEscape(up.ID)+"/connect"),
		Hidden:    []web.Field{{Name: "browserTicket", Value: raw}, {Name: "operationId", Value: op}},
		CSRFToken: m.browserCSRF(w, r, t.ID), RequestID: requestid.From(r.Context()),
	})
	if err != nil {
		m.log.Error("rendering the consent page", "error", err)
	}
}

// scopesFor is what the authorization request asks for: the usual selection (explicit option →
// challenge → metadata), except that a step-up asks for the union of what was granted and what the
// upstream demanded, on top of any explicit scopes.
func scopesFor(up *Upstream, t Ticket, d *upstream.Discovery) []string {
	if len(t.Added) == 0 {
		return upstream.SelectScopes(up.Upstream, t.Scopes, d)
	}
	u := up.Upstream
	u.Scopes = unionScopes(up.Scopes, t.Scopes)
	return upstream.SelectScopes(u, nil, d)
}

// serveDecision handles Approve and Cancel.
func (m *Manager) serveDecision(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rid := requestid.From(ctx)
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		m.pageError(w, r, http.StatusBadRequest, web.BucketGatewayConfig, codeCSRF, "Bad request", "The form could not be read.", err)
		return
	}
	pub := m.urls.Base(r)
	if err := web.SameOriginPost(r, pub.Scheme+"://"+pub.Host); err != nil {
		m.pageError(w, r, http.StatusForbidden, web.BucketGatewayConfig, codeCSRF, "Request refused",
			"This form was submitted from another site.", err)
		return
	}
	raw, op := r.PostForm.Get("browserTicket"), r.PostForm.Get("operationId")
	up, t, err := m.ticketFor(r, raw, op)
	if err != nil {
		m.ticketError(w, r, err)
		return
	}
	if !m.bound(w, r, t, m.consentURL(r, up, raw, op)) {
		return
	}
	if !m.verifyBrowserCSRF(r, t.ID, r.PostForm.Get("csrf")) {
		m.pageError(w, r, http.StatusForbidden, web.BucketGatewayConfig, codeCSRF, "Request refused",
			"The form's security token is missing or wrong. Open the connect link again.", errors.New("csrf token mismatch"))
		return
	}
	approve := r.PostForm.Get("decision") == "approve"
	// A person is sent to the upstream's authorization server at most AuthorizationLimit times per
	// AuthorizationWindow (limits.go); checked before the ticket is used, so the link still works
	// once the window has passed. The reservation is taken back unless the browser is sent there.
	sent := false
	if approve && t.Mode == string(store.ModeUser) {
		release, until, ok := m.reserveAuthorization(ctx, store.ConnectionKey{UpstreamID: up.ID, Mode: store.ModeUser, Subject: t.Subject})
		if !ok {
			m.audit.Record(ctx, audit.Event{Event: audit.UpstreamConnectionFailed, Outcome: audit.OutcomeDenied, ReasonCode: codeAuthzLimited,
				SubjectID: t.Subject, UpstreamID: up.ID, OperationID: t.OperationID, AuthProfileID: up.AuthProfileID(), RequestID: rid, Actor: t.Actor})
			msg := "You were sent to " + up.DisplayName + "'s sign-in " + strconv.Itoa(AuthorizationLimit) +
				" times in the last 10 minutes, so the gateway stopped here: an upstream that keeps asking for a new authorization could otherwise keep you in a loop."
			if !until.IsZero() {
				msg += " This link works again after " + until.UTC().Format("15:04:05 UTC") + "."
			}
			m.pageError(w, r, http.StatusTooManyRequests, web.BucketUpstreamResponse, codeAuthzLimited, "Too many sign-in attempts", msg, errAuthzLimited)
			return
		}
		defer func() {
			if !sent {
				release()
			}
		}()
	}
	// The ticket is used once, on the decision (viewing the page does not use it).
	if err := m.store.UseTicket(ctx, t.ID, t.ExpiresAt); err != nil {
		if errors.Is(err, store.ErrAlreadyUsed) {
			m.pageError(w, r, http.StatusBadRequest, web.BucketGatewayConfig, codeTicketUsed, "This link was already used",
				"Each connect link works once. Go back to your MCP client and try the request again to get a new link.", err)
			return
		}
		m.pageError(w, r, http.StatusServiceUnavailable, web.BucketGatewayConfig, codeStorage, "Try again shortly",
			"The gateway could not record your decision.", err)
		return
	}
	ev := audit.Event{SubjectID: t.Subject, UpstreamID: up.ID, OperationID: t.OperationID, AuthProfileID: up.AuthProfileID(), RequestID: rid, Actor: t.Actor}
	if !approve {
		ev.Event, ev.Outcome = audit.ConsentDenied, audit.OutcomeDenied
		m.audit.Record(ctx, ev)
		_ = web.RenderResult(w, web.ResultPage{Kind: web.ResultCancelled, DisplayName: up.DisplayName, RequestID: rid, Shared: t.Mode == string(store.ModeShared)})
		return
	}
	ev.Event, ev.Outcome = audit.ConsentApproved, audit.OutcomeSuccess
	m.audit.Record(ctx, ev)

	ep := m.endpoints(pub)
	d, err := m.engine.Discover(ctx, up.Upstream, up.Challenge().ResourceMetadata)
	if err != nil {
		m.connectFailed(w, r, up, t, err)
		return
	}
	scopes := scopesFor(up, t, d)
	client, err := m.engine.Client(ctx, up.Upstream, d, ep, scopes)
	if err != nil {
		m.connectFailed(w, r, up, t, err)
		return
	}
	ar, err := m.engine.AuthorizationRequest(up.Upstream, d, client, scopes)
	if err != nil {
		m.connectFailed(w, r, up, t, err)
		return
	}
	// The binding cookie carries where to go back to after connecting (the sign-in consent page);
	// its hash, stored with the pending authorization, covers that too.
	nonce := randomToken(32)
	if t.ReturnTo != "" {
		nonce += "." + base64.RawURLEncoding.EncodeToString([]byte(t.ReturnTo))
	}
	nh := sha256.Sum256([]byte(nonce))
	pending := &store.PendingAuthorization{
		UpstreamID: up.ID, Mode: store.Mode(t.Mode), Subject: t.Subject, Verifier: ar.Verifier, Scopes: ar.Scopes,
		ElicitationID: t.ElicitationID, BrowserNonceHash: nh[:], RedirectURI: ar.RedirectURI, Resource: ar.Resource,
		Issuer: ar.Issuer, OperationID: t.OperationID,
	}
	if err := m.store.CreatePending(ctx, ar.State.Reveal(), pending); err != nil {
		m.pageError(w, r, http.StatusServiceUnavailable, web.BucketGatewayConfig, codeStorage, "Try again shortly",
			"The gateway could not start the connection.", err)
		return
	}
	http.SetCookie(w, m.bindingCookie(r, up.ID, nonce, int(store.PendingTTL/time.Second)))
	m.audit.Record(ctx, audit.Event{Event: audit.UpstreamConnectStarted, Outcome: audit.OutcomeSuccess, SubjectID: t.Subject, UpstreamID: up.ID,
		OperationID: t.OperationID, AuthProfileID: up.AuthProfileID(), RequestID: rid, Actor: t.Actor,
		Details: map[string]any{"scopes": strings.Join(ar.Scopes, " "), "clientMethod": client.Method, "issuer": ar.Issuer}})
	sent = true
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, ar.URL, http.StatusFound)
}

func (m *Manager) connectFailed(w http.ResponseWriter, r *http.Request, up *Upstream, t Ticket, err error) {
	m.audit.Record(r.Context(), audit.Event{Event: audit.UpstreamConnectionFailed, Outcome: audit.OutcomeFailure, ReasonCode: upstream.CodeOf(err),
		SubjectID: t.Subject, UpstreamID: up.ID, OperationID: t.OperationID, AuthProfileID: up.AuthProfileID(), RequestID: requestid.From(r.Context())})
	m.pageError(w, r, http.StatusBadGateway, web.BucketUpstreamOAuth, upstream.CodeOf(err), "Cannot connect "+up.DisplayName,
		"The gateway could not start signing you in to "+up.DisplayName+".", err)
}

// consentURL is the consent page of a connect link (where a sign-in comes back to).
func (m *Manager) consentURL(r *http.Request, up *Upstream, raw, op string) string {
	return m.urls.Gateway(r, "/auth/connections/"+url.PathEscape(up.ID)+"/connect") + "?" + url.Values{"browserTicket": {raw}, "operationId": {op}}.Encode()
}

// returnToOf reads the return URL a binding cookie carries after its nonce.
func returnToOf(cookie string) string {
	_, enc, ok := strings.Cut(cookie, ".")
	if !ok {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return ""
	}
	return string(b)
}

// ownURL reports whether raw is an absolute URL of this gateway's own endpoints.
func (m *Manager) ownURL(r *http.Request, raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	b := m.urls.Base(r)
	return strings.EqualFold(u.Scheme, b.Scheme) && strings.EqualFold(u.Host, b.Host) && u.User == nil &&
		strings.HasPrefix(u.EscapedPath(), b.Path+m.urls.BasePath+"/")
}

// bindingCookie ties the callback to the browser that approved. SameSite=Lax: the callback is a
// cross-site top-level navigation from the authorization server.
func (m *Manager) bindingCookie(r *http.Request, upstreamID, value string, maxAge int) *http.Cookie {
	if m.urls.HTTPS(r) {
		// One cookie per upstream: connecting two upstreams at once in one browser keeps both flows.
		return &http.Cookie{Name: bindingCookieSecure + "-" + upstreamID, Value: value, Path: "/", MaxAge: maxAge, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	}
	return &http.Cookie{Name: bindingCookiePlain, Value: value, Path: m.urls.BasePath + "/auth/connections/" + upstreamID + "/callback",
		MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteLaxMode}
}

// serveCallback completes the authorization: the pending authorization is claimed atomically,
// bound to this browser, state and then iss are checked before error= is looked at, the code is
// exchanged with the verifier and resource, and the connection stored.
func (m *Manager) serveCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rid := requestid.From(ctx)
	up, ok := m.Upstream(r.PathValue("id"))
	if !ok {
		m.ticketError(w, r, errUnknownUpstream)
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	name := bindingCookiePlain
	if m.urls.HTTPS(r) {
		name = bindingCookieSecure + "-" + up.ID
	}
	cookie, cerr := r.Cookie(name)
	if state == "" {
		m.pageError(w, r, http.StatusBadRequest, web.BucketUpstreamResponse, codeStateInvalid, "Connection failed", "The authorization response has no state.", errState)
		return
	}
	p, err := m.store.ConsumePending(ctx, state)
	if errors.Is(err, store.ErrNotFound) {
		m.pageError(w, r, http.StatusBadRequest, web.BucketUpstreamResponse, codeStateInvalid, "Connection failed",
			"This sign-in response is unknown, expired or was already used. Go back to your MCP client and try again.", errState)
		return
	}
	if err != nil {
		m.pageError(w, r, http.StatusServiceUnavailable, web.BucketGatewayConfig, codeStorage, "Try again shortly", "The gateway could not read the sign-in in progress.", err)
		return
	}
	http.SetCookie(w, m.bindingCookie(r, up.ID, "", -1))
	if p.UpstreamID != up.ID {
		m.pageError(w, r, http.StatusBadRequest, web.BucketUpstreamResponse, codeStateInvalid, "Connection failed", "This sign-in response belongs to another upstream.", errState)
		return
	}
	if cerr != nil || subtle.ConstantTimeCompare(sha256Of(cookie.Value), p.BrowserNonceHash) != 1 {
		m.pageError(w, r, http.StatusForbidden, web.BucketGatewayConfig, codeBrowserMismatch, "Connection refused", errBrowser.Error(), errBrowser)
		return
	}
	d, err := m.engine.Discover(ctx, up.Upstream, up.Challenge().ResourceMetadata)
	if err != nil {
		m.pageError(w, r, http.StatusBadGateway, web.BucketUpstreamOAuth, upstream.CodeOf(err), "Connection failed", "The gateway lost track of the upstream's sign-in settings.", err)
		return
	}
	if d.AS.Issuer != p.Issuer {
		m.pageError(w, r, http.StatusBadGateway, web.BucketUpstreamOAuth, upstream.CodeIssuerMismatch, "Connection failed",
			"The upstream's authorization server changed during sign-in. Try again.", errors.New("issuer changed between approve and callback"))
		return
	}
	if err := upstream.CheckIssuerParameter(q, p.Issuer, d.AS.IssParameterSupported); err != nil {
		m.pageError(w, r, http.StatusBadRequest, web.BucketUpstreamOAuth, upstream.CodeOf(err), "Connection failed", "The sign-in response did not come from the expected authorization server.", err)
		return
	}
	ev := audit.Event{SubjectID: p.Subject, UpstreamID: up.ID, OperationID: p.OperationID, AuthProfileID: up.AuthProfileID(), RequestID: rid}
	if e := q.Get("error"); e != "" {
		ev.Event, ev.Outcome, ev.ReasonCode = audit.UpstreamConnectionFailed, audit.OutcomeDenied, e
		m.audit.Record(ctx, ev)
		if e == "access_denied" {
			detail := ""
			if d := q.Get("error_description"); d != "" {
				detail = up.DisplayName + "'s authorization server said: " + d
			}
			_ = web.RenderResult(w, web.ResultPage{Kind: web.ResultDenied, DisplayName: up.DisplayName, RequestID: rid, Detail: detail, Shared: p.Mode == store.ModeShared})
			return
		}
		m.pageError(w, r, http.StatusBadGateway, web.BucketUpstreamResponse, codeUpstreamDenied, "Connection failed",
			up.DisplayName+"'s authorization server answered with an error: "+e+" "+q.Get("error_description"), errors.New("authorization error "+e))
		return
	}
	client, err := m.engine.Client(ctx, up.Upstream, d, m.Endpoints(r), p.Scopes)
	if err != nil {
		m.exchangeFailed(w, r, up, ev, err)
		return
	}
	client.RedirectURI = p.RedirectURI
	tok, issued, err := m.engine.Exchange(ctx, up.Upstream, upstream.ExchangeRequest{Code: vault.Secret(q.Get("code")), Verifier: p.Verifier,
		Client: *client, TokenEndpoint: d.AS.TokenEndpoint, Resource: p.Resource, RequestedScopes: p.Scopes})
	if err != nil {
		m.exchangeFailed(w, r, up, ev, err)
		return
	}
	key := store.ConnectionKey{UpstreamID: up.ID, Mode: p.Mode, Subject: p.Subject}
	failpoint.Hit(failpoint.CallbackAfterExchange)
	if err := m.saveConnection(ctx, key, tok, issued, p.Subject); err != nil {
		m.pageError(w, r, http.StatusServiceUnavailable, web.BucketGatewayConfig, codeStorage, "Try again shortly", "The gateway could not store the connection.", err)
		return
	}
	m.Invalidate(key)
	ev.Event, ev.Outcome = audit.UpstreamConnectionEstablished, audit.OutcomeSuccess
	ev.Details = map[string]any{"scopes": strings.Join(tok.Scopes, " "), "issuer": issued.Issuer}
	m.audit.Record(ctx, ev)
	if ret := returnToOf(cookie.Value); ret != "" && m.ownURL(r, ret) {
		http.Redirect(w, r, ret, http.StatusSeeOther)
		return
	}
	res := web.ResultPage{Kind: web.ResultConnected, DisplayName: up.DisplayName, Subject: subject.Subject(p.Subject).Display(),
		Scopes: tok.Scopes, RequestID: rid, DisconnectURL: m.DisconnectURL(r, key)}
	if p.Mode == store.ModeShared {
		// The page says whom the connection is for; "Connected as shared" would say nothing.
		res.Shared, res.Subject = true, ""
	}
	_ = web.RenderResult(w, res)
}

func (m *Manager) exchangeFailed(w http.ResponseWriter, r *http.Request, up *Upstream, ev audit.Event, err error) {
	ev.Event, ev.Outcome, ev.ReasonCode = audit.UpstreamConnectionFailed, audit.OutcomeFailure, upstream.CodeOf(err)
	m.audit.Record(r.Context(), ev)
	m.pageError(w, r, http.StatusBadGateway, web.BucketUpstreamResponse, upstream.CodeOf(err), "Connection failed",
		"The gateway could not finish signing you in to "+up.DisplayName+".", err)
}

// saveConnection creates or replaces the connection at key (compare-and-swap on its version).
func (m *Manager) saveConnection(ctx context.Context, key store.ConnectionKey, tok *upstream.Token, issued upstream.IssuedUnder, actor string) error {
	for attempt := 0; attempt < 5; attempt++ {
		conn, err := m.store.GetConnection(ctx, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			conn = &store.Connection{ConnectionKey: key, ConnectedBy: actor}
		case err != nil:
			return err
		}
		conn.Status = store.StatusActive
		conn.AccessToken, conn.RefreshToken = tok.AccessToken, tok.RefreshToken
		conn.Expiry, conn.Scopes = tok.Expiry, tok.Scopes
		conn.Issuer, conn.TokenEndpoint, conn.ClientID, conn.AuthMethod, conn.Resource = issued.Issuer, issued.TokenEndpoint, issued.ClientID, issued.AuthMethod, issued.Resource
		conn.LastError = nil
		conn.ConnectedBy = actor
		if err = m.store.PutConnection(ctx, conn); !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return errors.New("storing the connection: too many concurrent updates")
}

func sha256Of(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// serveClientMetadata serves the gateway's client ID metadata document for an upstream.
func (m *Manager) serveClientMetadata(w http.ResponseWriter, r *http.Request) {
	up, ok := m.Upstream(r.PathValue("id"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	doc, err := m.engine.ClientMetadataDocument(up.Upstream, m.Endpoints(r))
	if err != nil {
		http.Error(w, "client metadata unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(doc)
}
