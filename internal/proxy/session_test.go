package proxy

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/mcpwire"
	"github.com/mcpgate/mcpgate/internal/policy"
)

// userFromHeader is a test-only inbound policy: the caller is whoever X-Test-User names.
type userFromHeader struct{}

func (userFromHeader) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	if u := r.Header.Get("X-Test-User"); u != "" {
		c.User = &policy.User{Sub: u, Namespace: "apikey"}
	}
	return nil, nil
}

// asUser sets X-Test-User on every request of a client.
type asUser struct{ user string }

func (a asUser) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Test-User", a.user)
	return http.DefaultTransport.RoundTrip(r)
}

// On an authenticated MCP route without a token exchange (a static upstream key, or none), every
// caller reaches the upstream with the same credential, so the upstream cannot tell whose session
// an id is. The handler binds the upstream's session ids to the caller: alice's SDK client works
// through a stateful Go SDK upstream with the wrapped id; bob presenting alice's wrapped id, or the
// upstream's own id inside it, gets 404 session_not_found and nothing reaches the upstream; the
// upstream only ever sees its own ids.
func TestSessionIDsBoundToCallerWithoutTokenExchange(t *testing.T) {
	up := newUpstream(t, sseStateful)
	gw := newGateway(t, mcpProxy(up.URL, Settings{SessionKey: []byte("0123456789abcdef0123456789abcdef")}), up.URL, []policy.Inbound{userFromHeader{}})

	var (
		mu     sync.Mutex
		issued []string
	)
	client := mcp.NewClient(&mcp.Implementation{Name: "alice-client", Version: "v1"}, nil)
	tr := &mcp.StreamableClientTransport{Endpoint: gw.url(), MaxRetries: -1,
		HTTPClient: &http.Client{Transport: recordSessions{asUser{"alice"}, &mu, &issued}}}
	cs, err := client.Connect(t.Context(), tr, nil)
	if err != nil {
		t.Fatalf("alice connects: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "in session"}})
	if err != nil || len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "in session" {
		t.Fatalf("alice's tools/call in her session: %v %v", res, err)
	}
	mu.Lock()
	n := len(issued)
	mu.Unlock()
	if n == 0 {
		t.Fatal("the gateway issued no session id (the test needs a stateful upstream)")
	}
	mu.Lock()
	sid := issued[0]
	mu.Unlock()
	if !strings.HasPrefix(sid, mcpwire.SessionPrefix) {
		t.Fatalf("alice got session id %q, want the gateway's wrapped id", sid)
	}
	_, inner, err := mcpwire.UnwrapSession([]byte("0123456789abcdef0123456789abcdef"), "apikey|alice", sid)
	if err != nil || inner == "" || strings.HasPrefix(inner, mcpwire.SessionPrefix) {
		t.Fatalf("the wrapped id does not carry the upstream's own: %q %v", inner, err)
	}
	for _, rq := range up.requests() {
		if got := rq.Header.Get(mcpwire.SessionHeader); strings.HasPrefix(got, mcpwire.SessionPrefix) {
			t.Errorf("the upstream received the gateway's session id %q", got)
		}
	}

	before := len(up.requests())
	for _, tc := range []struct{ who, id string }{
		{"bob", sid},   // alice's wrapped id
		{"bob", inner}, // the upstream's own id, readable inside it
		{"alice", inner},
		{"", "mcpgate1.forged.AAAA"},
	} {
		h := http.Header{mcpwire.SessionHeader: {tc.id}, "Mcp-Protocol-Version": {"2025-11-25"}}
		if tc.who != "" {
			h.Set("X-Test-User", tc.who)
		}
		resp := post(t, t.Context(), gw.url(), toolsCallBody("echo"), h)
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if tc.who == "" {
			// Anonymous callers have nobody to bind to: their ids pass through (the upstream answers).
			if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "session_not_found") {
				t.Errorf("anonymous caller: want the upstream's own 404, got %d %s", resp.StatusCode, body)
			}
			continue
		}
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "session_not_found") {
			t.Errorf("%s with %q: want 404 session_not_found, got %d %s", tc.who, tc.id, resp.StatusCode, body)
		}
	}
	if got := len(up.requests()) - before; got != 1 { // only the anonymous one
		t.Errorf("%d refused requests reached the upstream, want only the anonymous one", got-1)
	}
	// alice keeps working.
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "again"}}); err != nil {
		t.Fatalf("alice after bob's attempts: %v", err)
	}
}

// recordSessions records every Mcp-Session-Id the gateway answers with.
type recordSessions struct {
	next http.RoundTripper
	mu   *sync.Mutex
	ids  *[]string
}

func (rs recordSessions) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := rs.next.RoundTrip(r)
	if err == nil {
		if id := resp.Header.Get(mcpwire.SessionHeader); id != "" {
			rs.mu.Lock()
			*rs.ids = append(*rs.ids, id)
			rs.mu.Unlock()
		}
	}
	return resp, err
}
