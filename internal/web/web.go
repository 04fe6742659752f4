// Package web renders the pages a person sees in a browser: the consent page of the connect flow,
// the result pages (connected, cancelled, denied) and the browser error page. It also holds the CSRF
// helpers those forms use. Everything is server-rendered with html/template from embedded files;
// there is no JavaScript and no external request, and the one stylesheet is inlined and allowed by
// its CSP hash, so a page needs no asset route.
//
// # API for the HTTP handlers
//
// Each Render function writes a complete response: status, Content-Type text/html; charset=utf-8,
// Cache-Control: no-store, X-Frame-Options: DENY, Referrer-Policy: no-referrer,
// X-Content-Type-Options: nosniff, Cross-Origin-Opener-Policy: same-origin and a strict
// Content-Security-Policy (default-src 'none'; the stylesheet by hash; img-src data:;
// base-uri 'none'; frame-ancestors 'none'). The page is rendered into a buffer first, so a
// template error never leaves half a page; the error is returned for the log and the client gets
// a plain 500.
//
//	GET  {base}/auth/connections/{id}/connect   → web.RenderConsent(w, web.ConsentPage{…})
//	POST {base}/auth/connections/{id}/connect   → web.SameOriginPost(r, publicOrigin), then
//	                                              csrf.Verify(binding, r.PostFormValue("csrf")),
//	                                              then decision=approve → 302 upstream,
//	                                              decision=cancel  → web.RenderResult(w, {Kind: web.ResultCancelled})
//	GET  {base}/auth/connections/{id}/callback  → web.RenderResult(w, {Kind: web.ResultConnected})
//	                                              or {Kind: web.ResultDenied} for error=access_denied
//	any browser-facing failure                  → web.RenderError(w, web.ErrorPage{Status: 502, …})
//
// The consent form posts the fields of ConsentPage.Hidden (browserTicket, operationId, …) in the
// order given, a hidden field named "csrf" carrying ConsentPage.CSRFToken, and "decision", which is
// "approve" or "cancel" from exactly these buttons:
//
//	<button type="submit" name="decision" value="approve">Connect Linear</button>
//	<button type="submit" name="decision" value="cancel">Cancel</button>
//
// form-action: Chromium applies the CSP form-action directive to every redirect that follows a form
// submission, so a consent page restricted to 'self' would block approve's 302 to the upstream
// authorization server (and that server's own redirects to its login page). ConsentPage therefore
// omits form-action unless FormActionSources lists the allowed origins; leave it empty unless every
// hop of the redirect chain is known. Result and error pages have no form and send form-action 'none'.
//
// CSRF: NewCSRF(key) derives per-binding tokens (HMAC-SHA256, base64url). Bind the token to what the
// form acts on, e.g. the browser ticket's id, so a token from one consent page is useless on another.
// SameOriginPost accepts a POST only with an Origin equal to the gateway's public origin, or else
// Sec-Fetch-Site: same-origin; anything else, "Origin: null" alone and no signal at all included, is
// refused. Because the pages send Referrer-Policy: no-referrer, Chromium posts the consent form with
// "Origin: null", "Sec-Fetch-Site: same-origin" and no Referer (seen in browser_test.go), which
// passes on Sec-Fetch-Site. CSRF tokens are bound to the browser as well as to what the form acts on.
//
// Adding a page (the setup UI): write templates/<name>.html defining "content" (and optionally
// "nav", rendered in the header), add it to the pages map, and give it a Render function that
// calls render (or renderPage, for a wide page). The stylesheet already has the pieces a wide,
// tabular page needs (body.wide, .nav, table, .pill.ok/.warn/.bad/.off, .field, inputs,
// button.danger); see testdata/styleguide.html, which the tests render and screenshot.
//
// What to pass: every string is escaped by html/template, so hostile values (display names from
// config, error_description from an authorization server) are safe to show. Never put a token, code,
// state, verifier, ticket or secret into a displayed field; the hidden fields are the only place a
// browser ticket belongs.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/mcpgate.css
var stylesheet string

// styleHash is the CSP source expression that allows the inlined stylesheet.
var styleHash = func() string {
	sum := sha256.Sum256([]byte(stylesheet))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// layout is the shared frame of every page; pages clone it and add their "content".
var layout = template.Must(template.New("layout").ParseFS(templateFS, "templates/layout.html"))

// pages holds one template set per page: the shared layout plus the page's "content".
var pages = map[string]*template.Template{
	"consent":       mustParsePage(templateFS, "templates/consent.html"),
	"result":        mustParsePage(templateFS, "templates/result.html"),
	"error":         mustParsePage(templateFS, "templates/error.html"),
	"signin_setup":  mustParsePage(templateFS, "templates/signin_setup.html"),
	"signin_apikey": mustParsePage(templateFS, "templates/signin_apikey.html"),
}

func mustParsePage(fsys fs.FS, file string) *template.Template {
	return template.Must(template.Must(layout.Clone()).ParseFS(fsys, file))
}

// layoutData is what templates/layout.html renders around a page.
type layoutData struct {
	Title     string
	CSS       template.CSS
	RequestID string
	// Wide widens the page for tables (the setup UI).
	Wide bool
	Page any
}

// cspBase is the policy every page shares; callers append form-action (and nothing else needs
// loosening: the sandboxed srcdoc iframe of the error page inherits this policy).
func cspBase() string {
	return "default-src 'none'; style-src " + styleHash + "; img-src data:; base-uri 'none'; frame-ancestors 'none'"
}

// render executes the named page into a buffer and writes the complete response.
func render(w http.ResponseWriter, status int, page, title, requestID, csp string, data any) error {
	return renderPage(w, status, page, pages[page], csp, layoutData{Title: title, RequestID: requestID, Page: data})
}

// renderPage executes t with the layout data d (the stylesheet is filled in) and writes the
// complete response.
func renderPage(w http.ResponseWriter, status int, page string, t *template.Template, csp string, d layoutData) error {
	var buf bytes.Buffer
	d.CSS = template.CSS(stylesheet) //nolint:gosec // our own embedded stylesheet, allowed by hash
	err := t.ExecuteTemplate(&buf, "layout", d)
	if err != nil {
		return renderFailure(w, fmt.Errorf("rendering %s page: %w", page, err))
	}
	setCommonHeaders(w.Header())
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, err = w.Write(buf.Bytes())
	return err
}

// renderFailure answers a plain 500 when a page cannot be rendered and returns err for the log.
func renderFailure(w http.ResponseWriter, err error) error {
	setCommonHeaders(w.Header())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte("The gateway failed to render this page.\n"))
	return err
}

// SetPageHeaders sets the headers every page of the gateway carries besides its own
// Content-Type and Content-Security-Policy: no caching, no framing (X-Frame-Options; the CSP adds
// frame-ancestors 'none'), no referrer, no sniffing, and a browsing context of its own
// (Cross-Origin-Opener-Policy). Pages rendered outside this package (the disconnect page) use it.
func SetPageHeaders(h http.Header) { setCommonHeaders(h) }

func setCommonHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// sourceList renders CSP sources, dropping anything that could end the directive.
func sourceList(srcs []string) string {
	var b strings.Builder
	for _, s := range srcs {
		if s == "" || strings.ContainsAny(s, ";, \t\r\n'") {
			continue
		}
		b.WriteByte(' ')
		b.WriteString(s)
	}
	return b.String()
}
