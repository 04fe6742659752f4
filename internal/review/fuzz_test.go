package review_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
	e := newEnv(f, "")
	f.Fuzz(func(t *testing.T, method, path, user, accept, body string) {
		if !validMethod(method) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n#") {
			return
		}
		req, err := http.NewRequest(method, "http://gw.test"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		if user != "" && validHeader(user) {
			req.Header.Set("X-Review-User", user)
		}
		if validHeader(accept) {
			req.Header.Set("Accept", accept)
		}
		rec := httptest.NewRecorder()
		e.first.ServeHTTP(rec, req)
		if rec.Code < 100 || rec.Code > 599 {
			t.Fatalf("status %d", rec.Code)
		}
		if rec.Header().Get("X-Request-Id") == "" {
			t.Fatalf("%s %s: no request id (HTTP %d)", method, path, rec.Code)
		}
	})
}

func validMethod(m string) bool {
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

func validHeader(v string) bool {
	for _, c := range v {
		if c < 0x20 || c == 0x7f || c > 0x7e {
			return false
		}
	}
	return true
}
