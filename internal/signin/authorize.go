package signin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpgate/mcpgate/internal/browsersession"
	"github.com/mcpgate/mcpgate/internal/requestid"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/vault"
	"github.com/mcpgate/mcpgate/internal/web"
)

// Kinds of sign-in records (store.SignInRequest.Kind).
const (
	kindRequest = "request" // an authorization request on its way through login and consent
	kindCode    = "code"    // an issued authorization code
	kindLogin   = "login"   // a browser login started by a connect page (no client involved)
)

// authRequest is an MCP client's authorization request as the flow carries it, sealed in the
// store under the hash of a random handle. The handle travels as the IdP's state and in the setup
// page's URL; the browser that started the flow is bound by BrowserHash.
type authRequest struct {
	ClientID       string `json:"clientId"`
	ClientName     string `json:"clientName,omitempty"`
	ClientVerified bool   `json:"clientVerified,omitempty"`
	RedirectURI    string `json:"redirectUri"`
	// RedirectURIsHash is the hash of the client's registered redirect URIs (consent memory).
	RedirectURIsHash []byte `json:"redirectUrisHash"`
	State            string `json:"state,omitempty"`
	Challenge        string `json:"challenge"`
	Resource         string `json:"resource"`
	RoutePath        string `json:"routePath"`
	OperationID      string `json:"operationId"`
	BrowserHash      []byte `json:"browser"`
	// The IdP leg.
	Nonce    string `json:"nonce,omitempty"`
	Verifier string `json:"verifier,omitempty"`
	// After login.
	Subject  subject.Subject `json:"subject,omitempty"`
	UserData json.RawMessage `json:"userData,omitempty"`
	IDToken  string          `json:"idToken,omitempty"`
	// ReturnTo is where a login started by a connect page goes back to (kindLogin only).
	ReturnTo  string    `json:"returnTo,omitempty"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// putRecord seals v and stores it under hash.
func (s *Server) putRecord(ctx context.Context, hash []byte, kind string, v any, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	now := s.now()
	return s.store.PutSignInRequest(ctx, hash, &store.SignInRequest{Kind: kind, Payload: vault.Secret(b), CreatedAt: now, ExpiresAt: now.Add(ttl)})
}

// openRecord decodes a stored record's payload.
func (s *Server) openRecord(rec *store.SignInRequest, _ []byte, v any) error {
	return json.Unmarshal([]byte(rec.Payload.Reveal()), v)
}

// getRequest reads the authorization request of handle (not consuming it).
func (s *Server) getRequest(ctx context.Context, handle, kind string) (*authRequest, error) {
	rec, err := s.store.GetSignInRequest(ctx, store.HashToken(handle), kind)
	if err != nil {
		return nil, err
	}
	if !s.now().Before(rec.ExpiresAt) {
		return nil, store.ErrNotFound
	}
	var ar authRequest
	if err := s.openRecord(rec, nil, &ar); err != nil {
		return nil, err
	}
	return &ar, nil
}

// serveAuthorize starts a sign-in: it checks the client's request and, when it is sound, sends
// the browser to sign in. Errors that cannot be trusted to the redirect URI (unknown client, bad
// redirect URI) are shown as a page; the others go back to the client as OAuth errors.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	var rt *route
	if p := r.PathValue("route"); p != "" {
		if rt = s.routeByPath("/" + p); rt == nil {
			s.page(w, r, http.StatusNotFound, "authorize_unknown_route", "Unknown MCP server", "No MCP server of this gateway signs people in at /"+p+".", nil)
			return
		}
	}
	resource := q.Get("resource")
	switch {
	case rt == nil && resource != "":
		if rt = s.routeByResource(r, resource); rt == nil {
			s.page(w, r, http.StatusBadRequest, "invalid_target", "Unknown resource", "The resource "+resource+" is not an MCP server of this gateway that uses sign-in.", nil)
			return
		}
	case rt == nil:
		if rt = s.onlyRoute(); rt == nil {
			s.page(w, r, http.StatusBadRequest, "invalid_request", "Which MCP server?", "This gateway has several MCP servers: the authorization request must name one with the resource parameter.", nil)
			return
		}
	case resource != "" && resource != s.resourceOf(r, rt):
		s.page(w, r, http.StatusBadRequest, "invalid_target", "Wrong resource", "The resource "+resource+" is not the MCP server this authorization endpoint serves ("+s.resourceOf(r, rt)+").", nil)
		return
	}
	cl, oe := s.clientFor(ctx, rt, q.Get("client_id"))
	if q.Get("client_id") == "" {
		oe = oerr(400, "invalid_request", "client_id is required")
	}
	if oe != nil {
		s.page(w, r, http.StatusBadRequest, oe.Code, "Unknown client", "The MCP client could not be identified: "+oe.Description, oe)
		return
	}
	redirect := q.Get("redirect_uri")
	if redirect == "" && len(cl.RedirectURIs) == 1 {
		redirect = cl.RedirectURIs[0]
	}
	if !anyRedirectMatches(cl.RedirectURIs, redirect) {
		s.page(w, r, http.StatusBadRequest, "invalid_redirect_uri", "Redirect URI not registered",
			"The MCP client asked to return to an address it did not register. Nothing was sent to it.", nil)
		return
	}
	back := func(code, desc string) {
		s.redirectError(w, r, rt, redirect, q.Get("state"), code, desc)
	}
	switch {
	case q.Get("response_type") != "code":
		back("unsupported_response_type", "response_type must be code")
		return
	case q.Get("code_challenge") == "":
		back("invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256")
		return
	case q.Get("code_challenge_method") != "S256":
		back("invalid_request", "code_challenge_method must be S256")
		return
	case len(q.Get("code_challenge")) < 43 || len(q.Get("code_challenge")) > 128:
		back("invalid_request", "code_challenge is not an S256 challenge")
		return
	}
	for _, sc := range splitScope(q.Get("scope")) {
		if sc != Scope && sc != "offline_access" && sc != "openid" && sc != "profile" && sc != "email" {
			back("invalid_scope", "the only scope is "+Scope)
			return
		}
	}
	https := s.urls.HTTPS(r)
	ar := &authRequest{ClientID: cl.ID, ClientName: cl.Name, ClientVerified: cl.Verified, RedirectURI: redirect,
		RedirectURIsHash: urisHash(cl.RedirectURIs), State: q.Get("state"), Challenge: q.Get("code_challenge"),
		Resource: s.resourceOf(r, rt), RoutePath: rt.info.Path, OperationID: rt.info.OperationID,
		BrowserHash: store.HashToken(browsersession.BrowserID(w, r, https)), ExpiresAt: s.now().Add(rt.spec.StateTTL)}
	handle := randomToken("")
	// A browser already signed in at this route's login (the dev login, or this IdP in this
	// session) goes straight to consent; an IdP login otherwise, for a fresh ID token.
	if sess, err := s.sessions.Get(r); err == nil && rt.idp == nil && sess.Subject.Namespace() == subject.Dev {
		ar.Subject = sess.Subject
		ar.UserData = userData(sess)
		if err := s.putRecord(ctx, store.HashToken(handle), kindRequest, ar, rt.spec.StateTTL); err != nil {
			s.page(w, r, http.StatusServiceUnavailable, "store_unavailable", "Try again", "The gateway could not save the sign-in.", err)
			return
		}
		http.Redirect(w, r, s.endpoint(r, "/setup")+"?request="+url.QueryEscape(handle), http.StatusFound)
		return
	}
	target, err := s.startLogin(ctx, r, rt, ar, handle)
	if err != nil {
		s.page(w, r, http.StatusBadGateway, "idp_unavailable", "Sign-in is unavailable", "The gateway could not reach the identity provider.", err)
		return
	}
	if err := s.putRecord(ctx, store.HashToken(handle), kindRequest, ar, rt.spec.StateTTL); err != nil {
		s.page(w, r, http.StatusServiceUnavailable, "store_unavailable", "Try again", "The gateway could not save the sign-in.", err)
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// startLogin prepares the browser login of ar and returns where to send the browser: the IdP's
// authorization endpoint, or the development login.
func (s *Server) startLogin(ctx context.Context, r *http.Request, rt *route, ar *authRequest, handle string) (string, error) {
	if rt.idp == nil {
		return s.endpoint(r, "/dev-login") + "?request=" + url.QueryEscape(handle), nil
	}
	ar.Nonce = randomToken("")
	ar.Verifier = oauth2.GenerateVerifier()
	return rt.idp.authCodeURL(ctx, s.endpoint(r, "/callback"), handle, ar.Nonce, ar.Verifier)
}

// serveCallback is the IdP's redirect back to the gateway: it verifies the login, starts the
// browser session and continues to the consent page (or back to the connect page that asked for
// the login).
func (s *Server) serveCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	handle := q.Get("state")
	kind := kindRequest
	ar, err := s.getRequest(ctx, handle, kindRequest)
	if errors.Is(err, store.ErrNotFound) {
		kind = kindLogin
		ar, err = s.getRequest(ctx, handle, kindLogin)
	}
	if err != nil {
		s.page(w, r, http.StatusBadRequest, "signin_expired", "This sign-in has expired", "Start again from your MCP client.", err)
		return
	}
	if !s.sameBrowser(r, ar) {
		s.page(w, r, http.StatusForbidden, "signin_other_browser", "Finish in the browser you started in",
			"This sign-in was started in another browser. For your safety it can only be finished there.", nil)
		return
	}
	rt := s.routeByPath(ar.RoutePath)
	if rt == nil || rt.idp == nil {
		s.page(w, r, http.StatusBadRequest, "signin_expired", "This sign-in has expired", "The MCP server no longer uses this sign-in.", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		if kind == kindRequest {
			s.redirectError(w, r, rt, ar.RedirectURI, ar.State, "access_denied", "the sign-in at the identity provider was refused ("+e+")")
			return
		}
		s.page(w, r, http.StatusForbidden, "idp_denied", "Sign-in refused", "The identity provider refused the sign-in: "+e+".", nil)
		return
	}
	id, err := rt.idp.exchange(ctx, s.endpoint(r, "/callback"), q.Get("code"), ar.Verifier, ar.Nonce)
	if err != nil {
		s.page(w, r, http.StatusBadGateway, "idp_login_failed", "Sign-in failed", "The identity provider's answer could not be verified.", err)
		return
	}
	sess := browsersession.Session{Subject: subject.JWT(rt.idp.spec.Issuer, id.Sub), Name: id.Name, Email: id.Email,
		Roles: id.Roles, Groups: id.Groups, Method: "idp"}
	s.signedIn(ctx, w, r, rt, sess)
	if kind == kindLogin {
		_, _ = s.store.ConsumeSignInRequest(ctx, store.HashToken(handle), kindLogin)
		http.Redirect(w, r, ar.ReturnTo, http.StatusFound)
		return
	}
	ar.Subject, ar.UserData, ar.IDToken = sess.Subject, userData(&sess), id.RawIDToken
	ar.Nonce, ar.Verifier = "", ""
	if err := s.putRecord(ctx, store.HashToken(handle), kindRequest, ar, time.Until(ar.ExpiresAt)); err != nil {
		s.page(w, r, http.StatusServiceUnavailable, "store_unavailable", "Try again", "The gateway could not save the sign-in.", err)
		return
	}
	http.Redirect(w, r, s.endpoint(r, "/setup")+"?request="+url.QueryEscape(handle), http.StatusFound)
}

// serveDevLogin is the development login: loopback only, a fixed subject, no password.
func (s *Server) serveDevLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !fromLoopback(r) {
		s.page(w, r, http.StatusForbidden, "dev_login_forbidden", "Development sign-in is local only",
			"The development sign-in answers only requests from this machine's loopback address.", nil)
		return
	}
	handle := r.URL.Query().Get("request")
	ar, err := s.getRequest(ctx, handle, kindRequest)
	kind := kindRequest
	if errors.Is(err, store.ErrNotFound) {
		kind = kindLogin
		ar, err = s.getRequest(ctx, handle, kindLogin)
	}
	if err != nil {
		s.page(w, r, http.StatusBadRequest, "signin_expired", "This sign-in has expired", "Start again from your MCP client.", err)
		return
	}
	rt := s.routeByPath(ar.RoutePath)
	if rt == nil || !rt.spec.DevLogin || !s.sameBrowser(r, ar) {
		s.page(w, r, http.StatusForbidden, "dev_login_forbidden", "Development sign-in is not available",
			"This MCP server does not use the development sign-in, or the sign-in was started in another browser.", nil)
		return
	}
	sess := browsersession.Session{Subject: subject.New(subject.Dev, DevSubject), Name: DevSubject, Method: "dev"}
	s.signedIn(ctx, w, r, rt, sess)
	if kind == kindLogin {
		_, _ = s.store.ConsumeSignInRequest(ctx, store.HashToken(handle), kindLogin)
		http.Redirect(w, r, ar.ReturnTo, http.StatusFound)
		return
	}
	ar.Subject, ar.UserData = sess.Subject, userData(&sess)
	if err := s.putRecord(ctx, store.HashToken(handle), kindRequest, ar, time.Until(ar.ExpiresAt)); err != nil {
		s.page(w, r, http.StatusServiceUnavailable, "store_unavailable", "Try again", "The gateway could not save the sign-in.", err)
		return
	}
	http.Redirect(w, r, s.endpoint(r, "/setup")+"?request="+url.QueryEscape(handle), http.StatusFound)
}

// signedIn starts the browser session and records the login.
func (s *Server) signedIn(ctx context.Context, w http.ResponseWriter, r *http.Request, rt *route, sess browsersession.Session) {
	ttl := browsersession.DefaultTTL
	if rt != nil && rt.spec.SessionTTL > 0 {
		ttl = rt.spec.SessionTTL
	}
	if err := s.sessions.Set(w, s.urls.HTTPS(r), sess, ttl); err != nil {
		s.log.Error("starting a browser session", "requestId", requestid.From(ctx), "error", err)
	}
	op := ""
	if rt != nil {
		op = rt.info.OperationID
	}
	s.record(ctx, auditLogin(sess, op, requestid.From(ctx)), "browser_login")
}

// sameBrowser reports whether r comes from the browser that started ar.
func (s *Server) sameBrowser(r *http.Request, ar *authRequest) bool {
	id := browsersession.ExistingBrowserID(r)
	return id != "" && string(store.HashToken(id)) == string(ar.BrowserHash)
}

// redirectError sends an OAuth error back to the client's (already verified) redirect URI, with
// iss (RFC 9207).
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, rt *route, redirect, state, code, desc string) {
	u, err := url.Parse(redirect)
	if err != nil {
		s.page(w, r, http.StatusBadRequest, code, "Sign-in failed", desc, err)
		return
	}
	q := u.Query()
	q.Set("error", code)
	q.Set("error_description", desc)
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", s.resourceOf(r, rt))
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// page renders the browser error page.
func (s *Server) page(w http.ResponseWriter, r *http.Request, status int, code, title, msg string, cause error) {
	rid := requestid.From(r.Context())
	if status >= 500 {
		s.log.Error("sign-in failed", "requestId", rid, "code", code, "error", cause)
	} else {
		s.log.Info("sign-in refused", "requestId", rid, "code", code, "error", cause)
	}
	bucket := web.BucketGatewayConfig
	if status == http.StatusBadGateway {
		bucket = web.BucketUpstreamResponse
	}
	_ = web.RenderError(w, web.ErrorPage{Status: status, Title: title, Message: msg, RequestID: rid, Code: code, Bucket: bucket})
}

// fromLoopback reports whether the direct peer is on this machine (forwarded headers do not count).
func fromLoopback(r *http.Request) bool {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return isLoopbackHost(strings.Trim(host, "[]")) && !strings.EqualFold(strings.Trim(host, "[]"), "localhost")
}

func anyRedirectMatches(registered []string, requested string) bool {
	if requested == "" {
		return false
	}
	for _, reg := range registered {
		if redirectMatches(reg, requested) {
			return true
		}
	}
	return false
}

// splitScope splits a space-delimited scope string.
func splitScope(s string) []string { return strings.Fields(s) }
