package bench_test

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/bench/upstream"
)

// BenchmarkIdleStreams measures what one idle SSE stream costs a proxy in memory, in one process
// over real loopback connections: n streams (a tools/call answered with one event, then nothing)
// opened direct to an upstream, through mcpgate (no policies) and through the tuned bare
// httputil.ReverseProxy; the proxy's share is the growth through it minus the growth direct
// (which holds the client's and the upstream's side of each stream). Reported per stream: the
// goroutine stacks (stack-B/stream, runtime StackInuse) and the heap in use (heap-B/stream).
// Unlike bench/run's RSS figure it counts allocated, not touched, memory, and splits the two.
//
//	go test -run '^$' -bench IdleStreams -benchtime 1x ./bench/
func BenchmarkIdleStreams(b *testing.B) {
	const n = 1000
	ps := newIdleStreamProxies(b, n)
	for b.Loop() {
		for name, m := range ps.measure(b, n) {
			b.ReportMetric(m.stack, name+"-stack-B/stream")
			b.ReportMetric(m.heap, name+"-heap-B/stream")
		}
	}
}

// idleStreamProxies is an upstream that answers a tools/call with one SSE event and then holds
// the stream open, with mcpgate (no policies) and the tuned bare ReverseProxy in front of it.
type idleStreamProxies struct {
	up, mcpgate, bare string
	// exited receives once per upstream handler that returned: openStreams waits for all of its
	// streams' handlers, so one measurement's streams are gone before the next one starts.
	exited chan struct{}
}

func newIdleStreamProxies(tb testing.TB, n int) *idleStreamProxies {
	tb.Helper()
	release := make(chan struct{})
	ps := &idleStreamProxies{exited: make(chan struct{}, 3*n)}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { ps.exited <- struct{}{} }()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	tb.Cleanup(up.Close)
	tb.Cleanup(func() { close(release) })
	upURL, _ := url.Parse(up.URL)

	gw := httptest.NewServer(newGateway(tb, up.URL+"/mcp", nil))
	tb.Cleanup(gw.Close)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(upURL) }, FlushInterval: -1,
		Transport: &http.Transport{MaxIdleConnsPerHost: 512}, ErrorLog: log.New(io.Discard, "", 0)}
	bare := httptest.NewServer(rp)
	tb.Cleanup(bare.Close)
	ps.up, ps.mcpgate, ps.bare = up.URL, gw.URL, bare.URL
	return ps
}

// measure opens n streams direct, then through each proxy, and returns each proxy's memory per
// stream: the growth through it minus the growth direct.
func (ps *idleStreamProxies) measure(tb testing.TB, n int) map[string]streamMemory {
	tb.Helper()
	direct := openStreams(tb, ps.up, n, ps.exited)
	out := map[string]streamMemory{}
	for _, p := range [...]struct{ name, base string }{{"mcpgate", ps.mcpgate}, {"bare", ps.bare}} {
		through := openStreams(tb, p.base, n, ps.exited)
		out[p.name] = streamMemory{stack: (through.stack - direct.stack) / float64(n), heap: (through.heap - direct.heap) / float64(n)}
	}
	return out
}

type streamMemory struct{ stack, heap float64 }

// openStreams opens n idle streams to base+"/mcp", reads the memory they hold (after a GC),
// closes them, waits until the upstream's n handlers returned (exited) and returns the growth.
func openStreams(b testing.TB, base string, n int, exited <-chan struct{}) streamMemory {
	b.Helper()
	u, _ := url.Parse(base)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	req := "POST /mcp HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(upstream.ToolsCall)) + upstream.ToolsCall
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
		timeout := time.After(30 * time.Second)
		for range len(conns) {
			select {
			case <-exited:
			case <-timeout:
				b.Fatalf("the upstream's handlers did not return after their streams closed")
			}
		}
	}()
	for range n {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte(req)); err != nil {
			b.Fatal(err)
		}
		br := bufio.NewReaderSize(c, 512)
		for { // the headers and the first event
			line, err := br.ReadString('\n')
			if err != nil {
				b.Fatalf("reading the stream: %v", err)
			}
			if strings.HasPrefix(line, "data:") {
				break
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	return streamMemory{stack: float64(after.StackInuse) - float64(before.StackInuse), heap: float64(after.HeapInuse) - float64(before.HeapInuse)}
}
