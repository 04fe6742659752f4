package web

import (
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The setup UI's pages (internal/setup renders them). They share the layout and stylesheet of the
// connect flow, in its wide variant, with a navigation block; their forms post to the gateway
// itself, so the CSP allows form-action 'self'.

// setupPages are the pages RenderSetup knows, by name.
var setupPages = map[string]*template.Template{
	"setup_login":       mustParseSetupPage("templates/setup_login.html"),
	"setup_upstreams":   mustParseSetupPage("templates/setup_upstreams.html"),
	"setup_connections": mustParseSetupPage("templates/setup_connections.html"),
	"setup_audit":       mustParseSetupPage("templates/setup_audit.html"),
	"setup_tools":       mustParseSetupPage("templates/setup_tools.html"),
}

// setupFuncs are the template functions the setup pages use for times.
var setupFuncs = template.FuncMap{
	"when":    formatWhen,
	"ago":     func(t time.Time) string { return relative(t, time.Now()) },
	"isoTime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join":    strings.Join,
	"inc":     func(i int) int { return i + 1 },
	"short":   func(t time.Time) string { return formatShort(t, time.Now()) },
	// millis shows a duration in milliseconds with two decimals.
	"millis": func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64) },
	// pillClass colours a connection health state.
	"pillClass": func(v any) string {
		switch fmt.Sprint(v) {
		case "active":
			return "ok"
		case "expiring_soon", "expired":
			return "warn"
		case "revoked":
			return "off"
		}
		return "bad"
	},
	// outcomeClass colours a discovery step outcome, a setup check step result or an audit outcome.
	"outcomeClass": func(v any) string {
		switch fmt.Sprint(v) {
		case "found", "success", "ok":
			return "ok"
		case "not_found", "connect_required", "skipped":
			return "off"
		case "denied", "warning":
			return "warn"
		}
		return "bad"
	},
}

func mustParseSetupPage(file string) *template.Template {
	t := template.Must(layout.Clone()).Funcs(setupFuncs)
	return template.Must(t.ParseFS(templateFS, "templates/setup_nav.html", file))
}

// SetupNav is the header navigation of a signed-in page.
type SetupNav struct {
	// Base is the setup UI's path ({base}/setup).
	Base string
	// Current is "upstreams", "connections", "audit" or "tools".
	Current string
	// Admin is who is signed in (shown); empty hides the navigation (the login page).
	Admin string
	// CSRF is the token of the sign-out form.
	CSRF string
}

// SetupPage is one page of the setup UI.
type SetupPage struct {
	// Name is setup_login, setup_upstreams, setup_connections, setup_audit or setup_tools.
	Name      string
	Title     string
	Status    int // zero: 200
	RequestID string
	Nav       SetupNav
	// Flash is a one-line message shown above the content (the result of the last action).
	Flash    string
	FlashBad bool
	// Data is the page's own data (internal/setup's view types).
	Data any
}

// RenderSetup writes a setup page.
func RenderSetup(w http.ResponseWriter, p SetupPage) error {
	t, ok := setupPages[p.Name]
	if !ok {
		return renderFailure(w, fmt.Errorf("rendering setup page: unknown page %q", p.Name))
	}
	status := p.Status
	if status == 0 {
		status = http.StatusOK
	}
	return renderPage(w, status, p.Name, t, cspBase()+"; form-action 'self'",
		layoutData{Title: p.Title, RequestID: p.RequestID, Wide: true, Page: p})
}

func formatWhen(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2 Jan 2006 15:04 UTC")
}

// formatShort is a compact time for table cells: the time of day when t is today (UTC), else the
// date and time.
func formatShort(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	t, now = t.UTC(), now.UTC()
	if t.YearDay() == now.YearDay() && t.Year() == now.Year() {
		return t.Format("15:04:05 UTC")
	}
	return t.Format("2 Jan 2006 15:04 UTC")
}

// relative says how far t is from now in one unit ("in 5 min", "3 h ago").
func relative(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := t.Sub(now)
	future := d > 0
	if !future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		s = fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%d h", int(d/time.Hour))
	default:
		s = fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}
