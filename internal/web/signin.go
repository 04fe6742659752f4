package web

import "net/http"

// SignInUpstream is one upstream on the sign-in consent page.
type SignInUpstream struct {
	DisplayName, Summary string
	// State is connected, not_connected, reconsent_required or admin_required.
	State string
	// ConnectURL starts the upstream's connect flow and comes back; empty when nothing can be
	// done here (connected, or waiting for an administrator).
	ConnectURL string
}

// SignInSetupPage is the consent page of a sign-in ({base}/oauth/setup): who signs in, which
// client, the MCP server, and the upstreams to connect before Authorize is enabled.
type SignInSetupPage struct {
	RouteName, Resource  string
	Person, PersonDetail string
	ClientName           string
	ClientVerified       bool
	RedirectHost         string
	Upstreams            []SignInUpstream
	// Ready enables Authorize (every user-oauth upstream connected).
	Ready   bool
	Message string
	// Action is the form target; Request the handle posted back; CSRFToken the "csrf" field.
	Action, Request, CSRFToken string
	RequestID                  string
}

// RenderSignInSetup writes the sign-in consent page. Its form posts back to the gateway, whose
// answer is a redirect to the client's registered redirect URI (any scheme: https, a loopback
// port, or an app's own scheme), so the page sets no form-action.
func RenderSignInSetup(w http.ResponseWriter, p SignInSetupPage) error {
	return render(w, http.StatusOK, "signin_setup", "Sign in to "+p.RouteName, p.RequestID, cspBase(), p)
}

// APIKeyLoginPage asks for an API key to sign the browser in as its consumer.
type APIKeyLoginPage struct {
	Reason, Error  string
	Action, Return string
	CSRFToken      string
	RequestID      string
	Status         int
}

// RenderAPIKeyLogin writes the API-key sign-in form.
func RenderAPIKeyLogin(w http.ResponseWriter, p APIKeyLoginPage) error {
	status := p.Status
	if status == 0 {
		status = http.StatusOK
	}
	return render(w, status, "signin_apikey", "Sign in", p.RequestID, cspBase()+"; form-action 'self'", p)
}
