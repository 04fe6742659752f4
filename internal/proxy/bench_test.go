package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strings"
	"testing"
)

// BenchmarkToolsCall sends a JSON tools/call to a Go SDK upstream (stateless, JSON responses)
// through the McpProxyHandler engine and through a bare httputil.ReverseProxy. Allocations per
// op count the whole process (client, proxy, SDK server), so compare the two sub-benchmarks:
// the difference is the engine's own cost.
//
//	go test -run '^$' -bench ToolsCall -benchmem ./internal/proxy/
func BenchmarkToolsCall(b *testing.B) {
	up := newUpstream(b, jsonStateless)

	bare := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up.URL)
			pr.Out.URL.Path = up.URL.Path
		},
		Transport: newTransport(),
	})
	b.Cleanup(bare.Close)
	gw := newGateway(b, mcpProxy(up.URL, Settings{}), up.URL, nil)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	body := toolsCallBody("echo")
	for _, target := range []struct{ name, url string }{
		{"direct", up.URL.String()},
		{"bare-reverseproxy", bare.URL + "/mcp"},
		{"mcpgate", gw.url()},
	} {
		b.Run(target.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, target.url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
