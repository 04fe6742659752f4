package bench_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/bench/upstream"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// toolsListCall is the tools/list request the capability-filter benchmark sends.
const toolsListCall = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`

// toolsList100 is an upstream's answer to tools/list with 100 tools (tool_000 … tool_099, each
// with a description and a small input schema), as JSON or as one SSE event.
func toolsList100(tb testing.TB, sse bool) []byte {
	tb.Helper()
	tools := make([]map[string]any, 100)
	for i := range tools {
		tools[i] = map[string]any{
			"name":        fmt.Sprintf("tool_%03d", i),
			"description": fmt.Sprintf("Tool number %d of the benchmark upstream: it takes a query and a limit and answers with text.", i),
			"inputSchema": map[string]any{"type": "object", "properties": map[string]any{
				"query": map[string]any{"type": "string", "description": "what to look for"},
				"limit": map[string]any{"type": "integer", "minimum": 1, "maximum": 100},
			}, "required": []string{"query"}},
		}
	}
	b, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "result": map[string]any{"tools": tools}})
	if err != nil {
		tb.Fatal(err)
	}
	if sse {
		return []byte("event: message\ndata: " + string(b) + "\n\n")
	}
	return b
}

// capFilterOptions list 50 of the 100 tools (the even ones), 5 of them with a projected
// description: the options of internal/policy/capfilter's own BenchmarkToolsList100.
func capFilterOptions() map[string]any {
	var tools []any
	for i := 0; i < 100; i += 2 {
		if i%20 == 0 {
			tools = append(tools, map[string]any{"name": fmt.Sprintf("tool_%03d", i), "description": fmt.Sprintf("curated %d", i)})
		} else {
			tools = append(tools, fmt.Sprintf("tool_%03d", i))
		}
	}
	return map[string]any{"tools": tools}
}

// capFilterGateway is the benchmark project's one route, POST /mcp, with the capability filter as
// its only inbound policy when filtered and with no policy otherwise, over the in-memory upstream
// rt, built as serve builds it, logging at warn.
func capFilterGateway(tb testing.TB, filtered bool, rt http.RoundTripper) *gatewaytest.Gateway {
	tb.Helper()
	p := upstream.GatewayProject{Upstream: "http://127.0.0.1:9/mcp"}
	if filtered {
		p.Inbound = []string{"filter-tools"}
		p.Policies = []upstream.Policy{{
			Name: "filter-tools", Type: "mcp-capability-filter-inbound",
			Handler: upstream.PolicyHandler{Module: "$import(@zuplo/runtime/mcp-gateway)", Export: "McpCapabilityFilterInboundPolicy"},
			Options: capFilterOptions(),
		}}
	}
	dir := tb.TempDir()
	if err := p.Write(dir); err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.Load(dir, nil)
	if err != nil {
		tb.Fatalf("loading the capability-filter project: %v", err)
	}
	return gatewaytest.New(tb, gatewaytest.Options{
		Config: cfg,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Proxy:  policy.ProxySettings{Transport: rt},
	})
}

// toolsListRequest is the request both routes get.
func toolsListRequest(body io.Reader) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	return req
}

// listedTools decodes a tools/list answer (JSON, or the data of its one SSE event).
func listedTools(tb testing.TB, body []byte) []map[string]any {
	tb.Helper()
	if data, ok := strings.CutPrefix(string(body), "event: message\ndata: "); ok {
		body = []byte(strings.TrimSpace(data))
	}
	var msg struct {
		Result struct {
			Tools []map[string]any `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		tb.Fatalf("decoding the tools/list answer %.200s: %v", body, err)
	}
	return msg.Result.Tools
}

// TestCapFilterBenchPath: the benchmark's two routes answer what it assumes, in JSON and SSE: all
// 100 tools without the filter; with it, the 50 listed ones with the 5 projected descriptions.
func TestCapFilterBenchPath(t *testing.T) {
	for _, sse := range []bool{false, true} {
		for _, filtered := range []bool{false, true} {
			answer := toolsList100(t, sse)
			gw := capFilterGateway(t, filtered, &cannedUpstream{sse: sse, body: answer})
			rec := httptest.NewRecorder()
			gw.ServeHTTP(rec, toolsListRequest(strings.NewReader(toolsListCall)))
			if rec.Code != http.StatusOK {
				t.Fatalf("sse=%v filtered=%v: %d %s", sse, filtered, rec.Code, rec.Body)
			}
			tools := listedTools(t, rec.Body.Bytes())
			switch {
			case !filtered && (len(tools) != 100 || rec.Body.String() != string(answer)):
				t.Errorf("sse=%v unfiltered: %d tools, answer changed: %v", sse, len(tools), rec.Body.String() != string(answer))
			case filtered && (len(tools) != 50 || tools[0]["name"] != "tool_000" || tools[0]["description"] != "curated 0" ||
				tools[1]["name"] != "tool_002" || !strings.HasPrefix(tools[1]["description"].(string), "Tool number 2 ")):
				t.Errorf("sse=%v filtered: %d tools, first two %v %v", sse, len(tools), tools[0], tools[1])
			}
		}
	}
}

// BenchmarkCapFilter is the CPU the capability filter (mcp-capability-filter-inbound) adds to a
// request: a tools/list answered with 100 tools, as JSON and as SSE, through gateway.ServeHTTP over
// an in-memory upstream (as BenchmarkGateway/pipeline-*), on the same route without the filter
// ("unfiltered") and with it ("filtered": 50 tools listed, 5 with a projected description). The
// added cost per request is filtered minus unfiltered ns/op. internal/policy/capfilter's
// BenchmarkToolsList100 measures the same over loopback HTTP to a Go SDK server, where the
// network and the SDK dominate.
//
//	go test -run '^$' -bench CapFilter -benchmem -count 5 ./bench/
func BenchmarkCapFilter(b *testing.B) {
	for _, sse := range []bool{false, true} {
		format := "json"
		if sse {
			format = "sse"
		}
		answer := toolsList100(b, sse)
		for _, filtered := range []bool{false, true} {
			route := "unfiltered"
			if filtered {
				route = "filtered"
			}
			b.Run(format+"/"+route, func(b *testing.B) {
				gw := capFilterGateway(b, filtered, &cannedUpstream{sse: sse, body: answer})
				// The size of the answer the route gives, to check every iteration against.
				rec := httptest.NewRecorder()
				gw.ServeHTTP(rec, toolsListRequest(strings.NewReader(toolsListCall)))
				want := rec.Body.Len()
				body := strings.NewReader(toolsListCall)
				req := toolsListRequest(body)
				w := &discardWriter{h: http.Header{}}
				b.ReportAllocs()
				for b.Loop() {
					body.Reset(toolsListCall)
					clear(w.h)
					w.status, w.n = 0, 0
					gw.ServeHTTP(w, req)
					if w.status != http.StatusOK || w.n != want {
						b.Fatalf("status %d, %d bytes (want 200, %d)", w.status, w.n, want)
					}
				}
				b.ReportMetric(float64(want), "answer-bytes")
			})
		}
	}
}
