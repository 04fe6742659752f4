package proxy

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/mcpwire"
	"github.com/mcpgate/mcpgate/internal/policy"
)

// resumable is a stateful upstream with an event store: its "poll" tool closes the call's SSE
// stream before answering (SEP-1699), so the result arrives only on the client's resumption.
func resumable() *mcp.StreamableHTTPOptions {
	return &mcp.StreamableHTTPOptions{EventStore: mcp.NewMemoryEventStore(nil)}
}

// pollThrough calls the upstream's "poll" tool with a Go SDK client through url and returns the
// result's text.
func pollThrough(t *testing.T, url string, rt http.RoundTripper) (string, error) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "resume-client", Version: "v1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: rt}}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "poll", Arguments: map[string]any{"text": "x"}})
	if err != nil {
		return "", err
	}
	if len(res.Content) != 1 {
		t.Fatalf("poll answered %d contents", len(res.Content))
	}
	return res.Content[0].(*mcp.TextContent).Text, nil
}

// A server that ends a call's SSE stream early expects the client to resume it with GET and
// Last-Event-ID. Through the gateway the resumption is forwarded (same chain as the POST) and
// streamed, and the result arrives; a bare GET still answers 405 (TestGETAnswers405).
func TestStreamResumption(t *testing.T) {
	t.Run("anonymous route", func(t *testing.T) {
		up := newUpstream(t, resumable())
		gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, nil)
		text, err := pollThrough(t, gw.url(), http.DefaultTransport)
		if err != nil || text != "completed after resumption" {
			t.Fatalf("poll through the gateway: %q, %v", text, err)
		}
		if n := countResumptions(up); n == 0 {
			t.Fatal("the result arrived but no resumption reached the upstream: the test did not test resumption")
		}
	})

	t.Run("session bound to the caller", func(t *testing.T) {
		key := []byte("0123456789abcdef0123456789abcdef")
		up := newUpstream(t, resumable())
		gw := newGateway(t, mcpProxy(up.URL, Settings{SessionKey: key}), up.URL, []policy.Inbound{userFromHeader{}})
		var (
			mu     sync.Mutex
			issued []string
		)
		text, err := pollThrough(t, gw.url(), recordSessions{asUser{"alice"}, &mu, &issued})
		if err != nil || text != "completed after resumption" {
			t.Fatalf("alice's poll through the gateway: %q, %v", text, err)
		}
		resumes := upstreamResumptions(up)
		if len(resumes) == 0 {
			t.Fatal("no resumption reached the upstream")
		}
		for _, rq := range resumes {
			if sid := rq.Header.Get(mcpwire.SessionHeader); sid == "" || strings.HasPrefix(sid, mcpwire.SessionPrefix) {
				t.Errorf("the upstream's resumption carried session id %q, want its own (unwrapped)", sid)
			}
		}
		mu.Lock()
		aliceSID := issued[0]
		mu.Unlock()
		before := len(up.requests())

		resume := func(user, sid string) *http.Response {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, gw.url(), nil)
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Last-Event-ID", resumes[0].Header.Get("Last-Event-ID"))
			req.Header.Set("X-Test-User", user)
			if sid != "" {
				req.Header.Set(mcpwire.SessionHeader, sid)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		// bob replays alice's session id and event id: refused before the upstream.
		if b := problemOf(t, resume("bob", aliceSID)); b.Status != http.StatusNotFound || b.Reason != "session_not_found" {
			t.Errorf("bob resuming alice's stream: %d %q, want 404 session_not_found", b.Status, b.Reason)
		}
		// No session id: nothing binds the event id to a caller.
		if b := problemOf(t, resume("bob", "")); b.Status != http.StatusBadRequest || b.Reason != ReasonResumeWithoutSession {
			t.Errorf("resumption without a session id: %d %q, want 400 %s", b.Status, b.Reason, ReasonResumeWithoutSession)
		}
		if n := len(up.requests()); n != before {
			t.Errorf("the refused resumptions reached the upstream (%d requests, %d before)", n, before)
		}
	})
}

func upstreamResumptions(up *upstreamServer) []recorded {
	var out []recorded
	for _, rq := range up.requests() {
		if rq.Method == http.MethodGet && rq.Header.Get("Last-Event-ID") != "" {
			out = append(out, rq)
		}
	}
	return out
}

func countResumptions(up *upstreamServer) int { return len(upstreamResumptions(up)) }
