package capfilter_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// BenchmarkToolsList100 measures what the filter adds to a tools/list of 100 tools through the
// whole in-process path (HTTP client → gateway → Go SDK server, stateless): the same request on
// the same gateway and upstream, once on the route without the filter ("unfiltered") and once on
// the route with it ("filtered": 50 of the 100 tools listed, 5 of them with a projected
// description), answered in JSON and in SSE. The added cost is filtered minus unfiltered.
func BenchmarkToolsList100(b *testing.B) {
	var items []string
	for i := 0; i < 100; i += 2 {
		if i%20 == 0 {
			items = append(items, fmt.Sprintf(`{"name":"tool_%03d","description":"curated %d"}`, i, i))
		} else {
			items = append(items, fmt.Sprintf(`"tool_%03d"`, i))
		}
	}
	opts := `{"tools":[` + strings.Join(items, ",") + `]}`
	const body = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for _, tr := range []struct {
		name string
		sse  bool
	}{{"json", false}, {"sse", true}} {
		o := jsonStateless
		if tr.sse {
			o = sseStateless
		}
		up := newUpstream(b, o, nil, 100)
		gw := gatewaytest.New(b, gatewaytest.Options{Dir: projectFor(b, up.URL, opts), Logger: slog.New(slog.DiscardHandler)})
		for _, route := range []struct{ name, path string }{{"unfiltered", "/mcp/plain"}, {"filtered", "/mcp/filtered"}} {
			url := gw.URL + route.path
			// Check once what the route answers.
			n := countTools(b, client, url, body, tr.sse)
			want := 100
			if route.name == "filtered" {
				want = 50
			}
			if n != want {
				b.Fatalf("%s %s: %d tools, want %d", tr.name, route.name, n, want)
			}
			b.Run(tr.name+"/"+route.name, func(b *testing.B) {
				b.ReportAllocs()
				var size int64
				for b.Loop() {
					resp := do(b, client, url, body)
					n, err := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 {
						b.Fatalf("HTTP %d: %v", resp.StatusCode, err)
					}
					size = n
				}
				b.ReportMetric(float64(size), "answer-bytes")
			})
		}
	}
}

func do(b *testing.B, client *http.Client, url, body string) *http.Response {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	return resp
}

func countTools(b *testing.B, client *http.Client, url, body string, sse bool) int {
	resp := do(b, client, url, body)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if sse {
		for line := range strings.SplitSeq(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				raw = []byte(v)
			}
		}
	}
	var m struct {
		Result struct {
			Tools []json.RawMessage `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		b.Fatalf("answer %.200s: %v", raw, err)
	}
	return len(m.Result.Tools)
}
