package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/telemetry"
)

// analyticsRun numbers the analytics tests' routes.
var analyticsRun atomic.Int64

// syncBuffer is a log destination tests read while the gateway writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// events returns the logged lines whose event is name.
func (s *syncBuffer) events(name string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(s.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["event"] == name {
			out = append(out, m)
		}
	}
	return out
}

// waitEvents waits (polling with a deadline) until n events named name were logged: a client
// can read an SSE answer's result before the gateway has finished copying the stream and
// recorded the call.
func (s *syncBuffer) waitEvents(t *testing.T, name string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ev := s.events(name)
		if len(ev) >= n || time.Now().After(deadline) {
			return ev
		}
		<-time.After(time.Millisecond)
	}
}

// analyticsGateway serves h on a route of its own (operationId route), logging JSON at debug.
func analyticsGateway(t *testing.T, route string, h *MCPProxy, upstream *url.URL) (string, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	info := &policy.RouteInfo{Path: "/mcp", Methods: []string{"POST"}, OperationID: route, UpstreamURL: upstream}
	if err := h.Provision(context.Background(), &policy.Env{Name: route, Logger: log, Routes: []*policy.RouteInfo{info}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &policy.Context{RequestID: "req-" + route, Route: info, Log: log, Start: time.Now()}
		if err := h.Handle(c, w, r); err != nil {
			problem.Write(w, problem.From(err), r.URL.Path, c.RequestID)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp", logs
}

func tableRows(route string) map[string]telemetry.CapabilityRow {
	rows := map[string]telemetry.CapabilityRow{}
	for _, r := range telemetry.Default.CapabilityTable() {
		if r.Route == route {
			rows[r.Method+" "+r.Capability] = r
		}
	}
	return rows
}

func outcomeCount(r telemetry.CapabilityRow, outcome string) int64 {
	for i, o := range telemetry.Outcomes {
		if o == outcome {
			return r.Outcomes[i]
		}
	}
	return -1
}

// Per-tool analytics with a Go SDK client through the MCP proxy: every call gets an invoked and a
// completed event with its outcome; the metrics label a tool by name only once the upstream listed
// it through the route, anything else is "other".
func TestCapabilityAnalytics(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts *mcp.StreamableHTTPOptions
	}{{"json", jsonStateless}, {"sse", sseStateful}} {
		t.Run(tc.name, func(t *testing.T) {
			// Telemetry is process-wide: each run gets routes of its own.
			route := fmt.Sprintf("analytics-%s-%d", tc.name, analyticsRun.Add(1))
			up := newUpstream(t, tc.opts)
			gwURL, logs := analyticsGateway(t, route, mcpProxy(up.URL, Settings{}), up.URL)
			client := mcp.NewClient(&mcp.Implementation{Name: "analytics-client", Version: "v1"}, nil)
			cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: gwURL}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()

			// Before any tools/list, a call's tool is "other" in the metrics.
			if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "early"}}); err != nil {
				t.Fatal(err)
			}
			logs.waitEvents(t, EventCapabilityCompleted, 1)
			if _, err := cs.ListTools(t.Context(), nil); err != nil {
				t.Fatal(err)
			}
			// The names are learnt when the list answer has been copied whole, which for an SSE
			// answer can be after the client read its result: wait for it.
			deadline := time.Now().Add(waitTimeout)
			for telemetry.Default.Capabilities(route).Label("tools/call", "echo") != "echo" {
				if time.Now().After(deadline) {
					t.Fatal("the route never learnt the tools its upstream listed")
				}
				<-time.After(time.Millisecond)
			}
			if res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}}); err != nil || res.IsError {
				t.Fatalf("echo: %v %v", res, err)
			}
			// Missing argument: the SDK answers a result with isError.
			if res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{}}); err != nil || !res.IsError {
				t.Fatalf("echo without text: %v %v", res, err)
			}
			// A tool the upstream never listed: a JSON-RPC error, counted as other.
			if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "made_up_tool", Arguments: map[string]any{}}); err == nil {
				t.Fatal("made_up_tool: no error")
			}

			logs.waitEvents(t, EventCapabilityCompleted, 4)
			rows := tableRows(route)
			echo, other := rows["tools/call echo"], rows["tools/call other"]
			if echo.Calls != 2 || outcomeCount(echo, telemetry.OutcomeSuccess) != 1 || outcomeCount(echo, telemetry.OutcomeApplicationError) != 1 {
				t.Errorf("echo row %+v: want 2 calls, 1 success, 1 application_error", echo)
			}
			if other.Calls != 2 || outcomeCount(other, telemetry.OutcomeSuccess) != 1 || outcomeCount(other, telemetry.OutcomeApplicationError) != 1 {
				t.Errorf("other row %+v: want the early echo (success) and made_up_tool (application_error)", other)
			}
			if _, ok := rows["tools/call made_up_tool"]; ok {
				t.Error("a name the upstream never listed became a metric label")
			}

			invoked, completed := logs.events(EventCapabilityInvoked), logs.events(EventCapabilityCompleted)
			if len(invoked) != 4 || len(completed) != 4 {
				t.Fatalf("%d invoked and %d completed events, want 4 each", len(invoked), len(completed))
			}
			// SSE answers end in any order: find made_up_tool's event by name.
			var last map[string]any
			for _, ev := range completed {
				if ev["capabilityName"] == "made_up_tool" {
					last = ev
				}
			}
			if last["capabilityName"] != "made_up_tool" || last["mcpMethod"] != "tools/call" || last["outcome"] != telemetry.OutcomeApplicationError ||
				last["failureOrigin"] != "upstream" || last["operationId"] != route {
				t.Errorf("made_up_tool's completion event: %v", last)
			}
			if code, _ := last["mcpStatus"].(float64); code >= 0 {
				t.Errorf("made_up_tool's mcpStatus %v, want the JSON-RPC error code", last["mcpStatus"])
			}
			for _, k := range []string{"gatewayLatencyMs", "upstreamLatencyMs"} {
				if _, ok := last[k].(float64); !ok {
					t.Errorf("completion event without %s: %v", k, last)
				}
			}
		})
	}
}

