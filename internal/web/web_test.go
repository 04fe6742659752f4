package web

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// hostile is put into every displayed field: none of it may reach the page unescaped.
const hostile = `<script>alert("x")</script>'"&`

// mustNotContainRaw fails when body carries hostile (or a piece of it) unescaped.
func mustNotContainRaw(t *testing.T, body string) {
	t.Helper()
	for _, raw := range []string{"<script>", `alert("x")`, `'"&`} {
		if strings.Contains(body, raw) {
			t.Errorf("body contains unescaped %q", raw)
		}
	}
	if strings.Contains(body, "<script") {
		t.Errorf("body contains a script element")
	}
}

// checkHeaders asserts the headers every page carries and returns the CSP.
func checkHeaders(t *testing.T, rec *httptest.ResponseRecorder, status int) string {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d, want %d", rec.Code, status)
	}
	for k, want := range map[string]string{
		"Content-Type":               "text/html; charset=utf-8",
		"Cache-Control":              "no-store",
		"X-Frame-Options":            "DENY",
		"Referrer-Policy":            "no-referrer",
		"X-Content-Type-Options":     "nosniff",
		"Cross-Origin-Opener-Policy": "same-origin",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	csp := rec.Header().Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "img-src data:", "base-uri 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "script-src", "*"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP %q contains %q", csp, bad)
		}
	}
	// The inlined stylesheet is exactly what the hash in the CSP allows.
	m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatal("no <style> element")
	}
	sum := sha256.Sum256([]byte(m[1]))
	if want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
		t.Errorf("CSP %q does not allow the inline stylesheet (%s)", csp, want)
	}
	if n := strings.Count(rec.Body.String(), " style="); n != 0 {
		t.Errorf("%d style attributes; the CSP blocks them", n)
	}
	return csp
}

func consentFixture() ConsentPage {
	return ConsentPage{
		DisplayName:  "Linear",
		Summary:      "Issues and projects in Linear.",
		Scopes:       []string{"read", "write"},
		AddedScopes:  []string{"admin"},
		Subject:      "apikey|alice",
		UpstreamHost: "mcp.linear.app",
		ExpiresAt:    time.Date(2026, 11, 26, 2, 15, 0, 0, time.UTC),
		Action:       "/auth/connections/linear/connect",
		Hidden:       []Field{{"browserTicket", "tkt-123"}, {"operationId", "linear-mcp-server"}},
		CSRFToken:    "csrf-token-value",
		RequestID:    "req-1",
	}
}

// fixClock sets the clock of the "expires in" hint for one test.
func fixClock(t *testing.T, at time.Time) {
	t.Helper()
	old := now
	now = func() time.Time { return at }
	t.Cleanup(func() { now = old })
}

