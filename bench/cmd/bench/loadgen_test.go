package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/bench/upstream"
)

func hostOf(t *testing.T, s *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func TestDoJSONAndSSEFromTheBenchUpstream(t *testing.T) {
	const delay = 20 * time.Millisecond
	s := httptest.NewServer(&upstream.Handler{SSEDelay: delay})
	defer s.Close()
	addr := hostOf(t, s)
	c, err := dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()

	// Several requests on one connection: the keep-alive framing (Content-Length, then chunked)
	// must leave the reader at the next response.
	for i := range 3 {
		r, err := c.do(load{addr: addr, path: "/mcp"}.request(), false)
		if err != nil {
			t.Fatalf("JSON request %d: %v", i, err)
		}
		if r.closed || r.total <= 0 || r.firstEvent != 0 {
			t.Fatalf("JSON request %d: %+v", i, r)
		}
		r, err = c.do(load{addr: addr, path: "/mcp", sse: true}.request(), true)
		if err != nil {
			t.Fatalf("SSE request %d: %v", i, err)
		}
		if r.total < delay || r.firstEvent <= 0 || r.firstEvent > r.total {
			t.Fatalf("SSE request %d: first event %s, total %s (upstream pause %s)", i, r.firstEvent, r.total, delay)
		}
	}
}

// A proxy that holds the stream until it ends shows a time to first event no shorter than the
// upstream's pause: what the SSE workload exists to catch.
func TestDoTimesFirstEventOfABufferedStream(t *testing.T) {
	const delay = 20 * time.Millisecond
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		(&upstream.Handler{SSEDelay: delay}).ServeHTTP(rec, r)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write(rec.Body.Bytes())
	}))
	defer s.Close()
	addr := hostOf(t, s)
	c, err := dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	r, err := c.do(load{addr: addr, path: "/mcp", sse: true}.request(), true)
	if err != nil {
		t.Fatal(err)
	}
	if r.firstEvent < delay {
		t.Fatalf("first event after %s, before the upstream's %s pause ended", r.firstEvent, delay)
	}
}

func TestDoRejectsWhatIsNotAToolsCallResult(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		sse     bool
		want    string
	}{
		{"error status", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "no", http.StatusBadGateway)
		}, false, "status 502"},
		{"not a result", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":42,"error":{"code":-32601}}`)
		}, false, "not a tools/call result"},
		{"JSON where a stream was asked for", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":42,"result":{}}`)
		}, true, "expected an event stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := httptest.NewServer(tt.handler)
			defer s.Close()
			addr := hostOf(t, s)
			c, err := dial(context.Background(), addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			_, err = c.do(load{addr: addr, path: "/mcp", sse: tt.sse}.request(), tt.sse)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestDoNotesConnectionClose(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		(&upstream.Handler{}).ServeHTTP(w, r)
	}))
	defer s.Close()
	addr := hostOf(t, s)
	c, err := dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	r, err := c.do(load{addr: addr, path: "/mcp"}.request(), false)
	if err != nil {
		t.Fatal(err)
	}
	if !r.closed {
		t.Fatal("Connection: close not noted; the worker would reuse a closed connection")
	}
}

func TestRunCountsEveryRequestAcrossReconnects(t *testing.T) {
	var served atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every third response closes the connection; the worker must reconnect and go on.
		if served.Add(1)%3 == 0 {
			w.Header().Set("Connection", "close")
		}
		(&upstream.Handler{SSEDelay: -1}).ServeHTTP(w, r)
	}))
	defer s.Close()
	smp := load{addr: hostOf(t, s), path: "/mcp", sse: true, concurrency: 4, duration: 200 * time.Millisecond}.run(context.Background())
	if smp.requests == 0 || smp.errors != 0 {
		t.Fatalf("%d requests, %d errors (first: %v)", smp.requests, smp.errors, smp.firstErr)
	}
	if int64(smp.requests) != served.Load() {
		t.Fatalf("%d requests counted, %d served", smp.requests, served.Load())
	}
	if len(smp.latency) != smp.requests || len(smp.ttfe) != smp.requests {
		t.Fatalf("%d requests but %d latencies and %d TTFEs", smp.requests, len(smp.latency), len(smp.ttfe))
	}
	if smp.latency[0] > smp.latency[len(smp.latency)-1] {
		t.Fatal("latencies not sorted")
	}
}

func TestEventScannerAcrossReads(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		found  bool
	}{
		{"one read", []string{"event: message\ndata: {}\n\n"}, true},
		{"blank line split", []string{"data: {}\n", "\n"}, true},
		{"CRLF", []string{"data: {}\r\n", "\r\n"}, true},
		{"no event yet", []string{"data: {}\n", "data: more\n"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := eventScanner{start: time.Now().Add(-time.Millisecond)}
			for _, c := range tt.chunks {
				e.scan([]byte(c))
			}
			if got := e.at != 0; got != tt.found {
				t.Fatalf("event found = %v, want %v", got, tt.found)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 100; i++ {
		v = append(v, time.Duration(i))
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {0.1, 1}} {
		if got := percentile(v, tt.p); got != tt.want {
			t.Errorf("p%v = %d, want %d", tt.p, got, tt.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}
