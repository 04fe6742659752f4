package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// Arbitrary method, path, headers and body through the whole gateway (routes, auth stand-in,
// token exchange, proxy, hooks, gateway endpoints) never panic and always get a response.
func FuzzGatewayRequest_Review(f *testing.F) {
	f.Add("POST", "/mcp/alpha", "alice", "application/json", `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`)
	f.Add("POST", "/mcp/alpha", "alice", "text/event-stream", `[{"jsonrpc":"2.0","id":"x","method":"a"},{"jsonrpc":"2.0","method":"n"}]`)
	f.Add("GET", "/__mcpgate/auth/connections/alpha/connect?browserTicket=%ff&operationId=", "", "", "")
	f.Add("POST", "/__mcpgate/auth/connections/alpha/connect", "", "", "browserTicket=a&csrf=b")
	f.Add("GET", "/__mcpgate/auth/connections/alpha/callback?state=x&code=y&iss=z", "", "", "")
	f.Add("OPTIONS", "/mcp/public", "", "", "")
	e := gatewaytest.NewFakeUpstreamEnv(f, "")
	f.Fuzz(func(t *testing.T, method, path, user, accept, body string) {
		if !reviewValidMethod(method) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n#") {
			return
		}
		req, err := http.NewRequest(method, "http://gw.test"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		if user != "" && reviewValidHeader(user) {
			req.Header.Set(gatewaytest.UserHeader, user)
		}
		if reviewValidHeader(accept) {
			req.Header.Set("Accept", accept)
		}
		rec := httptest.NewRecorder()
		e.Gateway.ServeHTTP(rec, req)
		if rec.Code < 100 || rec.Code > 599 {
			t.Fatalf("status %d", rec.Code)
		}
		if rec.Header().Get("X-Request-Id") == "" {
			t.Fatalf("%s %s: no request id (HTTP %d)", method, path, rec.Code)
		}
	})
}

// reviewValidMethod reports whether m is a non-empty upper-case token, as net/http accepts.
func reviewValidMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// reviewValidHeader reports whether v is a printable-ASCII header value.
func reviewValidHeader(v string) bool {
	for _, c := range v {
		if c < 0x20 || c == 0x7f || c > 0x7e {
			return false
		}
	}
	return true
}
