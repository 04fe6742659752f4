package connect_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// TestTraceSpans: with a tracer, the connect flow and a call are traced — discovery, the token
// lookup under the token-exchange policy's span under the request span, a reactive refresh — and
// no token appears in any span (docs/architecture.md#traces).
func TestTraceSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })

	up := gatewaytest.NewFakeUpstream(t)
	dir := gatewaytest.FakeUpstreamProject(t, up)
	gw := gatewaytest.New(t, gatewaytest.Options{Dir: dir, Tracer: tp.Tracer("test")})
	e := &gatewaytest.FakeUpstreamEnv{T: t, Up: up, Dir: dir, Gateway: gw, Logs: gw.Logs, Browser: gatewaytest.NewBrowserJar(t)}
	e.Connect("/mcp/alpha", "alice")

	// The upstream refuses the first token once: the gateway refreshes and replays.
	var refused atomic.Bool
	up.SetAnswer(func(w http.ResponseWriter, r *http.Request, token string) bool {
		if token == "at-1" && refused.CompareAndSwap(false, true) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "expired", http.StatusUnauthorized)
			return true
		}
		return false
	})
	resp, body := e.ToolsCall(gw, "/mcp/alpha", "alice", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("tools/call: HTTP %d %s", resp.StatusCode, body)
	}
	if !refused.Load() || up.TokensIssued() < 2 {
		t.Fatalf("no refresh happened (refused %v, tokens issued %d)", refused.Load(), up.TokensIssued())
	}

	spans := rec.Ended()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	attr := func(s sdktrace.ReadOnlySpan, k string) string {
		for _, a := range s.Attributes() {
			if string(a.Key) == k {
				return a.Value.Emit()
			}
		}
		return ""
	}
	var lookups, refreshes, discoveries int
	for _, s := range spans {
		switch s.Name() {
		case "token lookup":
			lookups++
			pol, ok := byID[s.Parent().SpanID()]
			if !ok || pol.Name() != "policy mcp-token-exchange-alpha" || attr(pol, "mcpgate.upstream_id") != "alpha" {
				t.Errorf("token lookup's parent: %v, want the token-exchange policy's span labelled with the upstream", pol)
				continue
			}
			if req, ok := byID[pol.Parent().SpanID()]; !ok || req.SpanKind() != trace.SpanKindServer {
				t.Errorf("the policy span's parent is not the request span")
			}
			if attr(s, "mcpgate.upstream_id") != "alpha" {
				t.Errorf("token lookup attributes %v", s.Attributes())
			}
		case "token refresh":
			refreshes++
			if attr(s, "mcpgate.upstream_id") != "alpha" || s.SpanContext().TraceID() != s.Parent().TraceID() {
				t.Errorf("token refresh: attributes %v, parent %v", s.Attributes(), s.Parent())
			}
		case "upstream discovery":
			discoveries++
			if attr(s, "mcpgate.upstream_id") != "alpha" || !s.Parent().IsValid() {
				t.Errorf("upstream discovery: attributes %v, parent %v", s.Attributes(), s.Parent())
			}
		}
		// No token, refresh token or Authorization value in a span.
		texts := []string{s.Name(), s.Status().Description}
		for _, a := range s.Attributes() {
			texts = append(texts, string(a.Key), a.Value.Emit())
		}
		for _, x := range texts {
			if strings.Contains(x, "at-") || strings.Contains(x, "rt-") || strings.Contains(strings.ToLower(x), "authorization") {
				t.Errorf("span %q carries %q", s.Name(), x)
			}
		}
	}
	if lookups < 2 || refreshes < 1 || discoveries < 1 {
		names := make([]string, len(spans))
		for i, s := range spans {
			names[i] = s.Name()
		}
		t.Fatalf("lookups %d, refreshes %d, discoveries %d; spans: %v", lookups, refreshes, discoveries, names)
	}
}
