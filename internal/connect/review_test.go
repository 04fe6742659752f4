// Regression guards from the security review of the connection flow (browser tickets, consent
// CSRF, callback state, per-user connections, what reaches the log and the upstream), driven
// through a whole gateway in front of gatewaytest.FakeUpstream so each test controls exactly what
// the upstream accepts. Their names end in _Review.
package connect_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// The user's own upstream token is injected after the browser flow, and nothing of the client's
// gateway credential (Authorization, cookies) reaches the upstream.
func TestConnectInjectsOwnTokenNoPassthrough_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	e.Connect("/mcp/alpha", "alice")
	resp, body := e.ToolsCall(e.Gateway, "/mcp/alpha", "alice", map[string]string{
		"Authorization": "Bearer gateway-credential", "Cookie": "__Host-session=gateway-cookie"})
	if resp.StatusCode != 200 || !strings.Contains(body, `"result"`) {
		t.Fatalf("tools/call after connecting: HTTP %d %s", resp.StatusCode, body)
	}
	h := e.Up.LastHeaders()
	if got := h.Get("Authorization"); got != "Bearer at-1" {
		t.Errorf("upstream Authorization = %q, want the user's own upstream token", got)
	}
	if c := h.Get("Cookie"); c != "" {
		t.Errorf("upstream received the client's cookies: %q", c)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id on a proxied response")
	}
}

// One user's connection is never used for another user (cache and store keyed by subject).
func TestConnectionIsPerUser_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	e.Connect("/mcp/alpha", "alice")
	_, body := e.ToolsCall(e.Gateway, "/mcp/alpha", "bob", nil)
	gatewaytest.ConnectLink(t, body) // bob is asked to connect
	if got := e.Up.LastHeaders().Get("Authorization"); got != "" {
		t.Errorf("bob's request reached the upstream with %q", got)
	}
}

// The state of an authorization response is single use, and bound to its upstream.
func TestCallbackStateSingleUseAndBoundToUpstream_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	_, body := e.ToolsCall(e.Gateway, "/mcp/alpha", "alice", nil)
	loc := e.Browser.Approve(e.Gateway, gatewaytest.ConnectLink(t, body))

	// Replayed on the other upstream's callback: refused (and the row is spent).
	q := loc.Query()
	other := strings.Replace(q.Get("redirect_uri"), "/alpha/", "/beta/", 1)
	cb, _ := url.Parse(other)
	cb.RawQuery = url.Values{"code": {"c"}, "state": {q.Get("state")}}.Encode()
	if resp, page := e.Browser.Do(e.Gateway, "GET", cb.String(), nil); resp.StatusCode == 200 {
		t.Fatalf("alpha's state accepted on beta's callback:\n%s", page)
	}
	if resp, page := e.Browser.Callback(e.Gateway, loc); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("second use of a state: HTTP %d, want 400\n%s", resp.StatusCode, page)
	}
}

// A connect link is refused for another route's operationId, and a consent decision without the
// CSRF token is refused.
func TestTicketBindingAndCSRF_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	_, body := e.ToolsCall(e.Gateway, "/mcp/alpha", "alice", nil)
	link, _ := url.Parse(gatewaytest.ConnectLink(t, body))
	q := link.Query()

	wrongOp := *link
	wq := link.Query()
	wq.Set("operationId", "beta-mcp")
	wrongOp.RawQuery = wq.Encode()
	if resp, page := e.Browser.Do(e.Gateway, "GET", wrongOp.String(), nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("ticket with another operationId: HTTP %d, want 400\n%s", resp.StatusCode, page)
	}
	otherUp := strings.Replace(link.String(), "/connections/alpha/", "/connections/beta/", 1)
	if resp, page := e.Browser.Do(e.Gateway, "GET", otherUp, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("alpha's ticket on beta's connect page: HTTP %d, want 400\n%s", resp.StatusCode, page)
	}

	post := *link
	post.RawQuery = ""
	form := url.Values{"browserTicket": {q.Get("browserTicket")}, "operationId": {q.Get("operationId")}, "decision": {"approve"}}
	if resp, page := e.Browser.Do(e.Gateway, "POST", post.String(), form); resp.StatusCode != http.StatusForbidden {
		t.Errorf("approve without CSRF token: HTTP %d, want 403\n%s", resp.StatusCode, page)
	}
}

