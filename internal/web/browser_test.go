package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testutil/browser"
)

// post is what the fake gateway saw when the consent form was submitted.
type post struct {
	form      url.Values
	origin    string
	fetchSite string
	referer   string
	sameOrig  error
	csrfOK    bool
}

// flow is a gateway fake built on the real render functions, plus an authorization server and
// its login app on two other origins, so approve's 302 crosses origins twice before it comes back
// to the callback — the redirect chain Chromium checks against form-action.
type flow struct {
	gw, as, login *httptest.Server
	posts         chan post
}

const (
	ticket    = "tkt-abc123"
	operation = "linear-mcp-server"
)

func newFlow(t *testing.T, formActionSources func(f *flow) []string) *flow {
	t.Helper()
	f := &flow{posts: make(chan post, 4)}
	csrf := NewCSRF(testKey)

	f.login = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("back"), http.StatusFound)
	}))
	t.Cleanup(f.login.Close)
	f.as = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		back := r.URL.Query().Get("redirect_uri") + "?code=c&state=" + url.QueryEscape(r.URL.Query().Get("state"))
		http.Redirect(w, r, f.login.URL+"/login?back="+url.QueryEscape(back), http.StatusFound)
	}))
	t.Cleanup(f.as.Close)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth/connections/linear/connect", func(w http.ResponseWriter, r *http.Request) {
		p := ConsentPage{
			DisplayName:  "Linear",
			Summary:      "Read and update issues, projects and comments in your Linear workspace.",
			Scopes:       []string{"read", "write", "issues:create", "comments:create"},
			AddedScopes:  []string{"admin"},
			Subject:      "alice@example.com",
			UpstreamHost: "mcp.linear.app",
			ExpiresAt:    time.Now().Add(15 * time.Minute),
			Action:       "/auth/connections/linear/connect",
			Hidden:       []Field{{"browserTicket", r.URL.Query().Get("browserTicket")}, {"operationId", r.URL.Query().Get("operationId")}},
			CSRFToken:    csrf.Token(r.URL.Query().Get("browserTicket")),
			RequestID:    "01JDZ6J4Q8F3N7W2C5V9X1KM0T",
		}
		if formActionSources != nil {
			p.FormActionSources = formActionSources(f)
		}
		if err := RenderConsent(w, p); err != nil {
			t.Error(err)
		}
	})
	mux.HandleFunc("POST /auth/connections/linear/connect", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		p := post{
			form:      r.PostForm,
			origin:    r.Header.Get("Origin"),
			fetchSite: r.Header.Get("Sec-Fetch-Site"),
			referer:   r.Header.Get("Referer"),
			sameOrig:  SameOriginPost(r, f.gw.URL),
			csrfOK:    csrf.Verify(r.PostFormValue("browserTicket"), r.PostFormValue("csrf")),
		}
		f.posts <- p
		if p.sameOrig != nil || !p.csrfOK {
			_ = RenderError(w, ErrorPage{Status: http.StatusForbidden, Code: "csrf_failed"})
			return
		}
		switch r.PostFormValue("decision") {
		case "approve":
			http.Redirect(w, r, f.as.URL+"/authorize?state=s1&redirect_uri="+url.QueryEscape(f.gw.URL+"/auth/connections/linear/callback"), http.StatusFound)
		case "cancel":
			_ = RenderResult(w, ResultPage{Kind: ResultCancelled, DisplayName: "Linear"})
		default:
			http.Error(w, "bad decision", http.StatusBadRequest)
		}
	})
	mux.HandleFunc("GET /auth/connections/linear/callback", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("code") != "c" || r.URL.Query().Get("state") != "s1" {
			_ = RenderError(w, ErrorPage{Status: http.StatusBadRequest, Code: "callback_mismatch"})
			return
		}
		_ = RenderResult(w, ResultPage{
			Kind: ResultConnected, DisplayName: "Linear", Subject: "alice@example.com",
			Scopes: []string{"read", "write"}, DisconnectURL: "/auth/connections/linear/disconnect",
			RequestID: "01JDZ6KBX4R2M8T5Q7W9Y3NC1P",
		})
	})
	f.gw = httptest.NewServer(mux)
	t.Cleanup(f.gw.Close)
	return f
}

