package signin

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/browsersession"
	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/requestid"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/web"
)

// serveSetup is the consent page: the person sees who they are signed in as, which client asks,
// for which MCP server, and connects that server's upstreams; Authorize issues the code.
func (s *Server) serveSetup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil {
			s.page(w, r, http.StatusBadRequest, "bad_form", "Bad request", "The form could not be read.", err)
			return
		}
		if err := web.SameOriginPost(r, s.origin(r)); err != nil {
			s.page(w, r, http.StatusForbidden, "cross_origin_post", "Request refused", "This form was sent from another site.", err)
			return
		}
	}
	handle := r.FormValue("request")
	ar, err := s.getRequest(ctx, handle, kindRequest)
	if err != nil {
		s.page(w, r, http.StatusBadRequest, "signin_expired", "This sign-in has expired", "Start again from your MCP client.", err)
		return
	}
	rt := s.routeByPath(ar.RoutePath)
	if rt == nil || ar.Subject == "" {
		s.page(w, r, http.StatusBadRequest, "signin_expired", "This sign-in has expired", "Start again from your MCP client.", nil)
		return
	}
	sess, _ := s.sessions.Get(r)
	if !s.sameBrowser(r, ar) || sess == nil || sess.Subject != ar.Subject {
		s.page(w, r, http.StatusForbidden, "signin_other_browser", "Finish in the browser you started in",
			"This sign-in belongs to another browser or another person. Start again from your MCP client.", nil)
		return
	}
	binding := "signin-setup|" + browsersession.ExistingBrowserID(r) + "|" + handle
	ups := s.routeUpstreams(r, rt, ar.Subject, s.endpoint(r, "/setup")+"?request="+url.QueryEscape(handle))
	ready := allConnected(ups)
	if r.Method == http.MethodPost {
		if !s.csrf.Verify(binding, r.PostForm.Get("csrf")) {
			s.page(w, r, http.StatusForbidden, "csrf", "Request refused", "The form has expired. Start again from your MCP client.", nil)
			return
		}
		switch r.PostForm.Get("decision") {
		case "cancel":
			_, _ = s.store.ConsumeSignInRequest(ctx, store.HashToken(handle), kindRequest)
			s.record(ctx, audit.Event{Event: audit.ConsentDenied, Outcome: audit.OutcomeDenied, SubjectID: ar.Subject.String(),
				OperationID: ar.OperationID, RequestID: requestid.From(ctx), Details: map[string]any{"consent": "client", "clientId": ar.ClientID}}, "consent_denied")
			s.redirectError(w, r, rt, ar.RedirectURI, ar.State, "access_denied", "the person cancelled the sign-in")
			return
		case "approve":
			if ready {
				s.approve(w, r, rt, ar, handle)
				return
			}
		}
		http.Redirect(w, r, s.endpoint(r, "/setup")+"?request="+url.QueryEscape(handle), http.StatusSeeOther)
		return
	}
	if ready && s.consented(ctx, ar) {
		s.approve(w, r, rt, ar, handle)
		return
	}
	page := web.SignInSetupPage{RouteName: routeName(rt), Resource: ar.Resource, Person: sess.Display(), PersonDetail: personDetail(sess),
		ClientName: clientName(ar), ClientVerified: ar.ClientVerified, RedirectHost: strings.Join(redirectHosts([]string{ar.RedirectURI}), ", "),
		Ready: ready, Action: s.endpoint(r, "/setup"), Request: handle, CSRFToken: s.csrf.Token(binding), RequestID: requestid.From(ctx)}
	for _, u := range ups {
		page.Upstreams = append(page.Upstreams, web.SignInUpstream{DisplayName: u.DisplayName, Summary: u.Summary, State: u.State, ConnectURL: u.ConnectURL})
	}
	_ = web.RenderSignInSetup(w, page)
}

