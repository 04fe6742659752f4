package review_test

import (
	"net/url"
	"strings"
	"testing"
)

// Nothing secret of the browser flow or the upstream grant reaches the log: access and refresh
// tokens, the authorization code, state, PKCE verifier or the browser ticket.
func TestFlowSecretsNeverLogged_Review(t *testing.T) {
	e := newEnv(t, "")
	_, body := e.toolsCall(e.gw, "/mcp/alpha", "alice", nil)
	link := authURL(t, body)
	loc := e.jar.approve(e.gw, link)
	if resp, page := e.jar.callback(e.gw, loc); resp.StatusCode != 200 {
		t.Fatalf("callback: HTTP %d\n%s", resp.StatusCode, page)
	}
	if resp, _ := e.toolsCall(e.gw, "/mcp/alpha", "alice", nil); resp.StatusCode != 200 {
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
	logs := e.logs.String()
	for what, v := range secrets {
		if v != "" && strings.Contains(logs, v) {
			t.Errorf("the %s appears in the log", what)
		}
	}
}

// Every log line written while serving a request carries its request id.
func TestEveryRequestLogLineHasRequestID_Review(t *testing.T) {
	e := newEnv(t, "")
	start := len(e.logs.String())
	e.connect("/mcp/alpha", "alice")
	e.toolsCall(e.gw, "/mcp/alpha", "alice", nil)
	e.toolsCall(e.gw, "/mcp/public", "", nil)
	e.toolsCall(e.gw, "/nope", "", nil)
	for _, line := range strings.Split(e.logs.String()[start:], "\n") {
		if line != "" && !strings.Contains(line, "requestId=") {
			t.Errorf("log line without requestId: %s", line)
		}
	}
}
