package review_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The user's own upstream token is injected after the browser flow, and nothing of the client's
// gateway credential (Authorization, cookies) reaches the upstream.
func TestConnectInjectsOwnTokenNoPassthrough_Review(t *testing.T) {
	e := newEnv(t, "")
	e.connect("/mcp/alpha", "alice")
	resp, body := e.toolsCall(e.gw, "/mcp/alpha", "alice", map[string]string{
		"Authorization": "Bearer gateway-credential", "Cookie": "__Host-session=gateway-cookie"})
	if resp.StatusCode != 200 || !strings.Contains(body, `"result"`) {
		t.Fatalf("tools/call after connecting: HTTP %d %s", resp.StatusCode, body)
	}
	h := e.up.lastHeaders()
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
	e := newEnv(t, "")
	e.connect("/mcp/alpha", "alice")
	_, body := e.toolsCall(e.gw, "/mcp/alpha", "bob", nil)
	authURL(t, body) // bob is asked to connect
	if got := e.up.lastHeaders().Get("Authorization"); got != "" {
		t.Errorf("bob's request reached the upstream with %q", got)
	}
}

// The state of an authorization response is single use, and bound to its upstream.
func TestCallbackStateSingleUseAndBoundToUpstream_Review(t *testing.T) {
	e := newEnv(t, "")
	_, body := e.toolsCall(e.gw, "/mcp/alpha", "alice", nil)
	loc := e.jar.approve(e.gw, authURL(t, body))

	// Replayed on the other upstream's callback: refused (and the row is spent).
	q := loc.Query()
	other := strings.Replace(q.Get("redirect_uri"), "/alpha/", "/beta/", 1)
	cb, _ := url.Parse(other)
	cb.RawQuery = url.Values{"code": {"c"}, "state": {q.Get("state")}}.Encode()
	if resp, page := e.jar.do(e.gw, "GET", cb.String(), nil); resp.StatusCode == 200 {
		t.Fatalf("alpha's state accepted on beta's callback:\n%s", page)
	}
	if resp, page := e.jar.callback(e.gw, loc); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("second use of a state: HTTP %d, want 400\n%s", resp.StatusCode, page)
	}
}

// A connect link is refused for another route's operationId, and a consent decision without the
// CSRF token is refused.
func TestTicketBindingAndCSRF_Review(t *testing.T) {
	e := newEnv(t, "")
	_, body := e.toolsCall(e.gw, "/mcp/alpha", "alice", nil)
	link, _ := url.Parse(authURL(t, body))
	q := link.Query()

	wrongOp := *link
	wq := link.Query()
	wq.Set("operationId", "beta-mcp")
	wrongOp.RawQuery = wq.Encode()
	if resp, page := e.jar.do(e.gw, "GET", wrongOp.String(), nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("ticket with another operationId: HTTP %d, want 400\n%s", resp.StatusCode, page)
	}
	otherUp := strings.Replace(link.String(), "/connections/alpha/", "/connections/beta/", 1)
	if resp, page := e.jar.do(e.gw, "GET", otherUp, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("alpha's ticket on beta's connect page: HTTP %d, want 400\n%s", resp.StatusCode, page)
	}

	post := *link
	post.RawQuery = ""
	form := url.Values{"browserTicket": {q.Get("browserTicket")}, "operationId": {q.Get("operationId")}, "decision": {"approve"}}
	if resp, page := e.jar.do(e.gw, "POST", post.String(), form); resp.StatusCode != http.StatusForbidden {
		t.Errorf("approve without CSRF token: HTTP %d, want 403\n%s", resp.StatusCode, page)
	}
}

// A public MCP route passes the upstream's 401 through but never its WWW-Authenticate challenge
// (the MCP client would start OAuth against the upstream's authorization server).
func TestPublicRouteUpstreamChallengeStripped_Review(t *testing.T) {
	e := newEnv(t, "")
	resp, _ := e.toolsCall(e.gw, "/mcp/public", "", map[string]string{"Authorization": "Bearer client-token"})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want the upstream's 401", resp.StatusCode)
	}
	if v := resp.Header.Get("WWW-Authenticate"); v != "" {
		t.Errorf("upstream challenge reached the MCP client: %q", v)
	}
	if got := e.up.lastHeaders().Get("Authorization"); got != "" {
		t.Errorf("the client's Authorization reached a public upstream: %q", got)
	}
}

// The DNS-rebinding check refuses a foreign Origin when the public URL is configured.
func TestForeignOriginRefusedWithPublicURL_Review(t *testing.T) {
	e := newEnv(t, "http://gw.example")
	before := e.up.requests()
	resp, _ := e.toolsCall(e.gw, "/mcp/public", "", map[string]string{"Origin": "http://evil.example"})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign Origin: HTTP %d, want 403", resp.StatusCode)
	}
	if e.up.requests() != before {
		t.Error("a request with a foreign Origin reached the upstream")
	}
}