func TestRenderConsent(t *testing.T) {
	fixClock(t, time.Date(2026, 11, 26, 2, 0, 30, 0, time.UTC))
	rec := httptest.NewRecorder()
	if err := RenderConsent(rec, consentFixture()); err != nil {
		t.Fatal(err)
	}
	csp := checkHeaders(t, rec, http.StatusOK)
	if strings.Contains(csp, "form-action") {
		t.Errorf("CSP %q restricts form-action; approve's redirect to the authorization server would be blocked", csp)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`<title>Connect Linear · mcpgate</title>`,
		`<h1>Connect Linear</h1>`,
		`Issues and projects in Linear.`,
		`<dt>Connecting as</dt>`,
		`<dd>apikey|alice</dd>`,
		`mcp.linear.app`,
		`<time datetime="2026-11-26T02:15:00Z">02:15 UTC, 26 Nov 2026</time> <span class="muted">(in 14 minutes)</span>`,
		`store the access it grants for you, encrypted.`,
		`<form method="post" action="/auth/connections/linear/connect">`,
		`<input type="hidden" name="browserTicket" value="tkt-123">`,
		`<input type="hidden" name="operationId" value="linear-mcp-server">`,
		`<input type="hidden" name="csrf" value="csrf-token-value">`,
		`<button type="submit" name="decision" value="approve">Connect Linear</button>`,
		`<button type="submit" name="decision" value="cancel">Cancel</button>`,
		`<li><code>read</code></li>`,
		`<li class="new"><code>admin</code><span class="badge">newly requested</span></li>`,
		`req-1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("consent page lacks %s", want)
		}
	}
	if strings.Index(body, `name="browserTicket"`) > strings.Index(body, `name="operationId"`) {
		t.Error("hidden fields are not in the given order")
	}
	if n := strings.Count(body, "<form"); n != 1 {
		t.Errorf("%d forms, want 1", n)
	}
}

func TestRenderConsentStepUpMarksOnlyNewScopes(t *testing.T) {
	p := consentFixture()
	p.Scopes = []string{"read", "write", "admin"}
	p.AddedScopes = []string{"admin"}
	p.Reconnect = true
	rec := httptest.NewRecorder()
	if err := RenderConsent(rec, p); err != nil {
		t.Fatal(err)
	}
	body := rec.Body.String()
	if got := strings.Count(body, `class="new"`); got != 1 {
		t.Errorf("%d scopes marked new, want 1", got)
	}
	if got := strings.Count(body, `<code>admin</code>`); got != 1 {
		t.Errorf("admin listed %d times, want once", got)
	}
	if !strings.Contains(body, `<button type="submit" name="decision" value="approve">Reconnect Linear</button>`) {
		t.Error("reconnect wording missing on the approve button")
	}
}

func TestExpiresIn(t *testing.T) {
	base := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	fixClock(t, base)
	for d, want := range map[time.Duration]string{
		-time.Second:                 "expired",
		0:                            "expired",
		30 * time.Second:             "in less than a minute",
		90 * time.Second:             "in 1 minute",
		15 * time.Minute:             "in 15 minutes",
		15*time.Minute - time.Second: "in 14 minutes",
		3*time.Hour + 59*time.Minute: "in 3 hours",
	} {
		if got := expiresIn(base.Add(d)); got != want {
			t.Errorf("expiresIn(now%+v) = %q, want %q", d, got, want)
		}
	}
}

func TestRenderConsentShared(t *testing.T) {
	p := consentFixture()
	p.Shared = true
	rec := httptest.NewRecorder()
	if err := RenderConsent(rec, p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.Body.String(), "store the access it grants for every user of Linear on this gateway, encrypted.") {
		t.Error("shared wording missing")
	}
}

func TestRenderConsentNoScopes(t *testing.T) {
	p := consentFixture()
	p.Scopes, p.AddedScopes, p.ExpiresAt = nil, nil, time.Time{}
	rec := httptest.NewRecorder()
	if err := RenderConsent(rec, p); err != nil {
		t.Fatal(err)
	}
	body := rec.Body.String()
	if strings.Contains(body, `class="scopes"`) || !strings.Contains(body, "no specific scopes were requested") {
		t.Error("empty scope list not explained")
	}
	if strings.Contains(body, "Link expires") {
		t.Error("zero ExpiresAt shown")
	}
}

func TestRenderConsentFormActionSources(t *testing.T) {
	p := consentFixture()
	p.FormActionSources = []string{"https://auth.example.com", "https://evil.example; script-src *", "'unsafe-inline'"}
	rec := httptest.NewRecorder()
	if err := RenderConsent(rec, p); err != nil {
		t.Fatal(err)
	}
	csp := checkHeaders(t, rec, http.StatusOK)
	if !strings.HasSuffix(csp, "; form-action 'self' https://auth.example.com") {
		t.Errorf("CSP = %q, want form-action 'self' https://auth.example.com at the end and nothing injected", csp)
	}
}

func TestRenderConsentReservedHiddenField(t *testing.T) {
	for _, name := range []string{"csrf", "decision", ""} {
		p := consentFixture()
		p.Hidden = append(p.Hidden, Field{name, "x"})
		rec := httptest.NewRecorder()
		if err := RenderConsent(rec, p); err == nil {
			t.Errorf("hidden field %q: no error", name)
		}
		if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "<form") {
			t.Errorf("hidden field %q: status %d, body %q", name, rec.Code, rec.Body.String())
		}
	}
}

func TestRenderConsentEscapesHostileInput(t *testing.T) {
	rec := httptest.NewRecorder()
	err := RenderConsent(rec, ConsentPage{
		DisplayName:  hostile,
		Summary:      hostile,
		Scopes:       []string{hostile},
		AddedScopes:  []string{hostile + "2"},
		Subject:      hostile,
		UpstreamHost: hostile,
		Action:       `javascript:alert(1)`,
		Hidden:       []Field{{`a"b`, hostile}},
		CSRFToken:    hostile,
		RequestID:    hostile,
	})
	if err != nil {
		t.Fatal(err)
	}
	body := rec.Body.String()
	mustNotContainRaw(t, body)
	if strings.Contains(body, "javascript:") {
		t.Error("javascript: URL reached the form action")
	}
	if !strings.Contains(body, `action="#ZgotmplZ"`) {
		t.Error("unsafe action was not neutralised")
	}
	if !strings.Contains(body, `<h1>Connect &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&#39;&#34;&amp;</h1>`) {
		t.Error("display name not escaped as text")
	}
}

