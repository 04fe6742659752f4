// Package bench_test benchmarks the whole gateway (config loaded from files, route match, request
// id, policy pipeline, McpProxyHandler engine, ReverseProxy) per request. The load harness that
// compares mcpgate with other proxies is ./cmd/bench.
//
//	go test -run '^$' -bench Gateway -benchmem ./bench/
package bench_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/bench/upstream"
	_ "github.com/mcpgate/mcpgate/internal/builtin"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/requestid"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// newGateway loads the benchmark project (one McpProxyHandler route, no policies) forwarding to
// upstreamURL and builds the gateway as mcpgate serve does (gatewaytest.New), with its logger at
// warn (as the harness runs it) and, when rt is set, that upstream transport.
func newGateway(tb testing.TB, upstreamURL string, rt http.RoundTripper) *gatewaytest.Gateway {
	tb.Helper()
	dir := tb.TempDir()
	if err := upstream.WriteGatewayProject(dir, upstreamURL); err != nil {
		tb.Fatal(err)
	}
	p, err := config.Load(dir, nil)
	if err != nil {
		tb.Fatalf("loading the benchmark project: %v", err)
	}
	return gatewaytest.New(tb, gatewaytest.Options{
		Config: p,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Proxy:  policy.ProxySettings{Transport: rt},
	})
}

// cannedUpstream answers every request in memory with a prebuilt upstream response, so the
// pipeline benchmark counts the gateway's allocations and none of a network round trip or an
// upstream server. Each answer costs it one Response, one header map and one body reader.
type cannedUpstream struct {
	sse  bool
	body []byte
}

func (c *cannedUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	ct := "application/json"
	if c.sse {
		ct = "text/event-stream"
	}
	return &http.Response{
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {ct}},
		Body:          io.NopCloser(bytes.NewReader(c.body)),
		ContentLength: int64(len(c.body)),
		Request:       r,
	}, nil
}

// upstreamAnswer records what the bench upstream answers to one tools/call.
func upstreamAnswer(tb testing.TB, sse bool) []byte {
	tb.Helper()
	req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(upstream.ToolsCall))
	if sse {
		req.Header.Set(upstream.StreamHeader, "sse")
	}
	rec := httptest.NewRecorder()
	(&upstream.Handler{SSEDelay: -1}).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		tb.Fatalf("bench upstream answered %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

// bufferPool recycles ReverseProxy's 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// discardWriter is the cheapest http.ResponseWriter that still flushes, so SSE takes the
// streaming path.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *discardWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(b)
	return len(b), nil
}
func (w *discardWriter) Flush() {}

// EnableFullDuplex and SetWriteDeadline succeed, as on a real HTTP/1 connection, so the
// ResponseController calls the engine makes cost what they cost in production (an unsupported
// call would allocate an error).
func (w *discardWriter) EnableFullDuplex() error          { return nil }
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *discardWriter) SetReadDeadline(time.Time) error  { return nil }

// BenchmarkGateway/pipeline-* drive gateway.Server.ServeHTTP directly with an in-memory upstream:
// allocs/op is the gateway's own cost per request (route, request id, policy context, engine,
// ReverseProxy). BenchmarkGateway/loopback-* send real HTTP over loopback to a real upstream,
// direct and through the gateway: the difference between the two is the gateway's cost with a
// real transport (the client's and the upstream's allocations count in both).
func BenchmarkGateway(b *testing.B) {
	for _, sse := range []bool{false, true} {
		name := "json"
		if sse {
			name = "sse"
		}
		b.Run("pipeline-"+name, func(b *testing.B) {
			want := upstreamAnswer(b, sse)
			gw := newGateway(b, "http://127.0.0.1:9/mcp", &cannedUpstream{sse: sse, body: want})
			body := strings.NewReader(upstream.ToolsCall)
			req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", body)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(upstream.ToolsCall)
				clear(w.h)
				w.status, w.n = 0, 0
				gw.ServeHTTP(w, req)
				if w.status != http.StatusOK || w.n != len(want) {
					b.Fatalf("status %d, %d bytes (want 200, %d)", w.status, w.n, len(want))
				}
			}
		})
	}
	b.Run("pipeline-json-bare-reverseproxy", func(b *testing.B) {
		// The floor: httputil.ReverseProxy alone (with pooled copy buffers, as mcpgate and the
		// harness's tuned bare proxy have) over the same in-memory upstream.
		want := upstreamAnswer(b, false)
		target, _ := url.Parse("http://127.0.0.1:9")
		rp := &httputil.ReverseProxy{
			Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
			Transport:  &cannedUpstream{body: want},
			BufferPool: &bufferPool{},
		}
		body := strings.NewReader(upstream.ToolsCall)
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", body)
		req.Header.Set("Content-Type", "application/json")
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			body.Reset(upstream.ToolsCall)
			clear(w.h)
			w.status, w.n = 0, 0
			rp.ServeHTTP(w, req)
			if w.status != http.StatusOK || w.n != len(want) {
				b.Fatalf("status %d, %d bytes (want 200, %d)", w.status, w.n, len(want))
			}
		}
	})
	for _, sse := range []bool{false, true} {
		name := "json"
		if sse {
			name = "sse"
		}
		up := httptest.NewServer(&upstream.Handler{SSEDelay: -1})
		b.Cleanup(up.Close)
		gw := newGateway(b, up.URL+"/mcp", nil)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}}
		b.Cleanup(client.CloseIdleConnections)
		for _, target := range []struct{ name, url string }{{"direct", up.URL + "/mcp"}, {"mcpgate", gw.URL + "/mcp"}} {
			b.Run("loopback-"+name+"-"+target.name, func(b *testing.B) {
				want := len(upstreamAnswer(b, sse))
				body := strings.NewReader(upstream.ToolsCall)
				b.ReportAllocs()
				for b.Loop() {
					body.Reset(upstream.ToolsCall)
					req, err := http.NewRequest(http.MethodPost, target.url, body)
					if err != nil {
						b.Fatal(err)
					}
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Accept", "application/json, text/event-stream")
					if sse {
						req.Header.Set(upstream.StreamHeader, "sse")
					}
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusOK || int(n) != want {
						b.Fatalf("status %d, %d bytes (want 200, %d)", resp.StatusCode, n, want)
					}
				}
			})
		}
	}
}

// TestGatewayForwardsWhatTheBenchmarkSends checks the benchmark measures a working path: through
// the gateway built from the benchmark project, JSON and SSE answers arrive byte for byte as the
// upstream sends them directly.
func TestGatewayForwardsWhatTheBenchmarkSends(t *testing.T) {
	up := httptest.NewServer(&upstream.Handler{SSEDelay: -1})
	defer up.Close()
	gw := newGateway(t, up.URL+"/mcp", nil)
	for _, sse := range []bool{false, true} {
		get := func(base string) (string, http.Header) {
			req, err := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(upstream.ToolsCall))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if sse {
				req.Header.Set(upstream.StreamHeader, "sse")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: status %d, %v: %s", base, resp.StatusCode, err, b)
			}
			return string(b), resp.Header
		}
		direct, _ := get(up.URL)
		through, h := get(gw.URL)
		if through != direct {
			t.Fatalf("sse=%v: through the gateway %q, direct %q", sse, through, direct)
		}
		if h.Get(requestid.Header) == "" {
			t.Fatalf("sse=%v: no %s: the answer did not come through the gateway", sse, requestid.Header)
		}
	}
}
