package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy"
)

// headerAuth authenticates X-User, answers 401 itself for X-User: refuse, and passes others on.
type headerAuth struct{}

func (headerAuth) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	switch u := r.Header.Get("X-User"); u {
	case "":
		return nil, nil
	case "refuse":
		return &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{"Www-Authenticate": {`Bearer realm="t"`}},
			Body: io.NopCloser(strings.NewReader("no"))}, nil
	default:
		c.User = &policy.User{Sub: u, Namespace: "hdr"}
		return nil, nil
	}
}

// mustNotRun fails the request if it runs: policies after the authenticating one are skipped.
type mustNotRun struct{ ran *bool }

func (m mustNotRun) HandleRequest(*policy.Context, *http.Request) (*http.Response, error) {
	*m.ran = true
	return nil, nil
}

func TestAuthenticateRunsTheRoutesInboundPoliciesUntilAUser(t *testing.T) {
	var ran bool
	host := &policy.Host{}
	srv := newTestServer(t, []*config.Route{mcpRoute("/other", "trace"), mcpRoute("/mcp/up", "trace", "auth", "after")},
		map[string]*config.Policy{"trace": pol("trace", &tracer{name: "t"}), "auth": pol("auth", headerAuth{}), "after": pol("after", mustNotRun{&ran})},
		Settings{Host: host})
	if host.Authenticate == nil {
		t.Fatal("New did not fill Host.Authenticate")
	}
	var got *policy.User
	srv.Handle("DELETE /__mcpgate/connections/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := host.Authenticate(w, r, map[string]bool{"mcp-up": true})
		if ok {
			got = u
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	do := func(user string) *http.Response {
		req := httptest.NewRequest("DELETE", "/__mcpgate/connections/up", nil)
		if user != "" {
			req.Header.Set("X-User", user)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Result()
	}

	if resp := do("alice"); resp.StatusCode != http.StatusNoContent || got.Subject() != "hdr|alice" || ran {
		t.Fatalf("alice: %d, user %v, later policy ran %v", resp.StatusCode, got, ran)
	}
	if resp := do("refuse"); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("the policy's own refusal: %d %v", resp.StatusCode, resp.Header)
	}
	got = nil
	resp := do("")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || got != nil || !strings.Contains(string(body), "unauthenticated") || !ran {
		t.Fatalf("nobody: %d %s (later policy ran: %v)", resp.StatusCode, body, ran)
	}
}