func (f *flow) connectURL() string {
	return f.gw.URL + "/auth/connections/linear/connect?browserTicket=" + ticket + "&operationId=" + operation
}

func (f *flow) nextPost(t *testing.T) post {
	t.Helper()
	select {
	case p := <-f.posts:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("the consent form was not posted")
		return post{}
	}
}

// shoot saves the page at desktop and phone widths and in dark mode, then returns to desktop.
func shoot(b *browser.Browser, name string) {
	b.Screenshot(name + "-desktop")
	b.Phone()
	b.Screenshot(name + "-phone")
	b.Desktop()
	b.ColorScheme("dark")
	b.Screenshot(name + "-dark")
	b.ColorScheme("")
}

// checkStyled asserts the inline stylesheet applied (its CSP hash matched) and nothing was refused.
func checkStyled(t *testing.T, b *browser.Browser) {
	t.Helper()
	if bg := browser.Eval[string](b, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(244, 245, 247)" {
		t.Errorf("body background = %s: the stylesheet did not apply", bg)
	}
	for _, m := range b.Console() {
		if strings.Contains(m, "Refused") || strings.Contains(m, "Content Security Policy") {
			t.Errorf("browser console: %s", m)
		}
	}
}

func TestBrowserConsentApprove(t *testing.T) {
	tests := []struct {
		name    string
		sources func(f *flow) []string
	}{
		{"form-action omitted", nil},
		{"form-action lists every hop", func(f *flow) []string { return []string{f.as.URL, f.login.URL} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFlow(t, tt.sources)
			b := browser.New(t)
			b.Navigate(f.connectURL())
			if got := b.Text("h1"); got != "Connect Linear" {
				t.Fatalf("h1 = %q", got)
			}
			if got := b.Text(".facts dd"); got != "alice@example.com" {
				t.Errorf("connecting as = %q", got)
			}
			if got := browser.Eval[string](b, `getComputedStyle(document.querySelector('button[value="approve"]')).backgroundColor`); got != "rgb(43, 71, 201)" {
				t.Errorf("approve button background = %s", got)
			}
			checkStyled(t, b)
			if tt.sources == nil {
				shoot(b, "consent")
			}

			b.ClickNavigate(`button[type="submit"][name="decision"][value="approve"]`)
			p := f.nextPost(t)
			t.Logf("form post headers: Origin=%q Sec-Fetch-Site=%q Referer=%q", p.origin, p.fetchSite, p.referer)
			for k, want := range map[string]string{"decision": "approve", "browserTicket": ticket, "operationId": operation} {
				if got := p.form.Get(k); got != want {
					t.Errorf("posted %s = %q, want %q", k, got, want)
				}
			}
			if p.form.Get("csrf") == "" || !p.csrfOK {
				t.Errorf("csrf %q did not verify", p.form.Get("csrf"))
			}
			if p.sameOrig != nil {
				t.Errorf("SameOriginPost refused the real browser's post: %v", p.sameOrig)
			}
			if p.referer != "" {
				t.Errorf("Referer %q sent despite Referrer-Policy: no-referrer", p.referer)
			}
			if got, want := b.CurrentURL(), f.gw.URL+"/auth/connections/linear/callback?code=c&state=s1"; got != want {
				t.Fatalf("landed on %s, want %s (did form-action block a redirect?)", got, want)
			}
			if got := b.Text("h1"); got != "Linear is connected" {
				t.Fatalf("h1 = %q", got)
			}
			if got := b.Text("p.lead"); !strings.HasPrefix(got, "Linear is connected — return to your MCP client") {
				t.Errorf("lead = %q", got)
			}
			if n := browser.Eval[int](b, `document.forms.length`); n != 0 {
				t.Errorf("success page has %d forms", n)
			}
			checkStyled(t, b)
			if tt.sources == nil {
				shoot(b, "connected")
			}
		})
	}
}

