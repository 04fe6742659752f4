package connect

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/requestid"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/tracing"
	"github.com/mcpgate/mcpgate/internal/web"
)

// A user disconnects their own connection in one of two ways:
//
//   - DELETE {base}/connections/{upstream id} with the gateway credential their MCP client uses
//     (authenticated by the inbound policies of a route of that upstream, policy.Authenticator);
//   - the "Disconnect" link on the connect result page: a short-lived sealed token naming the
//     connection, a confirm page, and a same-origin POST carrying a CSRF token.
//
// Both revoke the refresh token at the authorization server when it offers RFC 7009
// (best effort, bounded), wipe the stored tokens, keep the row (status revoked) and its history,
// and record an audit event. Shared connections are an administrator's (mcpgate connections
// revoke, the admin API).

// DisconnectLinkTTL is how long the disconnect link of a result page works.
const DisconnectLinkTTL = 15 * time.Minute

// disconnectPrefix marks a sealed ticket as a disconnect link: its UpstreamID is this prefix plus
// the upstream id, so a connect link never passes as a disconnect link (or the reverse), though
// both are sealed with the same key.
const disconnectPrefix = "disconnect/"

// Reason codes of a user's disconnect (audit and the connection's last error).
const (
	reasonUserDisconnect = "user_disconnect"
	codeDisconnect       = "disconnect_link_invalid"
)

// mountDisconnect registers the disconnect endpoints. The API authenticates with auth.
func (m *Manager) mountDisconnect(register func(string, http.Handler), auth policy.Authenticator) {
	base := m.urls.BasePath
	register("DELETE "+base+"/connections/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serveDisconnectAPI(w, r, auth)
	}))
	register("GET "+base+"/auth/connections/{id}/disconnect", http.HandlerFunc(m.serveDisconnectConfirm))
	register("POST "+base+"/auth/connections/{id}/disconnect", http.HandlerFunc(m.serveDisconnectPost))
}

// DisconnectResult is the DELETE answer.
type DisconnectResult struct {
	UpstreamID string `json:"upstreamServerId"`
	// Disconnected is false when there was nothing to disconnect (never connected, or already).
	Disconnected bool `json:"disconnected"`
	// UpstreamRevocation is what the authorization server was told (see RevokeResult).
	UpstreamRevocation string `json:"upstreamRevocation"`
}

