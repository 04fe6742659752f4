package connect_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// wantPageHeaders asserts the headers every gateway page carries (web.render's): no framing, no
// shared browsing context, no referrer, no sniffing, no caching.
func wantPageHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	for k, want := range map[string]string{
		"X-Frame-Options":            "DENY",
		"Cross-Origin-Opener-Policy": "same-origin",
		"Referrer-Policy":            "no-referrer",
		"X-Content-Type-Options":     "nosniff",
		"Cache-Control":              "no-store",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q", what, k, got, want)
		}
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("%s: CSP %q", what, csp)
	}
}

// The consent page of a shared-oauth upstream (opened by an administrator from the setup UI) says
// the grant is for every user of the upstream, never "for you" or "your MCP client", and carries the
// usual page headers.
func TestSharedConsentPageSpeaksOfEveryUser(t *testing.T) {
	c := newCluster(t, clusterOptions{instances: 1, shared: true})
	req := httptest.NewRequest(http.MethodGet, c.gws[0].URL+"/", nil)
	link, err := c.gws[0].Manager.SharedConnectURL(req, "hydra-up", "apikey|ops")
	if err != nil {
		t.Fatal(err)
	}
	resp, page := newBrowser(t).get(link)
	if resp.StatusCode != 200 {
		t.Fatalf("consent page: %d %s", resp.StatusCode, page)
	}
	wantPageHeaders(t, "shared consent page", resp.Header)
	for _, bad := range []string{"for you", "your MCP client", "Your MCP client", "you approved", "Connecting as"} {
		if strings.Contains(page, bad) {
			t.Errorf("the shared consent page says %q", bad)
		}
	}
	for _, want := range []string{"for every user of Hydra Upstream on this gateway", "will use the account you sign in with", "Connecting for"} {
		if !strings.Contains(page, want) {
			t.Errorf("the shared consent page lacks %q", want)
		}
	}
	// Cancel: the result page speaks of the shared connection too.
	resp, done := newBrowser(t).decide(link, "cancel")
	if resp.StatusCode != 200 || strings.Contains(done, "your MCP client") || !strings.Contains(done, "every user of Hydra Upstream") {
		t.Errorf("shared cancel page: %d %s", resp.StatusCode, done)
	}
}

// The disconnect confirm page and its outcome page carry the same frame, opener, referrer,
// sniffing and caching headers as every other page (its form disconnects: it must not be framed).
func TestDisconnectPageHeaders(t *testing.T) {
	c := newCluster(t, clusterOptions{instances: 1})
	m := disconnectLinkRe.FindStringSubmatch(c.connect("alice"))
	if m == nil {
		t.Fatal("no disconnect link on the result page")
	}
	link := htmlUnescape(m[1])
	b := newBrowser(t)
	resp, confirm := b.get(link)
	if resp.StatusCode != 200 {
		t.Fatalf("confirm page: %d %s", resp.StatusCode, confirm)
	}
	wantPageHeaders(t, "disconnect confirm page", resp.Header)
	csrf := csrfRe.FindStringSubmatch(confirm)
	if csrf == nil {
		t.Fatal("no CSRF token on the confirm page")
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"t": {u.Query().Get("t")}, "csrf": {htmlUnescape(csrf[1])}}
	resp, done := b.post(strings.SplitN(link, "?", 2)[0], form, "")
	if resp.StatusCode != 200 || !strings.Contains(done, "is disconnected") {
		t.Fatalf("disconnect: %d %s", resp.StatusCode, done)
	}
	wantPageHeaders(t, "disconnect outcome page", resp.Header)
}