func TestBrowserConsentKeyboard(t *testing.T) {
	f := newFlow(t, nil)
	b := browser.New(t)
	b.Navigate(f.connectURL())
	b.Press("\t")
	if got := browser.Eval[string](b, `document.activeElement.textContent`); got != "Skip to content" {
		t.Errorf("first tab stop = %q, want the skip link", got)
	}
	if got := browser.Eval[string](b, `getComputedStyle(document.activeElement).left`); strings.HasPrefix(got, "-") {
		t.Errorf("focused skip link is off screen (left %s)", got)
	}
	b.Press("\t")
	if got := browser.Eval[string](b, `document.activeElement.value`); got != "approve" {
		t.Fatalf("second tab stop = %q, want the approve button", got)
	}
	ring := browser.Eval[string](b, `(s => s.outlineStyle + " " + s.outlineWidth)(getComputedStyle(document.activeElement))`)
	if ring != "solid 3px" {
		t.Errorf("focus ring = %q, want solid 3px", ring)
	}
	b.Screenshot("approve-focused")
	b.Press("\t")
	if got := browser.Eval[string](b, `document.activeElement.value`); got != "cancel" {
		t.Fatalf("third tab stop = %q, want the cancel button", got)
	}
	b.Press("\r")
	p := f.nextPost(t)
	if p.form.Get("decision") != "cancel" {
		t.Errorf("Enter on Cancel posted decision %q", p.form.Get("decision"))
	}
}

func TestBrowserConsentCancel(t *testing.T) {
	f := newFlow(t, nil)
	b := browser.New(t)
	b.Navigate(f.connectURL())
	b.ClickNavigate(`button[type="submit"][name="decision"][value="cancel"]`)
	p := f.nextPost(t)
	if p.form.Get("decision") != "cancel" || p.form.Get("browserTicket") != ticket || !p.csrfOK || p.sameOrig != nil {
		t.Fatalf("cancel post: form %v, csrf ok %v, same origin %v", p.form, p.csrfOK, p.sameOrig)
	}
	if got := b.Text("h1"); got != "Connection cancelled" {
		t.Fatalf("h1 = %q", got)
	}
	checkStyled(t, b)
	shoot(b, "cancelled")
}

func TestBrowserResultDenied(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = RenderResult(w, ResultPage{Kind: ResultDenied, DisplayName: "Linear", Detail: "Linear said: The resource owner or authorization server denied the request."})
	}))
	t.Cleanup(srv.Close)
	b := browser.New(t)
	b.Navigate(srv.URL)
	if got := b.Text("h1"); got != "Linear did not grant access" {
		t.Fatalf("h1 = %q", got)
	}
	checkStyled(t, b)
	shoot(b, "denied")
}

// akamaiDenied is what a CDN firewall in front of an upstream answers, byte for byte in style.
const akamaiDenied = `<HTML><HEAD>
<TITLE>Access Denied</TITLE>
</HEAD><BODY>
<H1>Access Denied</H1>

You don't have permission to access "http&#58;&#47;&#47;mcp&#46;example&#46;com&#47;token" on this server.<P>
Reference&#32;&#35;18&#46;6f2d3e17&#46;1732588800&#46;1a2b3c4d
<P>https&#58;&#47;&#47;errors&#46;edgesuite&#46;net&#47;18&#46;6f2d3e17&#46;1732588800&#46;1a2b3c4d</P>
</BODY>
</HTML>
`

