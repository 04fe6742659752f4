package bench_test

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/bench/upstream"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/limiter"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/testutil/redistest"
)

// rateLimitGateway is newGateway's gateway with one rate-limit-inbound policy (rateLimitBy ip, so
// the key is derived per request as in production) in front of the in-memory upstream; rl is
// where it counts (nil: memory).
func rateLimitGateway(b *testing.B, options map[string]any, rl *limiter.Redis, rt http.RoundTripper) *gatewaytest.Gateway {
	b.Helper()
	dir := b.TempDir()
	err := upstream.GatewayProject{Upstream: "http://127.0.0.1:9/mcp", Inbound: []string{"limit"}, Policies: []upstream.Policy{{
		Name: "limit", Type: "rate-limit-inbound",
		Handler: upstream.PolicyHandler{Module: "$import(@zuplo/runtime)", Export: "RateLimitInboundPolicy"},
		Options: options,
	}}}.Write(dir)
	if err != nil {
		b.Fatal(err)
	}
	p, err := config.Load(dir, nil)
	if err != nil {
		b.Fatalf("loading the project: %v", err)
	}
	return gatewaytest.New(b, gatewaytest.Options{
		Config:     p,
		Logger:     slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Proxy:      policy.ProxySettings{Transport: rt},
		RateLimits: rl,
	})
}

// cpuTime is the CPU time (user and system, every thread) the process has used, in nanoseconds.
// For the Redis benchmarks ns/op is mostly waiting for the round trip; cpu-ns/op is what the
// gateway process spent (redis-server's own CPU is not in it).
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkRateLimit is the CPU a rate-limit-inbound policy adds to a request (BENCHMARKS.md,
// "Rate limits"): the pipeline of BenchmarkGateway/pipeline-json with no policy, then with the
// policy counting in memory, in a real Redis (strict: one round trip per request, over loopback
// here), and locally with a Redis sync (async). The limit is never reached, so every request is
// forwarded; memory-refused is the 429 path. The -parallel variants measure throughput under
// concurrency (see parallel).
//
//	go test -run '^$' -bench RateLimit -benchmem ./bench/
func BenchmarkRateLimit(b *testing.B) {
	want := upstreamAnswer(b, false)
	allowAll := map[string]any{"rateLimitBy": "ip", "requestsAllowed": 1 << 30, "timeWindowMinutes": 60}
	run := func(b *testing.B, gw *gatewaytest.Gateway, status int) {
		body := strings.NewReader(upstream.ToolsCall)
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		cpu0 := cpuTime(b)
		for b.Loop() {
			body.Reset(upstream.ToolsCall)
			clear(w.h)
			w.status, w.n = 0, 0
			gw.ServeHTTP(w, req)
			if w.status != status {
				b.Fatalf("status %d, want %d", w.status, status)
			}
		}
		b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	}
	// parallel runs the requests from 8 goroutines per core, so Redis round trips overlap as they
	// do under load; its ns/op is wall time divided by requests (throughput), not latency.
	parallel := func(b *testing.B, gw *gatewaytest.Gateway) {
		b.ReportAllocs()
		b.SetParallelism(8)
		cpu0 := cpuTime(b)
		b.RunParallel(func(pb *testing.PB) {
			body := strings.NewReader(upstream.ToolsCall)
			req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", body)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			w := &discardWriter{h: http.Header{}}
			for pb.Next() {
				body.Reset(upstream.ToolsCall)
				clear(w.h)
				w.status, w.n = 0, 0
				gw.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Errorf("status %d", w.status)
					return
				}
			}
		})
		b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	}
	b.Run("none", func(b *testing.B) {
		run(b, newGateway(b, "http://127.0.0.1:9/mcp", &cannedUpstream{body: want}), http.StatusOK)
	})
	b.Run("none-parallel", func(b *testing.B) {
		parallel(b, newGateway(b, "http://127.0.0.1:9/mcp", &cannedUpstream{body: want}))
	})
	b.Run("memory", func(b *testing.B) {
		run(b, rateLimitGateway(b, allowAll, nil, &cannedUpstream{body: want}), http.StatusOK)
	})
	b.Run("memory-parallel", func(b *testing.B) {
		parallel(b, rateLimitGateway(b, allowAll, nil, &cannedUpstream{body: want}))
	})
	b.Run("memory-refused", func(b *testing.B) {
		gw := rateLimitGateway(b, map[string]any{"rateLimitBy": "ip", "requestsAllowed": 1, "timeWindowMinutes": 60}, nil, &cannedUpstream{body: want})
		w := &discardWriter{h: http.Header{}}
		gw.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", strings.NewReader(upstream.ToolsCall))) // the one allowed
		run(b, gw, http.StatusTooManyRequests)
	})
	srv := redistest.Start(b)
	for _, mode := range []string{"strict", "async"} {
		gateway := func(b *testing.B) *gatewaytest.Gateway {
			rl, err := limiter.OpenRedis(srv.URL, limiter.RedisOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = rl.Close() })
			opts := map[string]any{"mode": mode}
			maps.Copy(opts, allowAll)
			return rateLimitGateway(b, opts, rl, &cannedUpstream{body: want})
		}
		b.Run("redis-"+mode, func(b *testing.B) { run(b, gateway(b), http.StatusOK) })
		b.Run("redis-"+mode+"-parallel", func(b *testing.B) { parallel(b, gateway(b)) })
	}
}

// BenchmarkRateLimitTake is the limiter alone, as the policy calls it once per request (its key
// is the policy's prefix and a client address): the part of BenchmarkRateLimit's difference that
// is the count itself, without the pipeline's noise.
func BenchmarkRateLimitTake(b *testing.B) {
	l := limiter.Limit{Requests: 1 << 30, Window: time.Hour}
	ctx := context.Background()
	bench := func(b *testing.B, t interface {
		Take(context.Context, string, limiter.Limit) (limiter.Result, error)
	}) {
		b.ReportAllocs()
		prefix, addr := "limit|ip|", "192.0.2.1"
		for b.Loop() {
			if r, err := t.Take(ctx, prefix+addr, l); err != nil || !r.Allowed {
				b.Fatalf("%+v %v", r, err)
			}
		}
	}
	b.Run("memory", func(b *testing.B) { bench(b, limiter.NewMemory(limiter.MemoryOptions{})) })
	srv := redistest.Start(b)
	rl, err := limiter.OpenRedis(srv.URL, limiter.RedisOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rl.Close() })
	b.Run("redis-strict", func(b *testing.B) { bench(b, rl) })
	b.Run("redis-async", func(b *testing.B) {
		a := rl.Async(limiter.AsyncOptions{})
		b.Cleanup(func() { _ = a.Close() })
		bench(b, a)
	})
}
