package web

import (
	"fmt"
	"net/http"
)

// ResultKind says how a connect attempt ended.
type ResultKind string

// The result pages.
const (
	// ResultConnected: the callback stored the connection ("Linear is connected — return to your
	// MCP client").
	ResultConnected ResultKind = "connected"
	// ResultCancelled: the person pressed Cancel on the consent page.
	ResultCancelled ResultKind = "cancelled"
	// ResultDenied: the authorization server answered error=access_denied.
	ResultDenied ResultKind = "denied"
)

// ResultPage is the page shown when a connect attempt ends without a gateway error. It has no form.
type ResultPage struct {
	Kind ResultKind
	// DisplayName names the upstream service ("Linear").
	DisplayName string
	// Subject is who the connection belongs to; optional.
	Subject string
	// Scopes are the granted scopes (from the token response); optional.
	Scopes []string
	// Detail is an optional extra sentence, e.g. the authorization server's error_description
	// prefixed with who said it. It is shown as text.
	Detail string
	// DisconnectURL, when set, adds a "Disconnect" link (a GET to a page that confirms; this page
	// has no form).
	DisconnectURL string
	// RequestID is shown in the footer; optional.
	RequestID string
	// Status is the response status; zero means 200.
	Status int
	// Shared words the page for a shared-oauth connection, which an administrator makes for every
	// user of the upstream (no "your MCP client").
	Shared bool
}

// RenderResult writes a connected, cancelled or denied page.
func RenderResult(w http.ResponseWriter, p ResultPage) error {
	var title string
	switch p.Kind {
	case ResultConnected:
		title = p.DisplayName + " is connected"
	case ResultCancelled:
		title = "Connection cancelled"
	case ResultDenied:
		title = p.DisplayName + " did not grant access"
	default:
		return renderFailure(w, fmt.Errorf("rendering result page: unknown kind %q", p.Kind))
	}
	status := p.Status
	if status == 0 {
		status = http.StatusOK
	}
	return render(w, status, "result", title, p.RequestID, cspBase()+"; form-action 'none'", p)
}