// errorServer serves the error page a failed token exchange shows, with upstreamHTML.
func errorServer(t *testing.T, upstreamHTML string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = RenderError(w, ErrorPage{
			Status:         http.StatusBadGateway,
			Title:          "Linear could not be connected",
			Message:        "Linear's token endpoint refused the gateway's request. Try again later; if it keeps happening, send the details below to whoever runs this gateway.",
			RequestID:      "01JDZ6N2W8Y4T6R3Q5V7X9KM2B",
			Code:           "upstream_token_forbidden",
			Reason:         "token endpoint https://mcp.example.com/token answered 403 with an HTML page",
			Bucket:         BucketUpstreamResponse,
			UpstreamStatus: http.StatusForbidden,
			UpstreamHTML:   upstreamHTML,
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestBrowserErrorPageShowsUpstreamHTML(t *testing.T) {
	srv := errorServer(t, akamaiDenied)
	b := browser.New(t)
	b.Navigate(srv.URL + "/auth/connections/linear/callback")

	if got := b.Text("h1"); got != "Linear could not be connected" {
		t.Fatalf("h1 = %q", got)
	}
	details := b.Text("dl.details")
	for _, label := range []string{"Request ID", "Error code", "Reason", "Category", "Upstream service response", "upstream_token_forbidden", "01JDZ6N2W8Y4T6R3Q5V7X9KM2B"} {
		if !strings.Contains(details, label) {
			t.Errorf("details lack %q: %q", label, details)
		}
	}
	if got := b.Text("#upstream-heading"); got != "What the upstream answered" {
		t.Errorf("upstream heading = %q", got)
	}
	if got := b.Text("#upstream-heading + p"); !strings.HasPrefix(got, "HTTP 403 Forbidden") {
		t.Errorf("upstream status line = %q", got)
	}
	frames := b.FrameTexts()
	if len(frames) != 1 {
		t.Fatalf("%d frames, want 1", len(frames))
	}
	if !strings.Contains(frames[0], "Access Denied") || !strings.Contains(frames[0], "Reference #18.6f2d3e17") {
		t.Errorf("iframe text = %q", frames[0])
	}
	checkStyled(t, b)
	shoot(b, "error")
}

// hostileUpstream is an upstream error page that tries everything a sandboxed frame must stop:
// scripts, navigation of the gateway's page, and requests to a server that counts them (BEACON).
const hostileUpstream = `<!DOCTYPE html><html><head><title>Access Denied</title>
<meta http-equiv="refresh" content="0; url=BEACON/refresh">
<link rel="stylesheet" href="BEACON/css">
<base href="BEACON/base/">
</head><body>
<h1>Access Denied</h1>
<img src="BEACON/img" alt="">
<iframe src="BEACON/frame"></iframe>
<script>parent.document.title = "pwned"; top.location = "https://evil.example/";</script>
<img src="x" onerror="parent.document.title='pwned'">
<form action="BEACON/form"><input name="q" value="v"><button>Search</button></form>
<script>document.forms[0].submit()</script>
</body></html>`

func TestBrowserErrorPageContainsHostileUpstreamHTML(t *testing.T) {
	beaconHits := make(chan string, 16)
	beacon := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		beaconHits <- r.URL.Path
	}))
	t.Cleanup(beacon.Close)
	srv := errorServer(t, strings.ReplaceAll(hostileUpstream, "BEACON", beacon.URL))
	b := browser.New(t)
	b.Navigate(srv.URL + "/auth/connections/linear/callback")

	// The frame is an opaque origin: the page cannot reach in, and the frame cannot reach out.
	if got := browser.Eval[bool](b, `document.querySelector("iframe").contentDocument === null`); !got {
		t.Error("iframe content is reachable from the page: sandbox lacks an opaque origin")
	}
	if got := browser.Eval[string](b, `document.querySelector("iframe").getAttribute("sandbox")`); got != "" {
		t.Errorf("sandbox = %q, want no allowances", got)
	}
	if got := browser.Eval[string](b, `document.title`); got != "Linear could not be connected · mcpgate" {
		t.Errorf("title = %q: upstream script ran", got)
	}
	frames := b.FrameTexts()
	if len(frames) != 1 || !strings.Contains(frames[0], "Access Denied") {
		t.Fatalf("frames = %q, want the upstream page still shown", frames)
	}
	if got := b.CurrentURL(); !strings.HasPrefix(got, srv.URL) {
		t.Errorf("navigated away to %s", got)
	}
	// Navigate returned after the load event, which waits for the frame and its subresources, and
	// FrameTexts then saw the frame still on its srcdoc page: any request it made has arrived.
	select {
	case path := <-beaconHits:
		t.Errorf("the upstream page made a request to %s: the frame's CSP is not the page's", path)
	default:
	}
}
