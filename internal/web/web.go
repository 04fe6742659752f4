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
// X-Content-Type-Options: nosniff and a strict Content-Security-Policy (default-src 'none'; the
// stylesheet by hash; img-src data:; base-uri 'none'; frame-ancestors 'none'). The page is rendered
// into a buffer first, so a template error never leaves half a page; the error is returned for the
// log and the client gets a plain 500.
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
// SameOriginPost refuses a POST whose Origin, Sec-Fetch-Site or (absent both) Referer shows another
// origin, and accepts one that carries none of them (DESIGN.md §3): the token is what protects it.
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

// pages holds one template set per page: the shared layout plus the page's "content".
var pages = mustParsePages("consent", "result", "error")

func mustParsePages(names ...string) map[string]*template.Template {
	base := template.Must(template.New("layout").ParseFS(templateFS, "templates/layout.html"))
	m := make(map[string]*template.Template, len(names))
	for _, name := range names {
		t := template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html"))
		m[name] = t
	}
	return m
}

// layoutData is what templates/layout.html renders around a page.
type layoutData struct {
	Title     string
	CSS       template.CSS
	RequestID string
	Page      any
}

// cspBase is the policy every page shares; callers append form-action (and nothing else needs
// loosening: the sandboxed srcdoc iframe of the error page inherits this policy).
func cspBase() string {
	return "default-src 'none'; style-src " + styleHash + "; img-src data:; base-uri 'none'; frame-ancestors 'none'"
}

// render executes page into a buffer and writes the complete response.
func render(w http.ResponseWriter, status int, page, title, requestID, csp string, data any) error {
	var buf bytes.Buffer
	err := pages[page].ExecuteTemplate(&buf, "layout", layoutData{
		Title:     title,
		CSS:       template.CSS(stylesheet), //nolint:gosec // our own embedded stylesheet, allowed by hash
		RequestID: requestID,
		Page:      data,
	})
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

func setCommonHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
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