// A call whose upstream cannot be reached, and one whose client goes away, end in failure and
// cancelled.
func TestCapabilityAnalyticsFailures(t *testing.T) {
	closed := closedPortURL(t)
	route := fmt.Sprintf("analytics-unreachable-%d", analyticsRun.Add(1))
	gwURL, logs := analyticsGateway(t, route, mcpProxy(closed, Settings{}), closed)
	resp := post(t, t.Context(), gwURL, toolsCallBody("echo"), nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	ev := logs.events(EventCapabilityCompleted)
	if len(ev) != 1 || ev[0]["outcome"] != telemetry.OutcomeFailure || ev[0]["failureOrigin"] != "upstream" || ev[0]["reasonCode"] != ReasonUnreachable {
		t.Errorf("completion events %v, want one failure from the upstream, upstream_unreachable", ev)
	}

	up := newUpstream(t, sseStateless)
	route = fmt.Sprintf("analytics-cancel-%d", analyticsRun.Add(1))
	gwURL, logs = analyticsGateway(t, route, mcpProxy(up.URL, Settings{}), up.URL)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gwURL, strings.NewReader(toolsCallBody("block")))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	// The call is in the upstream's tool (recorded) before the client goes away.
	deadline := time.Now().Add(waitTimeout)
	for len(up.requests()) == 0 && time.Now().Before(deadline) {
		<-time.After(time.Millisecond)
	}
	cancel()
	<-done
	wait(t, up.reqDone, "the upstream request to end")
	deadline = time.Now().Add(waitTimeout)
	for len(logs.events(EventCapabilityCompleted)) == 0 && time.Now().Before(deadline) {
		<-time.After(time.Millisecond)
	}
	ev = logs.events(EventCapabilityCompleted)
	if len(ev) != 1 || ev[0]["outcome"] != telemetry.OutcomeCancelled || ev[0]["failureOrigin"] != "client" {
		t.Errorf("completion events %v, want one cancelled by the client", ev)
	}
}

// The answer watcher finds the answer's shape wherever a read splits it.
func TestAnswerWatchOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		outcome    string
		code       int
	}{
		{"result", `{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`, 200, telemetry.OutcomeSuccess, 0},
		{"isError", `{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}`, 200, telemetry.OutcomeApplicationError, 0},
		{"json-rpc error", `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"unknown tool"}}`, 200, telemetry.OutcomeApplicationError, -32602},
		{"connect required", `{"jsonrpc":"2.0","id":1,"error":{"code":-32042,"message":"connect","data":{}}}`, 200, telemetry.OutcomeConnectRequired, -32042},
		{"sse result", "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}}\n\n", 200, telemetry.OutcomeSuccess, 0},
		{"stream cut", "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n", 200, telemetry.OutcomePartial, 0},
		{"denied", `{}`, 403, telemetry.OutcomeDenied, 0},
		{"upstream 5xx", `oops`, 503, telemetry.OutcomeFailure, 0},
	} {
		for _, chunk := range []int{1, 3, 7, 1 << 10} {
			cl := &call{in: httptest.NewRequest(http.MethodPost, "/", nil)}
			a := &answerWatch{ReadCloser: io.NopCloser(&chunked{s: tc.body, n: chunk}), cl: cl, status: tc.status}
			if _, err := io.Copy(io.Discard, a); err != nil {
				t.Fatal(err)
			}
			outcome, _, code := a.outcome()
			if outcome != tc.outcome || code != tc.code {
				t.Errorf("%s in reads of %d bytes: %s %d, want %s %d", tc.name, chunk, outcome, code, tc.outcome, tc.code)
			}
		}
	}
}

// chunked reads s n bytes at a time.
type chunked struct {
	s string
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	k := min(c.n, len(p), len(c.s))
	copy(p, c.s[:k])
	c.s = c.s[k:]
	return k, nil
}