// approve remembers the consent, issues the single-use code and sends the browser back to the
// client.
func (s *Server) approve(w http.ResponseWriter, r *http.Request, rt *route, ar *authRequest, handle string) {
	ctx := r.Context()
	if _, err := s.store.ConsumeSignInRequest(ctx, store.HashToken(handle), kindRequest); err != nil {
		s.page(w, r, http.StatusBadRequest, "signin_expired", "This sign-in was already used", "Start again from your MCP client.", err)
		return
	}
	if err := s.store.PutClientConsent(ctx, &store.ClientConsent{Subject: ar.Subject.String(), ClientID: ar.ClientID,
		OperationID: ar.OperationID, RedirectURIsHash: ar.RedirectURIsHash, ApprovedAt: s.now()}); err != nil {
		s.log.Error("remembering a consent", "requestId", requestid.From(ctx), "error", err)
	}
	code := randomToken("mcpgate_ac_")
	if err := s.putRecord(ctx, store.HashToken(code), kindCode, codeRecord{Request: ar}, CodeTTL); err != nil {
		s.page(w, r, http.StatusServiceUnavailable, "store_unavailable", "Try again", "The gateway could not save the sign-in.", err)
		return
	}
	s.record(ctx, audit.Event{Event: audit.ConsentApproved, Outcome: audit.OutcomeSuccess, SubjectID: ar.Subject.String(),
		OperationID: ar.OperationID, RequestID: requestid.From(ctx), Details: map[string]any{"consent": "client", "clientId": ar.ClientID,
			"redirectHost": strings.Join(redirectHosts([]string{ar.RedirectURI}), ",")}}, "consent_approved")
	u, _ := url.Parse(ar.RedirectURI)
	q := u.Query()
	q.Set("code", code)
	if ar.State != "" {
		q.Set("state", ar.State)
	}
	q.Set("iss", s.resourceOf(r, rt))
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// consented reports whether the person approved this client for this route before. A
// self-asserted client whose redirect URIs changed since is asked again.
func (s *Server) consented(ctx context.Context, ar *authRequest) bool {
	c, err := s.store.GetClientConsent(ctx, ar.Subject.String(), ar.ClientID, ar.OperationID)
	if err != nil {
		return false
	}
	return ar.ClientVerified || string(c.RedirectURIsHash) == string(ar.RedirectURIsHash)
}

// routeUpstreams asks the connection manager for the route's upstreams.
func (s *Server) routeUpstreams(r *http.Request, rt *route, sub subject.Subject, returnTo string) []connect.RouteUpstream {
	if s.upstreams == nil {
		return nil
	}
	return s.upstreams.RouteUpstreams(r, rt.info.OperationID, sub, returnTo)
}

// allConnected: Authorize needs every user-oauth upstream connected (a shared one waiting for an
// administrator does not block: the person cannot do anything about it here).
func allConnected(ups []connect.RouteUpstream) bool {
	for _, u := range ups {
		if u.State != connect.StateConnected && u.State != connect.StateAdminRequired {
			return false
		}
	}
	return true
}

// origin is the gateway's public origin for r.
func (s *Server) origin(r *http.Request) string {
	b := s.urls.Base(r)
	return b.Scheme + "://" + b.Host
}

func routeName(rt *route) string {
	if rt.info.Summary != "" {
		return rt.info.Summary
	}
	return rt.info.Path
}

func clientName(ar *authRequest) string {
	if ar.ClientName != "" {
		return ar.ClientName
	}
	return "An MCP client"
}

func personDetail(sess *browsersession.Session) string {
	if sess.Name != "" && sess.Email != "" {
		return sess.Email
	}
	if ns := sess.Subject.Namespace(); strings.HasPrefix(ns, subject.JWTPrefix) {
		return "signed in at " + hostOf(strings.TrimPrefix(ns, subject.JWTPrefix))
	}
	return ""
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return raw
}

// userData is what request.user.data carries from the login (clientId is added per token).
func userData(sess *browsersession.Session) json.RawMessage {
	d := map[string]any{}
	if len(sess.Roles) > 0 {
		d["roles"] = sess.Roles
	}
	if len(sess.Groups) > 0 {
		d["groups"] = sess.Groups
	}
	if sess.Name != "" {
		d["name"] = sess.Name
	}
	if sess.Email != "" {
		d["email"] = sess.Email
	}
	b, _ := json.Marshal(d)
	return b
}

// urisHash is the hash of a client's sorted redirect URIs.
func urisHash(uris []string) []byte {
	s := slices.Clone(uris)
	slices.Sort(s)
	h := sha256.Sum256([]byte(strings.Join(s, "\n")))
	return h[:]
}

func auditLogin(sess browsersession.Session, op, rid string) audit.Event {
	return audit.Event{Event: audit.BrowserLogin, Outcome: audit.OutcomeSuccess, SubjectID: sess.Subject.String(), OperationID: op,
		RequestID: rid, Details: map[string]any{"method": sess.Method}}
}

func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// ---- browser sign-in for the connect pages (connect.BrowserSessions) ----

// Subject implements connect.BrowserSessions: who the browser is signed in as, or "".
func (s *Server) Subject(r *http.Request) subject.Subject {
	sess, err := s.sessions.Get(r)
	if err != nil {
		return ""
	}
	return sess.Subject
}

// LoginURL implements connect.BrowserSessions: where a browser signs in as someone of namespace
// and comes back to returnTo (a URL of this gateway). "" when the gateway has no sign-in for that
// namespace: an API key signs in on a form; a JWT subject at an mcp-oauth-inbound policy of the
// same issuer; the dev subject at the development login.
func (s *Server) LoginURL(r *http.Request, namespace, returnTo string) string {
	q := url.Values{"return": {returnTo}}
	switch {
	case namespace == subject.APIKey:
		return s.endpoint(r, "/login/api-key") + "?" + q.Encode()
	case namespace == subject.Dev || strings.HasPrefix(namespace, subject.JWTPrefix):
		if s.loginRoute(namespace) == nil {
			return ""
		}
		q.Set("as", namespace)
		return s.endpoint(r, "/login") + "?" + q.Encode()
	}
	return ""
}

// loginRoute is a sign-in route whose login gives subjects of namespace.
func (s *Server) loginRoute(namespace string) *route {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *route
	for _, rt := range s.routes {
		switch {
		case rt.idp != nil && namespace == subject.JWTPrefix+rt.idp.spec.Issuer:
			return rt
		case rt.idp == nil && rt.spec.DevLogin && namespace == subject.Dev:
			best = rt
		}
	}
	return best
}

// serveLogin signs a browser in for a connect page (no MCP client involved) and returns to it.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	ret := q.Get("return")
	if !s.ownURL(r, ret) {
		s.page(w, r, http.StatusBadRequest, "bad_return", "Bad sign-in link", "The sign-in link does not return to this gateway.", nil)
		return
	}
	rt := s.loginRoute(q.Get("as"))
	if rt == nil {
		s.page(w, r, http.StatusNotFound, "no_login", "No sign-in for this account", "This gateway has no sign-in for accounts of this kind.", nil)
		return
	}
	ar := &authRequest{RoutePath: rt.info.Path, OperationID: rt.info.OperationID, ReturnTo: ret,
		BrowserHash: store.HashToken(browsersession.BrowserID(w, r, s.urls.HTTPS(r))), ExpiresAt: s.now().Add(rt.spec.StateTTL)}
	handle := randomToken("")
	target, err := s.startLogin(ctx, r, rt, ar, handle)
	if err != nil {
		s.page(w, r, http.StatusBadGateway, "idp_unavailable", "Sign-in is unavailable", "The gateway could not reach the identity provider.", err)
		return
	}
	if err := s.putRecord(ctx, store.HashToken(handle), kindLogin, ar, rt.spec.StateTTL); err != nil {
		s.page(w, r, http.StatusServiceUnavailable, "store_unavailable", "Try again", "The gateway could not save the sign-in.", err)
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// ownURL reports whether raw is an absolute URL of this gateway's own endpoints.
func (s *Server) ownURL(r *http.Request, raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	b := s.urls.Base(r)
	return strings.EqualFold(u.Scheme, b.Scheme) && strings.EqualFold(u.Host, b.Host) && u.User == nil &&
		strings.HasPrefix(u.EscapedPath(), b.Path+s.urls.BasePath+"/")
}

// API-key sign-in throttling: guessing keys on the form is as hard as on the API, and bounded.
const (
	apiKeyLoginPerAddress = 20
	apiKeyLoginWindow     = 15 * time.Minute
)

// serveAPIKeyLogin signs a browser in as an API key's consumer, for the connect pages of
// api-key-inbound subjects.
func (s *Server) serveAPIKeyLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	https := s.urls.HTTPS(r)
	bid := browsersession.BrowserID(w, r, https)
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	}
	ret := r.FormValue("return")
	if !s.ownURL(r, ret) {
		s.page(w, r, http.StatusBadRequest, "bad_return", "Bad sign-in link", "The sign-in link does not return to this gateway.", nil)
		return
	}
	page := web.APIKeyLoginPage{Reason: "The page you opened acts for the owner of an API key. Sign in with that key to continue.",
		Action: s.endpoint(r, "/login/api-key"), Return: ret, CSRFToken: s.csrf.Token("apikey-login|" + bid), RequestID: requestid.From(ctx)}
	if r.Method != http.MethodPost {
		_ = web.RenderAPIKeyLogin(w, page)
		return
	}
	if err := web.SameOriginPost(r, s.origin(r)); err != nil {
		s.page(w, r, http.StatusForbidden, "cross_origin_post", "Request refused", "This form was sent from another site.", err)
		return
	}
	if !s.csrf.Verify("apikey-login|"+bid, r.PostFormValue("csrf")) {
		page.Error, page.Status = "The form expired; try again.", http.StatusForbidden
		_ = web.RenderAPIKeyLogin(w, page)
		return
	}
	if wait := s.allow("apikey-login:"+clientAddr(r), apiKeyLoginPerAddress, apiKeyLoginWindow); wait > 0 {
		w.Header().Set("Retry-After", itoa(int(wait.Seconds())+1))
		page.Error, page.Status = "Too many attempts from this address; try again later.", http.StatusTooManyRequests
		_ = web.RenderAPIKeyLogin(w, page)
		return
	}
	k, err := s.store.LookupAPIKey(ctx, store.HashAPIKey(strings.TrimSpace(r.PostFormValue("key"))))
	now := s.now()
	if err != nil || !k.RevokedAt.IsZero() || (!k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)) {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.page(w, r, http.StatusServiceUnavailable, "store_unavailable", "Try again", "The gateway could not check the key.", err)
			return
		}
		page.Error, page.Status = "That API key is not valid.", http.StatusUnauthorized
		_ = web.RenderAPIKeyLogin(w, page)
		return
	}
	sess := browsersession.Session{Subject: subject.New(subject.APIKey, k.Consumer), Name: k.Consumer, Method: "apikey"}
	if err := s.sessions.Set(w, https, sess, browsersession.DefaultTTL); err != nil {
		s.page(w, r, http.StatusInternalServerError, "session", "Sign-in failed", "The gateway could not start a session.", err)
		return
	}
	s.record(ctx, auditLogin(sess, "", requestid.From(ctx)), "browser_login")
	http.Redirect(w, r, ret, http.StatusSeeOther)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// HasLogin reports whether the gateway can sign a browser in as a subject of namespace (see
// LoginURL).
func (s *Server) HasLogin(namespace string) bool {
	return namespace == subject.APIKey || s.loginRoute(namespace) != nil
}

var _ connect.BrowserSessions = (*Server)(nil)