func TestRenderResult(t *testing.T) {
	tests := []struct {
		name   string
		page   ResultPage
		status int
		want   []string
	}{
		{
			name:   "connected",
			page:   ResultPage{Kind: ResultConnected, DisplayName: "Linear", Subject: "apikey|alice", Scopes: []string{"read"}, DisconnectURL: "/auth/connections/linear/disconnect"},
			status: http.StatusOK,
			want: []string{
				`<h1>Linear is connected</h1>`,
				`Linear is connected — return to your MCP client`,
				`Connected by mistake? <a href="/auth/connections/linear/disconnect">Disconnect</a> Linear from this gateway.`,
				`<dd>apikey|alice</dd>`,
			},
		},
		{
			name:   "cancelled",
			page:   ResultPage{Kind: ResultCancelled, DisplayName: "Linear"},
			status: http.StatusOK,
			want:   []string{`<h1>Connection cancelled</h1>`, `You cancelled connecting Linear. Nothing was stored.`},
		},
		{
			name:   "denied",
			page:   ResultPage{Kind: ResultDenied, DisplayName: "Linear", Detail: "Linear said: the user denied access", Status: http.StatusForbidden},
			status: http.StatusForbidden,
			want:   []string{`<h1>Linear did not grant access</h1>`, `<p class="note">Linear said: the user denied access</p>`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if err := RenderResult(rec, tt.page); err != nil {
				t.Fatal(err)
			}
			csp := checkHeaders(t, rec, tt.status)
			if !strings.HasSuffix(csp, "; form-action 'none'") {
				t.Errorf("CSP %q lacks form-action 'none'", csp)
			}
			body := rec.Body.String()
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %s", w)
				}
			}
			if strings.Contains(body, "<form") || strings.Contains(body, "<button") {
				t.Error("result page has a form")
			}
			if tt.page.DisconnectURL == "" && strings.Contains(body, "Disconnect") {
				t.Error("Disconnect shown without a URL")
			}
		})
	}
}

func TestRenderResultUnknownKind(t *testing.T) {
	rec := httptest.NewRecorder()
	if err := RenderResult(rec, ResultPage{Kind: "weird"}); err == nil || rec.Code != http.StatusInternalServerError {
		t.Fatalf("err = %v, status %d", err, rec.Code)
	}
}

func TestRenderResultEscapesHostileInput(t *testing.T) {
	for _, kind := range []ResultKind{ResultConnected, ResultCancelled, ResultDenied} {
		rec := httptest.NewRecorder()
		err := RenderResult(rec, ResultPage{
			Kind: kind, DisplayName: hostile, Subject: hostile, Scopes: []string{hostile},
			Detail: hostile, DisconnectURL: `javascript:alert(1)`, RequestID: hostile,
		})
		if err != nil {
			t.Fatal(err)
		}
		body := rec.Body.String()
		mustNotContainRaw(t, body)
		if strings.Contains(body, "javascript:") {
			t.Errorf("%s: javascript: URL reached the Disconnect link", kind)
		}
	}
}