func (m *Manager) serveDisconnectAPI(w http.ResponseWriter, r *http.Request, auth policy.Authenticator) {
	fail := func(err error) {
		problem.WriteTraced(w, problem.From(err), r.URL.Path, requestid.From(r.Context()), tracing.TraceID(r.Context()))
	}
	up, ok := m.Upstream(r.PathValue("id"))
	if !ok {
		fail(problem.New(http.StatusNotFound, "No upstream with this id is configured.", nil).WithReason("unknown_upstream"))
		return
	}
	if auth == nil {
		fail(problem.New(http.StatusNotImplemented, "This gateway cannot authenticate connection requests.", errors.New("no authenticator")))
		return
	}
	user, ok := auth(w, r, up.OperationIDs)
	if !ok {
		return
	}
	if up.Mode == store.ModeShared {
		fail(problem.New(http.StatusForbidden, up.DisplayName+" uses one shared connection; only an administrator can disconnect it.", nil).
			WithReason("shared_connection"))
		return
	}
	key := Key(up, user.Subject())
	res, err := m.Disconnect(r.Context(), r, key, user.Subject(), requestid.From(r.Context()))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		fail(transient("disconnecting", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(DisconnectResult{UpstreamID: up.ID, Disconnected: res.Revoked, UpstreamRevocation: res.UpstreamRevocation})
}

// Disconnect revokes the connection at key on behalf of its own user (actor): RFC 7009 at the
// authorization server first while the tokens are readable (best effort), then the tokens are
// wiped and the row kept as revoked (compare-and-swap, retried when a refresh wins the race),
// the cached credential dropped and an audit event recorded. Disconnecting twice is not an
// error (Revoked is false); a connection that never existed is store.ErrNotFound.
func (m *Manager) Disconnect(ctx context.Context, r *http.Request, key store.ConnectionKey, actor, requestID string) (RevokeResult, error) {
	return m.revoke(ctx, r, key, actor, requestID, revocation{auditReason: reasonUserDisconnect, errorCode: reasonUserDisconnect,
		message: "disconnected by its user"})
}

// DisconnectURL is the link a connect result page shows: it lets the person who just connected
// key undo it within DisconnectLinkTTL, from the same or another browser. The token is sealed
// (no subject in the URL) and names only that connection.
func (m *Manager) DisconnectURL(r *http.Request, key store.ConnectionKey) string {
	if key.Mode != store.ModeUser {
		return ""
	}
	t := m.signer.New(Ticket{Subject: key.Subject, Mode: string(key.Mode), UpstreamID: disconnectPrefix + key.UpstreamID, State: "disconnect"})
	t.ExpiresAt = m.now().Add(DisconnectLinkTTL).Truncate(time.Second)
	return m.urls.Gateway(r, "/auth/connections/"+url.PathEscape(key.UpstreamID)+"/disconnect") + "?" + url.Values{"t": {m.signer.Sign(t)}}.Encode()
}

// disconnectTicket opens a disconnect link's token for the path's upstream.
func (m *Manager) disconnectTicket(r *http.Request, raw string) (*Upstream, Ticket, error) {
	up, ok := m.Upstream(r.PathValue("id"))
	if !ok {
		return nil, Ticket{}, errUnknownUpstream
	}
	t, err := m.signer.Verify(raw)
	if err != nil {
		return nil, Ticket{}, err
	}
	if t.UpstreamID != disconnectPrefix+up.ID || t.State != "disconnect" || t.Mode != string(store.ModeUser) {
		return nil, Ticket{}, ErrTicketMismatch
	}
	return up, t, nil
}

func (m *Manager) disconnectLinkError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errUnknownUpstream) {
		m.ticketError(w, r, err)
		return
	}
	msg := "This disconnect link cannot be used."
	if errors.Is(err, ErrTicketExpired) {
		msg = "This disconnect link has expired (links work for 15 minutes)."
	}
	m.pageError(w, r, http.StatusBadRequest, web.BucketGatewayConfig, codeDisconnect, "This link no longer works",
		msg+" Ask your administrator to revoke the connection, or disconnect it from your MCP client's gateway settings.", err)
}

// serveDisconnectConfirm shows the confirm page; viewing changes nothing.
func (m *Manager) serveDisconnectConfirm(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("t")
	up, t, err := m.disconnectTicket(r, raw)
	if err != nil {
		m.disconnectLinkError(w, r, err)
		return
	}
	if !m.bound(w, r, t, m.urls.URL(r, r.URL.RequestURI())) {
		return
	}
	renderDisconnectPage(w, http.StatusOK, disconnectView{
		Title: "Disconnect " + up.DisplayName + "?", DisplayName: up.DisplayName, Subject: subject.Subject(t.Subject).Display(),
		Action: m.urls.Gateway(r, "/auth/connections/"+url.PathEscape(up.ID)+"/disconnect"), Token: raw,
		CSRF: m.browserCSRF(w, r, disconnectPrefix+t.ID), RequestID: requestid.From(r.Context()),
	})
}

