package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testutil/nodeenv"
)

// resumeTimeout is how long the client waits for the resumed result (direct: about 250 ms).
const resumeTimeout = 4 * time.Second

type resumeReport struct {
	OK    bool   `json:"ok"`
	MS    int    `json:"ms"`
	Text  string `json:"text"`
	Error string `json:"error"`
}

// TestStreamResumption calls a tool whose server closes the response's SSE stream before answering
// (SEP-1699 polling, 2025-11-25): the client gets the result only by resuming the stream with a GET
// carrying Last-Event-ID. Direct and through the gateway (which forwards such GETs through the
// route's policy chain: docs/architecture.md#stream-resumption) the result must arrive.
func TestStreamResumption(t *testing.T) {
	env := nodeenv.Get(t)
	upstream := env.StartConformanceServer(t)

	t.Run("direct", func(t *testing.T) {
		r := runResumeClient(t, env, upstream.URL)
		if !r.OK || !strings.Contains(r.Text, "completed") {
			t.Fatalf("direct: resumed call failed after %d ms: %s", r.MS, r.Error)
		}
		t.Logf("direct: result after %d ms, via a GET with Last-Event-ID", r.MS)
	})
	t.Run("through gateway", func(t *testing.T) {
		gw := startGateway(t, gatewayOptions{}, mcpRoute{Path: "/mcp/upstream", OperationID: "upstream", Upstream: upstream.URL})
		r := runResumeClient(t, env, gw.URL("/mcp/upstream"))
		if !r.OK || !strings.Contains(r.Text, "completed") {
			t.Fatalf("through the gateway the resumed call failed (%s after %d ms)\n%s", r.Error, r.MS, gw.Logs())
		}
		// The result came on the resumption: the gateway forwarded a GET and answered it 200.
		if n := countRequests(gw.Logs(), "GET", 200); n == 0 {
			t.Fatalf("the result arrived but the gateway logged no GET 200: the call was not resumed through it\n%s", gw.Logs())
		}
		t.Logf("through the gateway: result after %d ms, via a GET with Last-Event-ID", r.MS)
	})
}

// countRequests counts the gateway's JSON access-log lines {"msg":"request","method":…,"status":…}.
func countRequests(logs, method string, status int) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		var l struct {
			Msg    string `json:"msg"`
			Method string `json:"method"`
			Status int    `json:"status"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "request" && l.Method == method && l.Status == status {
			n++
		}
	}
	return n
}

func runResumeClient(t *testing.T, env *nodeenv.Env, url string) resumeReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), resumeTimeout+30*time.Second)
	defer cancel()
	stdout, stderr, err := env.Run(ctx, nil, "resume-client.mjs", url, strconv.FormatInt(resumeTimeout.Milliseconds(), 10))
	var r resumeReport
	if jerr := json.Unmarshal(stdout, &r); jerr != nil {
		t.Fatalf("resume-client.mjs: %v; decoding %q: %v\nstderr:\n%s", err, stdout, jerr, stderr)
	}
	return r
}