func TestRenderError(t *testing.T) {
	rec := httptest.NewRecorder()
	err := RenderError(rec, ErrorPage{
		Status:         http.StatusBadGateway,
		Title:          "Linear refused the connection",
		Message:        "Linear's firewall blocked the gateway.",
		RequestID:      "req-42",
		Code:           "upstream_forbidden",
		Reason:         "token endpoint answered 403",
		Bucket:         BucketUpstreamResponse,
		UpstreamStatus: http.StatusForbidden,
		UpstreamHTML:   `<html><body><h1>Access Denied</h1><p>Reference #18.abc</p></body></html>`,
	})
	if err != nil {
		t.Fatal(err)
	}
	csp := checkHeaders(t, rec, http.StatusBadGateway)
	if !strings.HasSuffix(csp, "; form-action 'none'") {
		t.Errorf("CSP %q lacks form-action 'none'", csp)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`<h1>Linear refused the connection</h1>`,
		`Linear&#39;s firewall blocked the gateway.`,
		"<dt>Request ID</dt>\n<dd><code>req-42</code></dd>",
		"<dt>Error code</dt>\n<dd><code>upstream_forbidden</code></dd>",
		"<dt>Reason</dt>\n<dd>token endpoint answered 403</dd>",
		"<dt>Category</dt>\n<dd>Upstream service response</dd>",
		`What the upstream answered`,
		`HTTP 403 Forbidden`,
		`<iframe sandbox srcdoc="&lt;html&gt;&lt;body&gt;&lt;h1&gt;Access Denied&lt;/h1&gt;&lt;p&gt;Reference #18.abc&lt;/p&gt;&lt;/body&gt;&lt;/html&gt;"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("error page lacks %s", want)
		}
	}
}

func TestRenderErrorDefaultsAndBuckets(t *testing.T) {
	for _, b := range []Bucket{BucketGatewayConfig, BucketUpstreamOAuth, BucketUpstreamResponse} {
		rec := httptest.NewRecorder()
		if err := RenderError(rec, ErrorPage{Status: http.StatusBadRequest, Bucket: b}); err != nil {
			t.Fatal(err)
		}
		checkHeaders(t, rec, http.StatusBadRequest)
		body := rec.Body.String()
		for _, want := range []string{"<dd>" + string(b) + "</dd>", "<h1>This link cannot be used</h1>", "<dt>Request ID</dt>", "<dt>Error code</dt>", "<dt>Reason</dt>"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: page lacks %s", b, want)
			}
		}
		if strings.Contains(body, "<iframe") || strings.Contains(body, "What the upstream answered") {
			t.Errorf("%s: upstream section without an upstream body", b)
		}
	}
	rec := httptest.NewRecorder()
	if err := RenderError(rec, ErrorPage{}); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "<dt>Category</dt>") {
		t.Errorf("zero ErrorPage: status %d", rec.Code)
	}
}

func TestRenderErrorUpstreamText(t *testing.T) {
	rec := httptest.NewRecorder()
	if err := RenderError(rec, ErrorPage{Status: 502, UpstreamStatus: 500, UpstreamText: `{"error":"<b>boom</b>"}`}); err != nil {
		t.Fatal(err)
	}
	body := rec.Body.String()
	if !strings.Contains(body, `<pre class="upstream-text" aria-labelledby="upstream-heading">{&#34;error&#34;:&#34;&lt;b&gt;boom&lt;/b&gt;&#34;}</pre>`) {
		t.Error("upstream text not shown escaped in <pre>")
	}
	if strings.Contains(body, "<iframe") {
		t.Error("text body shown in an iframe")
	}
}

func TestRenderErrorBoundsUpstreamBody(t *testing.T) {
	big := strings.Repeat("é", MaxUpstreamBody) // 2 bytes each: the cut falls inside a rune
	rec := httptest.NewRecorder()
	if err := RenderError(rec, ErrorPage{Status: 502, UpstreamText: "x" + big}); err != nil {
		t.Fatal(err)
	}
	body := rec.Body.String()
	if !strings.Contains(body, "cut to the first 64 KiB") {
		t.Error("truncation not said")
	}
	if strings.Count(body, "é") > MaxUpstreamBody/2 {
		t.Error("upstream body not bounded")
	}
	if !strings.Contains(body, "é</pre>") {
		t.Error("cut split a rune")
	}
}

func TestTruncateUTF8(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
		cut  bool
	}{
		{"abc", 5, "abc", false},
		{"abc", 3, "abc", false},
		{"abcd", 3, "abc", true},
		{"aé", 2, "a", true},
		{"a€b", 3, "a", true},
		{"a€b", 4, "a€", true},
		{"a😀", 4, "a", true},
	}
	for _, tt := range tests {
		got, cut := truncateUTF8(tt.in, tt.n)
		if got != tt.want || cut != tt.cut {
			t.Errorf("truncateUTF8(%q, %d) = %q, %v; want %q, %v", tt.in, tt.n, got, cut, tt.want, tt.cut)
		}
	}
}

func TestRenderErrorEscapesHostileInput(t *testing.T) {
	rec := httptest.NewRecorder()
	err := RenderError(rec, ErrorPage{
		Status: 403, Title: hostile, Message: hostile, RequestID: hostile, Code: hostile, Reason: hostile,
		Bucket: Bucket(hostile), UpstreamStatus: 403, UpstreamHTML: hostile + `" onload="alert(1)`,
	})
	if err != nil {
		t.Fatal(err)
	}
	body := rec.Body.String()
	mustNotContainRaw(t, body)
	if strings.Contains(body, `" onload=`) {
		t.Error("upstream HTML broke out of the srcdoc attribute")
	}
	if !regexp.MustCompile(`<iframe sandbox srcdoc="[^"]*" title=`).MatchString(body) {
		t.Error("iframe markup changed: sandbox without tokens and a quoted srcdoc expected")
	}
}