// serveDisconnectPost disconnects after the confirm page: same origin, valid CSRF token.
func (m *Manager) serveDisconnectPost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		m.pageError(w, r, http.StatusBadRequest, web.BucketGatewayConfig, codeCSRF, "Bad request", "The form could not be read.", err)
		return
	}
	pub := m.urls.Base(r)
	if err := web.SameOriginPost(r, pub.Scheme+"://"+pub.Host); err != nil {
		m.pageError(w, r, http.StatusForbidden, web.BucketGatewayConfig, codeCSRF, "Request refused", "This form was submitted from another site.", err)
		return
	}
	up, t, err := m.disconnectTicket(r, r.PostForm.Get("t"))
	if err != nil {
		m.disconnectLinkError(w, r, err)
		return
	}
	if !m.bound(w, r, t, m.urls.Gateway(r, "/auth/connections/"+url.PathEscape(up.ID)+"/disconnect")+"?"+url.Values{"t": {r.PostForm.Get("t")}}.Encode()) {
		return
	}
	if !m.verifyBrowserCSRF(r, disconnectPrefix+t.ID, r.PostForm.Get("csrf")) {
		m.pageError(w, r, http.StatusForbidden, web.BucketGatewayConfig, codeCSRF, "Request refused",
			"The form's security token is missing or wrong. Open the disconnect link again.", errors.New("csrf token mismatch"))
		return
	}
	key := store.ConnectionKey{UpstreamID: up.ID, Mode: store.ModeUser, Subject: t.Subject}
	res, err := m.Disconnect(ctx, r, key, t.Subject, requestid.From(ctx))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		m.pageError(w, r, http.StatusServiceUnavailable, web.BucketGatewayConfig, codeStorage, "Try again shortly",
			"The gateway could not disconnect "+up.DisplayName+".", err)
		return
	}
	v := disconnectView{Title: up.DisplayName + " is disconnected", DisplayName: up.DisplayName, Subject: subject.Subject(t.Subject).Display(),
		Done: true, AlreadyDone: !res.Revoked, RequestID: requestid.From(ctx)}
	switch {
	case res.UpstreamRevocation == "revoked":
		v.Note = up.DisplayName + "'s authorization server was told to revoke the access too."
	case strings.HasPrefix(res.UpstreamRevocation, "failed"):
		v.Note = up.DisplayName + "'s authorization server could not be told; you can also remove the gateway's access in your " + up.DisplayName + " account settings."
	}
	renderDisconnectPage(w, http.StatusOK, v)
}

// disconnectView is what disconnectPage renders: the confirm form, or the outcome.
type disconnectView struct {
	Title, DisplayName, Subject string
	Action, Token, CSRF         string
	Done, AlreadyDone           bool
	Note                        string
	RequestID                   string
}

// disconnectPage is deliberately small and self-contained (no script, one form, no external
// resources), under a CSP that allows nothing else.
var disconnectPage = template.Must(template.New("disconnect").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{{.Title}}</title></head>
<body><main>
<h1>{{.Title}}</h1>
{{if .Done}}{{if .AlreadyDone}}<p>There was nothing to disconnect: {{.DisplayName}} was not connected for {{.Subject}}.</p>{{else}}<p>The gateway no longer holds access to {{.DisplayName}} for {{.Subject}}. Your MCP client will ask you to connect again the next time it needs {{.DisplayName}}.</p>{{end}}
{{with .Note}}<p>{{.}}</p>{{end}}
{{else}}<p>The gateway will forget its access to {{.DisplayName}} for <strong>{{.Subject}}</strong>. Your MCP client will ask you to connect again the next time it needs {{.DisplayName}}.</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="t" value="{{.Token}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit">Disconnect {{.DisplayName}}</button></form>
<p>If you did not mean to, close this page: nothing changes.</p>{{end}}
{{with .RequestID}}<p><small>Request {{.}}</small></p>{{end}}
</main></body></html>
`))

func renderDisconnectPage(w http.ResponseWriter, status int, v disconnectView) {
	var b strings.Builder
	if err := disconnectPage.Execute(&b, v); err != nil {
		web.SetPageHeaders(w.Header())
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	// The same frame, opener, referrer, sniffing and caching headers as every other page
	// (X-Frame-Options DENY, Cross-Origin-Opener-Policy same-origin, …): the confirm page carries a
	// state-changing form, so it must not be framed (clickjacking) or share a browsing context.
	web.SetPageHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}
