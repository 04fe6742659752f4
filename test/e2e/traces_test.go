package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/testutil/otelcol"
)

// tracedUpstream is an MCP server that records the traceparent of every tools/call it receives.
type tracedUpstream struct {
	*httptest.Server
	mu           sync.Mutex
	traceparents []string
}

func startTracedUpstream(t *testing.T) *tracedUpstream {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "traces-e2e-upstream", Version: "1.0.0"}, nil)
	type echoArgs struct {
		Text string `json:"text"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echo the text back."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "echo: " + in.Text}}}, nil, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true})
	u := &tracedUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if bytes.Contains(body, []byte(`"tools/call"`)) {
			u.mu.Lock()
			u.traceparents = append(u.traceparents, r.Header.Get("Traceparent"))
			u.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestTraces runs `mcpgate serve` exporting to a real OpenTelemetry Collector, once over OTLP/HTTP
// and once over OTLP/gRPC, and follows one tools/call from a client that sent a traceparent:
// its spans arrive linked (client → request → policies, upstream call), the upstream receives
// the upstream call's span as its parent, the log line and a problem body carry the trace id,
// and no credential reaches the collector.
func TestTraces(t *testing.T) {
	col := otelcol.Start(t)
	for _, tc := range []struct{ name, protocol, endpoint string }{
		{"http", "http/protobuf", col.HTTP},
		{"grpc", "grpc", col.GRPC},
	} {
		t.Run(tc.name, func(t *testing.T) { testTraces(t, col, tc.protocol, tc.endpoint) })
	}
}

func testTraces(t *testing.T, col *otelcol.Collector, protocol, endpoint string) {
	up := startTracedUpstream(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	key := strings.TrimSpace(mcpgateCLI(t, dataDir, "keys", "create", "--consumer", "traces-bot"))
	upstreamSecret := "upstream-secret-" + randomHex(8)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "project")
	writeFiles(t, cfg, map[string]any{
		"zuplo.jsonc": map[string]any{"version": 1, "compatibilityDate": "2026-03-01"},
		"config/routes.oas.json": map[string]any{"openapi": "3.1.0", "info": map[string]any{"title": "traces e2e", "version": "1"},
			"paths": map[string]any{"/mcp/echo": map[string]any{"get,post": map[string]any{
				"operationId": "echo",
				"x-zuplo-route": map[string]any{
					"corsPolicy": "none",
					"handler": map[string]any{"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpProxyHandler",
						"options": map[string]any{"rewritePattern": up.URL}},
					"policies": map[string]any{"inbound": []string{"api-key", "upstream-key"}},
				},
			}}}},
		"config/policies.json": map[string]any{"policies": []map[string]any{{
			"name": "api-key", "policyType": "api-key-inbound",
			"handler": map[string]any{"module": "$import(@zuplo/runtime)", "export": "ApiKeyInboundPolicy"},
		}, {
			"name": "upstream-key", "policyType": "set-headers-inbound",
			"handler": map[string]any{"module": "$import(@zuplo/runtime)", "export": "SetHeadersInboundPolicy",
				"options": map[string]any{"headers": []map[string]any{{"name": "X-Upstream-Key", "value": upstreamSecret}}}},
		}}},
	})
	gw, _ := serveGateway(t, []string{"serve", "--config", cfg, "--data-dir", dataDir, "--listen", "127.0.0.1:0"},
		"OTEL_EXPORTER_OTLP_ENDPOINT="+endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL="+protocol,
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=", "OTEL_TRACES_EXPORTER=", "OTEL_SDK_DISABLED=",
		"OTEL_BSP_SCHEDULE_DELAY=100", // export every 100 ms rather than 5 s
		"OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=e2e")

	traceID, clientSpan := randomHex(16), randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "traces-e2e-client", Version: "1.0.0"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: gw.URL("/mcp/echo"), HTTPClient: &http.Client{
		Transport: headersTransport{"Authorization": "Bearer " + key, "Traceparent": "00-" + traceID + "-" + clientSpan + "-01"}}}, nil)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}})
	if err != nil || res.IsError {
		t.Fatalf("tools/call: %v %+v", err, res)
	}
	_ = session.Close()

	// The request span of the tools/call, its two policy spans and the upstream call.
	var request, upstream otelcol.Span
	policies := map[string]otelcol.Span{}
	col.WaitSpans(t, 30*time.Second, func(spans []otelcol.Span) bool {
		for _, s := range spans {
			if s.TraceID == traceID && s.Kind == 2 && s.Attributes["mcp.method"] == "tools/call" {
				request = s
			}
		}
		if request.SpanID == "" {
			return false
		}
		clear(policies)
		upstream = otelcol.Span{}
		for _, s := range spans {
			if s.TraceID != traceID || s.ParentSpanID != request.SpanID {
				continue
			}
			if strings.HasPrefix(s.Name, "policy ") {
				policies[s.Name] = s
			} else if s.Name == "upstream tools/call" {
				upstream = s
			}
		}
		return len(policies) == 2 && upstream.SpanID != ""
	})

	if request.ParentSpanID != clientSpan {
		t.Errorf("request span's parent = %q, want the client's span %q", request.ParentSpanID, clientSpan)
	}
	for k, want := range map[string]string{"http.route": "/mcp/echo", "mcpgate.operation_id": "echo", "http.response.status_code": "200", "mcp.tool": "echo", "http.request.method": "POST"} {
		if got := request.Attributes[k]; got != want {
			t.Errorf("request span %s = %q, want %q", k, got, want)
		}
	}
	if request.Name != "POST /mcp/echo" {
		t.Errorf("request span name %q, want \"POST /mcp/echo\"", request.Name)
	}
	if request.Resource["service.name"] != "mcpgate" || request.Resource["deployment.environment.name"] != "e2e" {
		t.Errorf("resource = %v, want service.name mcpgate and OTEL_RESOURCE_ATTRIBUTES' deployment.environment.name", request.Resource)
	}
	for _, name := range []string{"policy api-key", "policy upstream-key"} {
		if _, ok := policies[name]; !ok {
			t.Errorf("no span %q under the request span; have %v", name, policies)
		}
	}
	if p := policies["policy api-key"]; p.Attributes["mcpgate.policy.export"] != "ApiKeyInboundPolicy" {
		t.Errorf("policy span attributes %v", p.Attributes)
	}
	if upstream.Kind != 3 || upstream.Attributes["mcp.method"] != "tools/call" || upstream.Attributes["mcp.tool"] != "echo" || upstream.Attributes["http.response.status_code"] != "200" {
		t.Errorf("upstream span: kind %d attributes %v", upstream.Kind, upstream.Attributes)
	}

	up.mu.Lock()
	got := append([]string(nil), up.traceparents...)
	up.mu.Unlock()
	if want := "00-" + traceID + "-" + upstream.SpanID + "-01"; len(got) != 1 || got[0] != want {
		t.Errorf("upstream received traceparent %q, want [%s] (the upstream call's span)", got, want)
	}

	// The request's log line carries the trace id beside the request id.
	if !logLineWith(gw.Logs(), request.Attributes["mcpgate.request_id"], traceID) {
		t.Errorf("no log line with requestId %s and traceId %s:\n%s", request.Attributes["mcpgate.request_id"], traceID, gw.Logs())
	}

	// A refused request: the problem body names its trace.
	refusedTrace := randomHex(16)
	status, _, doc := rawPost(t, gw.URL("/mcp/echo"), "Traceparent", "00-"+refusedTrace+"-"+randomHex(8)+"-01")
	tr, _ := doc["trace"].(map[string]any)
	if status != http.StatusUnauthorized || tr["traceId"] != refusedTrace || tr["requestId"] == "" {
		t.Errorf("refused request: status %d trace %v, want 401 with traceId %s", status, doc["trace"], refusedTrace)
	}
	var refusal otelcol.Span
	col.WaitSpans(t, 30*time.Second, func(spans []otelcol.Span) bool {
		for _, s := range spans {
			if s.TraceID == refusedTrace && s.Name == "policy api-key" {
				refusal = s
			}
		}
		return refusal.SpanID != ""
	})
	// A refusal is the policy doing its job: its status and reason, not an error.
	if refusal.StatusCode == 2 || refusal.Attributes["http.response.status_code"] != "401" || refusal.Attributes["mcpgate.reason_code"] != "missing_token" {
		t.Errorf("refusing policy's span: status %d attributes %v, want 401 missing_token and no error", refusal.StatusCode, refusal.Attributes)
	}

	// No credential reaches the collector.
	raw := col.Raw()
	for name, secret := range map[string]string{"the API key": key, "the upstream key": upstreamSecret, "a header attribute": "http.request.header"} {
		if strings.Contains(raw, secret) {
			t.Errorf("%s reached the collector", name)
		}
	}
}

// headersTransport adds headers to every request.
type headersTransport map[string]string

func (h headersTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// logLineWith reports whether a JSON log line has both requestId and traceId.
func logLineWith(logs, requestID, traceID string) bool {
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			RequestID string `json:"requestId"`
			TraceID   string `json:"traceId"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && requestID != "" && line.RequestID == requestID && line.TraceID == traceID {
			return true
		}
	}
	return false
}
