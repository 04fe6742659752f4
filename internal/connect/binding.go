package connect

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/mcpgate/mcpgate/internal/browsersession"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/web"
)

// BrowserSessions tells who a browser is signed in as (the gateway's sign-in, internal/signin).
type BrowserSessions interface {
	// Subject returns the subject the browser is signed in as, or "".
	Subject(r *http.Request) subject.Subject
	// LoginURL returns where the browser signs in as a subject of namespace and comes back to
	// returnTo, or "" when the gateway has no sign-in for that namespace.
	LoginURL(r *http.Request, namespace, returnTo string) string
}

// Admins tells whether a browser is signed in to the setup UI as an administrator.
type Admins interface {
	// AdminSubject returns the administrator the browser is signed in as, or "".
	AdminSubject(r *http.Request) string
	// LoginURL is the setup UI's sign-in page, coming back to returnTo.
	AdminLoginURL(r *http.Request, returnTo string) string
}

// Binding says what ties a connect page to a person.
type Binding string

// Bindings (MCPGATE_CONNECT_BINDING).
const (
	// BindingSession: a connect, consent or disconnect page proceeds only in a browser signed in
	// as the link's subject (or, for a shared connection, as an administrator). The default.
	BindingSession Binding = "session"
	// BindingTicket: the link alone authorizes whoever opens it (the behaviour before sign-in
	// existed). A link forwarded to someone else connects their account under the sender's
	// identity; serve logs a warning when it is set.
	BindingTicket Binding = "ticket"
)

// BindingOptions are set by Mount.
type BindingOptions struct {
	Mode     Binding
	Sessions BrowserSessions
	Admins   Admins
}

// errNotBound is the cause of a refused page (never shown as is).
var errNotBound = errors.New("connect: the browser is not signed in as the link's subject")

// bound checks that the browser may act for ticket t; when it may not, it has answered (a redirect
// to sign in, or a refusal page naming both identities) and returns false. here is the URL to
// come back to after signing in.
func (m *Manager) bound(w http.ResponseWriter, r *http.Request, t Ticket, here string) bool {
	b := m.binding
	if b.Mode == BindingTicket {
		return true
	}
	if t.Mode == string(store.ModeShared) {
		if b.Admins == nil {
			return true
		}
		if b.Admins.AdminSubject(r) != "" {
			return true
		}
		if u := b.Admins.AdminLoginURL(r, here); u != "" {
			http.Redirect(w, r, u, http.StatusFound)
			return false
		}
		m.pageError(w, r, http.StatusForbidden, web.BucketGatewayConfig, codeNotBound, "Administrators only",
			"A shared connection is made by an administrator signed in to the setup UI.", errNotBound)
		return false
	}
	want := subject.Subject(t.Subject)
	var got subject.Subject
	if b.Sessions != nil {
		got = b.Sessions.Subject(r)
	}
	if got == want {
		return true
	}
	if got == "" {
		var login string
		if b.Sessions != nil {
			login = b.Sessions.LoginURL(r, want.Namespace(), here)
		}
		if login == "" {
			// No sign-in exists for this kind of subject (a JWT from an IdP the gateway does not
			// sign people in at): the link alone binds, as serve warned at start.
			return true
		}
		http.Redirect(w, r, login, http.StatusFound)
		return false
	}
	m.pageError(w, r, http.StatusForbidden, web.BucketGatewayConfig, codeNotBound, "This link is for someone else",
		"This link was made for "+want.Display()+" ("+describeNamespace(want.Namespace())+"), but this browser is signed in as "+
			got.Display()+" ("+describeNamespace(got.Namespace())+"). Only the person whose MCP client asked can use it: if that is you, "+
			"sign out and sign in as "+want.Display()+"; if someone sent you their link, ask them to open it themselves. Nothing was changed.",
		errNotBound)
	return false
}

// describeNamespace words a subject's namespace for a page.
func describeNamespace(ns string) string {
	switch {
	case ns == subject.APIKey:
		return "API key"
	case ns == subject.Dev:
		return "development sign-in"
	case len(ns) > len(subject.JWTPrefix) && ns[:len(subject.JWTPrefix)] == subject.JWTPrefix:
		if u, err := url.Parse(ns[len(subject.JWTPrefix):]); err == nil && u.Host != "" {
			return "signed in at " + u.Host
		}
		return "identity provider"
	}
	return ns
}

// browserCSRF binds a CSRF token to the browser (its binding cookie) as well as to what the form
// acts on, so a token lifted from one browser is useless in another.
func (m *Manager) browserCSRF(w http.ResponseWriter, r *http.Request, binding string) string {
	return m.csrf.Token(binding + "|" + browsersession.BrowserID(w, r, m.urls.HTTPS(r)))
}

// verifyBrowserCSRF checks a token made by browserCSRF.
func (m *Manager) verifyBrowserCSRF(r *http.Request, binding, token string) bool {
	id := browsersession.ExistingBrowserID(r)
	return id != "" && m.csrf.Verify(binding+"|"+id, token)
}

// Connection states of a route's upstream on the sign-in consent page.
const (
	StateConnected         = "connected"
	StateNotConnected      = "not_connected"
	StateReconsentRequired = "reconsent_required"
	StateAdminRequired     = "admin_required"
)

// RouteUpstream is one upstream of a route as the sign-in consent page shows it.
type RouteUpstream struct {
	ID, DisplayName, Summary string
	Shared                   bool
	State                    string
	// ConnectURL connects the upstream and comes back to the consent page; empty when connected
	// or waiting for an administrator.
	ConnectURL string
}

// RouteUpstreams lists the upstreams of the route operationID for sub, with connect links that
// come back to returnTo (a URL of this gateway).
func (m *Manager) RouteUpstreams(r *http.Request, operationID string, sub subject.Subject, returnTo string) []RouteUpstream {
	var out []RouteUpstream
	for _, up := range m.Upstreams() {
		if !up.OperationIDs[operationID] {
			continue
		}
		ru := RouteUpstream{ID: up.ID, DisplayName: up.DisplayName, Summary: up.Summary, Shared: up.Mode == store.ModeShared}
		key := Key(up, sub.String())
		ru.State = m.connectionState(r.Context(), key)
		switch {
		case ru.Shared && ru.State != StateConnected:
			ru.State = StateAdminRequired
		case !ru.Shared && ru.State != StateConnected:
			t := m.signer.New(Ticket{Subject: key.Subject, Mode: string(key.Mode), UpstreamID: up.ID, OperationID: operationID,
				State: ru.State, ReturnTo: returnTo})
			t.ElicitationID = t.ID
			if ru.State == StateNotConnected {
				t.State = "authenticating"
			}
			q := url.Values{"browserTicket": {m.signer.Sign(t)}, "operationId": {operationID}}
			ru.ConnectURL = m.urls.Gateway(r, "/auth/connections/"+url.PathEscape(up.ID)+"/connect") + "?" + q.Encode()
		}
		out = append(out, ru)
	}
	return out
}

// connectionState reads the stored connection's state.
func (m *Manager) connectionState(ctx context.Context, key store.ConnectionKey) string {
	conn, err := m.store.GetConnection(ctx, key)
	switch {
	case err != nil:
		return StateNotConnected
	case conn.Status == store.StatusActive && (conn.HasAccessToken || !conn.AccessToken.IsZero()):
		return StateConnected
	case conn.Status == store.StatusReconsentRequired:
		return StateReconsentRequired
	}
	return StateNotConnected
}
