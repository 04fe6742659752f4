package upstream

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// cannedDoer answers every request with status and body (fuzzing the documents an untrusted
// upstream or authorization server serves).
type cannedDoer struct {
	status int
	body   []byte
}

func (d cannedDoer) Do(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: d.status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(d.body)), Request: req}, nil
}

// FuzzProtectedResourceMetadata: any document a protected resource serves is either accepted with
// a resource and at least one authorization server, or refused with a named failure — never a
// panic, never an accepted document without those.
func FuzzProtectedResourceMetadata(f *testing.F) {
	f.Add([]byte(`{"resource":"https://mcp.example.com/mcp","authorization_servers":["https://auth.example.com"]}`))
	f.Add([]byte(`{"resource":"https://mcp.example.com/","authorization_servers":[]}`))
	f.Add([]byte(`{"resource":"https://evil.example/mcp","authorization_servers":["https://auth.example.com"]}`))
	f.Add([]byte(`{"resource":1}`))
	f.Add([]byte(`[]`))
	f.Add([]byte("{\"resource\":\"https://mcp.example.com/mcp\",\"authorization_servers\":[\" \",\"javascript:alert(1)\"]}"))
	up := Upstream{ID: "u", URL: "https://mcp.example.com/mcp"}
	e := New(Options{})
	f.Fuzz(func(t *testing.T, body []byte) {
		prm, res, fail := e.fetchPRM(context.Background(), cannedDoer{status: 200, body: body}, up, "https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
		if fail.code != "" {
			if fail.reason == "" || fail.bucket == "" {
				t.Fatalf("failure without a reason or bucket: %+v", fail)
			}
			return
		}
		if prm.Resource == "" || res == "" || len(prm.AuthorizationServers) == 0 {
			t.Fatalf("accepted an unusable document: %+v %q", prm, res)
		}
		for _, s := range prm.AuthorizationServers {
			if strings.TrimSpace(s) == "" {
				t.Fatalf("accepted an empty authorization server: %+v", prm)
			}
		}
	})
}

// FuzzAuthServerMetadata: an authorization server's metadata is accepted only when it names the
// expected issuer and usable endpoints.
func FuzzAuthServerMetadata(f *testing.F) {
	f.Add([]byte(`{"issuer":"https://auth.example.com","authorization_endpoint":"https://auth.example.com/authorize","token_endpoint":"https://auth.example.com/token","code_challenge_methods_supported":["S256"]}`))
	f.Add([]byte(`{"issuer":"https://other.example","authorization_endpoint":"https://auth.example.com/authorize","token_endpoint":"https://auth.example.com/token"}`))
	f.Add([]byte(`{"issuer":"https://auth.example.com","authorization_endpoint":"javascript:alert(1)","token_endpoint":"https://auth.example.com/token"}`))
	f.Add([]byte(`{"issuer":"https://auth.example.com"}`))
	f.Add([]byte(`null`))
	const issuer = "https://auth.example.com"
	f.Fuzz(func(t *testing.T, body []byte) {
		as, fail := fetchAS(context.Background(), cannedDoer{status: 200, body: body}, issuer, issuer+"/.well-known/oauth-authorization-server")
		if fail.code != "" {
			if fail.reason == "" {
				t.Fatalf("failure without a reason: %+v", fail)
			}
			return
		}
		if as.Issuer != issuer || checkEndpoint(as.AuthorizationEndpoint) != nil || checkEndpoint(as.TokenEndpoint) != nil {
			t.Fatalf("accepted unusable metadata: %+v", as)
		}
	})
}
