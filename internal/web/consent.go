package web

import (
	"fmt"
	"net/http"
	"slices"
	"time"
)

// Field is one hidden form field the consent form carries back to the gateway.
type Field struct {
	Name  string
	Value string
}

// ConsentPage is the page a browser sees at the connect URL.
type ConsentPage struct {
	// DisplayName names the upstream service ("Linear"); it labels the title and the approve button.
	DisplayName string
	// Summary is the policy's summary, shown under the title; optional.
	Summary string
	// Scopes are every scope the authorization will ask for.
	Scopes []string
	// AddedScopes are the scopes a step-up adds to what was granted before; they are marked
	// "newly requested". Scopes missing from Scopes are listed too.
	AddedScopes []string
	// Reconnect words the page for reconsent_required ("Reconnect Linear").
	Reconnect bool
	// Subject is who the connection is for ("Connecting as …").
	Subject string
	// Shared words the page for a shared-oauth connection that every user of the upstream uses.
	Shared bool
	// UpstreamHost is the authorization server's or upstream's host, shown so the person knows
	// where they will sign in.
	UpstreamHost string
	// ExpiresAt is when the link (browser ticket) expires; zero hides it.
	ExpiresAt time.Time
	// Action is the form's POST target (absolute or relative URL).
	Action string
	// Hidden fields are posted back in this order (browserTicket, operationId, …). The names
	// "csrf" and "decision" are reserved.
	Hidden []Field
	// CSRFToken is posted as the hidden field "csrf".
	CSRFToken string
	// FormActionSources, when set, restricts the CSP form-action directive to 'self' plus these
	// sources (e.g. "https://auth.example.com"). Every hop of approve's redirect chain must be
	// listed, so the default (empty) omits form-action; see the package doc.
	FormActionSources []string
	// RequestID is shown in the footer; optional.
	RequestID string
}

// scopeItem is one line of the permissions list.
type scopeItem struct {
	Name string
	New  bool
}

// consentView is what templates/consent.html renders.
type consentView struct {
	ConsentPage
	ScopeItems []scopeItem
	ExpiresIn  string
}

// now is the clock of the "expires in" hint; tests replace it.
var now = time.Now

// expiresIn says how long a link has left, in words: "in 14 minutes", "in less than a minute",
// "expired".
func expiresIn(at time.Time) string {
	left := at.Sub(now())
	switch {
	case left <= 0:
		return "expired"
	case left < time.Minute:
		return "in less than a minute"
	case left < 2*time.Minute:
		return "in 1 minute"
	case left < 2*time.Hour:
		return fmt.Sprintf("in %d minutes", int(left/time.Minute))
	default:
		return fmt.Sprintf("in %d hours", int(left/time.Hour))
	}
}

// RenderConsent writes the consent page with status 200.
func RenderConsent(w http.ResponseWriter, p ConsentPage) error {
	for _, f := range p.Hidden {
		if f.Name == "csrf" || f.Name == "decision" || f.Name == "" {
			return renderFailure(w, fmt.Errorf("rendering consent page: hidden field name %q is reserved or empty", f.Name))
		}
	}
	v := consentView{ConsentPage: p}
	if !p.ExpiresAt.IsZero() {
		v.ExpiresIn = expiresIn(p.ExpiresAt)
	}
	for _, s := range p.Scopes {
		v.ScopeItems = append(v.ScopeItems, scopeItem{Name: s, New: slices.Contains(p.AddedScopes, s)})
	}
	for _, s := range p.AddedScopes {
		if !slices.Contains(p.Scopes, s) {
			v.ScopeItems = append(v.ScopeItems, scopeItem{Name: s, New: true})
		}
	}
	title := "Connect " + p.DisplayName
	if p.Reconnect {
		title = "Reconnect " + p.DisplayName
	}
	csp := cspBase()
	if len(p.FormActionSources) > 0 {
		csp += "; form-action 'self'" + sourceList(p.FormActionSources)
	}
	return render(w, http.StatusOK, "consent", title, p.RequestID, csp, v)
}
