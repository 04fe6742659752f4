package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testutil/nodeenv"
)

// tsClientTimeout bounds one run of node/ts-client.mjs (about 3 s: the progress tool takes 2 s).
const tsClientTimeout = 60 * time.Second

// tsReport is what node/ts-client.mjs prints.
type tsReport struct {
	ServerInfo struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"serverInfo"`
	ProtocolVersion string         `json:"protocolVersion"`
	SessionID       string         `json:"sessionId"`
	Tools           []string       `json:"tools"`
	Echo            []string       `json:"echo"`
	Sum             []string       `json:"sum"`
	Structured      map[string]any `json:"structured"`
	Long            struct {
		Text       []string `json:"text"`
		ResultAtMs float64  `json:"resultAtMs"`
		Progress   []struct {
			Progress float64 `json:"progress"`
			Total    float64 `json:"total"`
			AtMs     float64 `json:"atMs"`
		} `json:"progress"`
	} `json:"long"`
	TerminateError string `json:"terminateError"`
	Error          string `json:"error"`
}

// TestTypeScriptClient drives server-everything with the TypeScript SDK's Streamable HTTP client,
// directly (to prove the harness) and through the gateway, and asserts on the real results.
func TestTypeScriptClient(t *testing.T) {
	env := nodeenv.Get(t)
	upstream := env.StartEverything(t)

	t.Run("direct", func(t *testing.T) {
		checkTSClient(t, env, upstream.URL)
	})
	t.Run("through gateway", func(t *testing.T) {
		gw := startGateway(t, gatewayOptions{}, mcpRoute{Path: "/mcp/everything", OperationID: "everything", Upstream: upstream.URL})
		checkTSClient(t, env, gw.URL("/mcp/everything"))
	})
}

func checkTSClient(t *testing.T, env *nodeenv.Env, url string) {
	t.Helper()
	// A message the upstream cannot have cached: non-ASCII, quotes, and a random part.
	msg := `héllo "gateway" ✓ ` + rand.Text()
	ctx, cancel := context.WithTimeout(context.Background(), tsClientTimeout)
	defer cancel()
	stdout, stderr, runErr := env.Run(ctx, nil, "ts-client.mjs", url, msg)
	var r tsReport
	if err := json.Unmarshal(stdout, &r); err != nil {
		t.Fatalf("ts-client.mjs: %v; decoding its report %q: %v\nstderr:\n%s", runErr, stdout, err, stderr)
	}
	if runErr != nil || r.Error != "" {
		t.Fatalf("ts-client.mjs: %v: %s\nstderr:\n%s", runErr, r.Error, stderr)
	}

	if r.ServerInfo.Name != "mcp-servers/everything" {
		t.Errorf("initialize: serverInfo.name = %q, want mcp-servers/everything", r.ServerInfo.Name)
	}
	if r.ProtocolVersion == "" {
		t.Errorf("initialize: no protocol version negotiated")
	}
	// server-everything is stateful: without its Mcp-Session-Id coming back, every later call fails.
	if r.SessionID == "" {
		t.Errorf("initialize: no Mcp-Session-Id reached the client")
	}
	for _, want := range []string{"echo", "get-sum", "get-structured-content", "trigger-long-running-operation"} {
		if !slices.Contains(r.Tools, want) {
			t.Errorf("tools/list: %q missing from %q", want, r.Tools)
		}
	}
	if want := []string{"Echo: " + msg}; !slices.Equal(r.Echo, want) {
		t.Errorf("tools/call echo = %q, want %q", r.Echo, want)
	}
	if len(r.Sum) != 1 || !strings.Contains(r.Sum[0], "is 5") {
		t.Errorf("tools/call get-sum(2, 3) = %q, want a text saying the sum is 5", r.Sum)
	}
	if _, ok := r.Structured["temperature"]; !ok {
		t.Errorf("tools/call get-structured-content: structuredContent %v has no temperature", r.Structured)
	}

	// The long-running tool takes 2 s in 4 steps and reports progress after each step.
	long := r.Long
	if len(long.Text) != 1 || !strings.Contains(long.Text[0], "completed") {
		t.Errorf("tools/call trigger-long-running-operation = %q, want a completion text", long.Text)
	}
	if len(long.Progress) != 4 {
		t.Fatalf("progress notifications: got %d, want 4: %+v", len(long.Progress), long.Progress)
	}
	for i, p := range long.Progress {
		if p.Progress != float64(i+1) || p.Total != 4 {
			t.Errorf("progress notification %d = %v/%v, want %d/4", i, p.Progress, p.Total, i+1)
		}
	}
	// Streaming, not buffering: the first progress event (sent after 0.5 s) must reach the client
	// well before the result (sent after 2 s). A proxy that buffered the SSE response would deliver
	// them together.
	first := long.Progress[0].AtMs
	if gap := long.ResultAtMs - first; gap < 750 {
		t.Errorf("first progress at %.0f ms, result at %.0f ms: only %.0f ms apart, want ≥ 750 ms (was the stream buffered?)",
			first, long.ResultAtMs, gap)
	}
	t.Logf("first progress after %.0f ms, result after %.0f ms", first, long.ResultAtMs)
	if r.TerminateError != "" {
		// DELETE is not part of the route ("get,post"); the SDK accepts a 405 but reports others.
		t.Logf("session termination (DELETE): %s", r.TerminateError)
	}
}
