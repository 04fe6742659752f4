package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// TestTraceRequestSpans: the request span joins the client's trace, the upstream call is its
// child and the upstream gets that span as its parent; a problem body names the trace;
// probes are not traced (docs/architecture.md#traces).
func TestTraceRequestSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	up := gatewaytest.NewFakeUpstream(t)
	gw := gatewaytest.New(t, gatewaytest.Options{Dir: gatewaytest.FakeUpstreamProject(t, up), Tracer: tp.Tracer("test")})
	e := &gatewaytest.FakeUpstreamEnv{T: t, Up: up, Gateway: gw, Logs: gw.Logs}

	resp, err := http.Get(gw.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("/readyz: %d spans, want none", n)
	}

	// The public route has no policy; the fake upstream answers it 401, which is what it
	// answers without a token: the span shape is the point here.
	const client = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	e.ToolsCall(gw, "/mcp/public", "", map[string]string{"Traceparent": client})
	spans := rec.Ended()
	var request, upstream sdktrace.ReadOnlySpan
	for _, s := range spans {
		switch s.SpanKind() {
		case trace.SpanKindServer:
			request = s
		case trace.SpanKindClient:
			upstream = s
		}
	}
	if request == nil || upstream == nil {
		t.Fatalf("spans %v: want a server and a client span", spans)
	}
	if got := request.Parent().SpanID().String(); got != "b7ad6b7169203331" || request.SpanContext().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("request span's parent %s in trace %s, want the client's", got, request.SpanContext().TraceID())
	}
	if request.Name() != "POST /mcp/public" || upstream.Name() != "upstream tools/call" || upstream.Parent().SpanID() != request.SpanContext().SpanID() {
		t.Errorf("request %q, upstream %q (parent %s)", request.Name(), upstream.Name(), upstream.Parent().SpanID())
	}
	want := "00-0af7651916cd43dd8448eb211c80319c-" + upstream.SpanContext().SpanID().String() + "-01"
	if got := up.LastHeaders().Get("Traceparent"); got != want {
		t.Errorf("upstream got traceparent %q, want %q", got, want)
	}

	// A call the route's policies fail: the problem body names the trace.
	resp2, body := e.ToolsCall(gw, "/mcp/alpha", "", map[string]string{"Traceparent": "00-11111111111111111111111111111111-2222222222222222-01"})
	var doc struct {
		Trace struct {
			TraceID string `json:"traceId"`
		} `json:"trace"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || resp2.StatusCode < 400 || doc.Trace.TraceID != "11111111111111111111111111111111" {
		t.Fatalf("refused call: HTTP %d %s, want a problem body with the trace id", resp2.StatusCode, body)
	}
	// Without a user the token exchange fails the request (500): its span says so.
	var failed sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "policy mcp-token-exchange-alpha" && s.SpanContext().TraceID().String() == "11111111111111111111111111111111" {
			failed = s
		}
	}
	if failed == nil || failed.Status().Code != codes.Error {
		t.Errorf("token exchange's span: %v, want an error status", failed)
	}
	if !strings.Contains(gw.Logs.String(), "traceId=11111111111111111111111111111111") {
		t.Errorf("no log line with the trace id:\n%s", gw.Logs.String())
	}
}