// FIXED FINDING (regression guard): behind https every upstream's browser-binding cookie has the same name and path
// (__Host-mcpgate-connect, Path=/), so a person who approves two connect links before finishing the
// first sign-in (two upstreams, two tabs: the usual case when a client calls tools of two
// upstreams) gets "this browser is not the one that approved" on the first callback.
func TestParallelConnectsInOneBrowser_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "https://gw.example")
	_, a := e.ToolsCall(e.Gateway, "/mcp/alpha", "alice", nil)
	_, b := e.ToolsCall(e.Gateway, "/mcp/beta", "alice", nil)
	locA := e.Browser.Approve(e.Gateway, gatewaytest.ConnectLink(t, a))
	locB := e.Browser.Approve(e.Gateway, gatewaytest.ConnectLink(t, b))

	resp, page := e.Browser.Callback(e.Gateway, locA)
	if resp.StatusCode != 200 {
		t.Errorf("first upstream's callback after a second approve: HTTP %d, want 200 (connected)\n%s", resp.StatusCode, reviewExcerpt(page))
	}
	resp, page = e.Browser.Callback(e.Gateway, locB)
	if resp.StatusCode != 200 {
		t.Errorf("second upstream's callback: HTTP %d\n%s", resp.StatusCode, reviewExcerpt(page))
	}
}

// reviewExcerpt is the part of an error page worth printing: from its "Reason" on, 400 bytes.
func reviewExcerpt(page string) string {
	if i := strings.Index(page, "Reason"); i >= 0 {
		return page[i:min(len(page), i+400)]
	}
	return page[:min(len(page), 400)]
}

// Nothing secret of the browser flow or the upstream grant reaches the log: access and refresh
// tokens, the authorization code, state, PKCE verifier or the browser ticket.
func TestFlowSecretsNeverLogged_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	_, body := e.ToolsCall(e.Gateway, "/mcp/alpha", "alice", nil)
	link := gatewaytest.ConnectLink(t, body)
	loc := e.Browser.Approve(e.Gateway, link)
	if resp, page := e.Browser.Callback(e.Gateway, loc); resp.StatusCode != 200 {
		t.Fatalf("callback: HTTP %d\n%s", resp.StatusCode, page)
	}
	if resp, _ := e.ToolsCall(e.Gateway, "/mcp/alpha", "alice", nil); resp.StatusCode != 200 {
		t.Fatalf("tools/call: HTTP %d", resp.StatusCode)
	}
	lu, _ := url.Parse(link)
	secrets := map[string]string{
		"access token":   "at-1",
		"refresh token":  "rt-at-1",
		"code":           "code-1",
		"state":          loc.Query().Get("state"),
		"code challenge": loc.Query().Get("code_challenge"),
		"browser ticket": lu.Query().Get("browserTicket"),
	}
	logs := e.Logs.String()
	for what, v := range secrets {
		if v != "" && strings.Contains(logs, v) {
			t.Errorf("the %s appears in the log", what)
		}
	}
}

// A notification the upstream refuses for want of a connection gets 428 problem+json, never a
// JSON-RPC body and never the upstream's challenge.
func TestNotificationConnectRequiredIs428_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	req, err := http.NewRequestWithContext(context.Background(), "POST", e.Gateway.URL+"/mcp/alpha",
		strings.NewReader(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set(gatewaytest.UserHeader, "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPreconditionRequired || resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("notification: HTTP %d, WWW-Authenticate %q; want 428 without challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
