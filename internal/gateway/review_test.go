// Regression guards from the security review of the gateway itself (the DNS-rebinding Origin
// check, the request id on every log line), driven through a whole gateway in front of
// gatewaytest.FakeUpstream. Their names end in _Review.
package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// FIXED FINDING (regression guard): without --public-url the DNS-rebinding check compares Origin with the request's own
// Host, which is exactly what a DNS-rebinding page controls (Host: evil.example, Origin:
// http://evil.example). The default quickstart (no public URL, listening on localhost) is the
// setup DNS rebinding targets.
func TestDNSRebindingOriginRefusedWithoutPublicURL_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	before := e.Up.Requests()
	resp, _ := e.ToolsCall(e.Gateway, "/mcp/public", "", map[string]string{"Host": "evil.example", "Origin": "http://evil.example"})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("rebinding Origin: HTTP %d, want 403", resp.StatusCode)
	}
	if e.Up.Requests() != before {
		t.Error("a DNS-rebinding request reached the upstream")
	}
}

// The DNS-rebinding check refuses a foreign Origin when the public URL is configured.
func TestForeignOriginRefusedWithPublicURL_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "http://gw.example")
	before := e.Up.Requests()
	resp, _ := e.ToolsCall(e.Gateway, "/mcp/public", "", map[string]string{"Origin": "http://evil.example"})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign Origin: HTTP %d, want 403", resp.StatusCode)
	}
	if e.Up.Requests() != before {
		t.Error("a request with a foreign Origin reached the upstream")
	}
}

// Every log line written while serving a request carries its request id.
func TestEveryRequestLogLineHasRequestID_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	start := len(e.Logs.String())
	e.Connect("/mcp/alpha", "alice")
	e.ToolsCall(e.Gateway, "/mcp/alpha", "alice", nil)
	e.ToolsCall(e.Gateway, "/mcp/public", "", nil)
	e.ToolsCall(e.Gateway, "/nope", "", nil)
	for _, line := range strings.Split(e.Logs.String()[start:], "\n") {
		if line != "" && !strings.Contains(line, "requestId=") {
			t.Errorf("log line without requestId: %s", line)
		}
	}
}
