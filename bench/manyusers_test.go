package bench_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/bench/upstream"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// BenchmarkManyUsers is the token-exchange path (the test auth policy, then user-oauth) with one
// and with 10,000 distinct users, each with a fresh stored connection, every request a different
// user in turn, over an in-memory upstream. The first user's connection is made by the real
// connect flow (gatewaytest's fake authorization server); the others are copies of its row under
// their own subjects (the flow itself is measured by bench/run's target c; this is about the
// credential cache at scale). Reports ns/op and allocations (compare users=1 with users=10000)
// and the heap each cached connection holds (heap-B/conn, measured after every user's
// connection was loaded once). cpu-ns/op is the process's CPU time per request (GC and the
// gateway's background work included): the figure to compare, as ns/op on a shared machine
// also counts time the benchmark was not running.
//
//	go test -run '^$' -bench ManyUsers -benchmem ./bench/
func BenchmarkManyUsers(b *testing.B) {
	for _, n := range []int{1, 10000} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) { benchManyUsers(b, n) })
	}
	b.Run("paired", benchManyUsersPaired)
}

// benchManyUsersPaired is the 10,000-user target's figure: the one-user and the 10,000-user
// gateways side by side in one process, served in alternate blocks of requests, so both see the
// same machine (on a shared VM, separate runs of the two differ by ±20% on their own). Reports the
// CPU per request of each (cpu-ns/op-1, cpu-ns/op-10k) and "10k/1", the median over block pairs
// of the ratio of their CPU per request.
//
//	go test -run '^$' -bench 'ManyUsers/paired' -benchtime 200000x ./bench/
func benchManyUsersPaired(b *testing.B) {
	const users, block = 10000, 1000
	one, _ := setUpManyUsers(b, 1)
	many, _ := setUpManyUsers(b, users)
	var (
		cpu     [2]int64 // CPU time of each side's blocks
		n       [2]int   // requests of each side
		perOp   [2]float64
		ratios  []float64
		side, i int
		left    = block
	)
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		if side == 0 {
			one(0)
		} else {
			many(i)
			if i++; i == users {
				i = 0
			}
		}
		n[side]++
		if left--; left > 0 {
			continue
		}
		now := cpuTime(b)
		cpu[side] += now - start
		perOp[side] = float64(now-start) / block
		if side == 1 && perOp[0] > 0 {
			ratios = append(ratios, perOp[1]/perOp[0])
		}
		start, side, left = now, side^1, block
	}
	cpu[side] += cpuTime(b) - start
	if n[1] == 0 || len(ratios) == 0 {
		b.Fatalf("%d requests: at least %d are needed for one pair of blocks (-benchtime %dx)", b.N, 2*block, 2*block)
	}
	slices.Sort(ratios)
	b.ReportMetric(float64(cpu[0])/float64(n[0]), "cpu-ns/op-1")
	b.ReportMetric(float64(cpu[1])/float64(n[1]), "cpu-ns/op-10k")
	b.ReportMetric(ratios[len(ratios)/2], "10k/1")
}

func benchManyUsers(b *testing.B, users int) {
	call, perConn := setUpManyUsers(b, users)
	i := 0
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		call(i)
		if i++; i == users {
			i = 0
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if users >= 1000 { // one connection's share is lost in the heap's noise
		b.ReportMetric(perConn, "heap-B/conn") // after the loop: b.Loop's start clears earlier metrics
	}
}

// setUpManyUsers builds the gateway of BenchmarkManyUsers with users stored connections, loads
// each into the credential cache with one request, and returns a request for user i and the heap
// each cached connection holds.
func setUpManyUsers(tb testing.TB, users int) (call func(i int), perConn float64) {
	tb.Helper()
	env := gatewaytest.NewFakeUpstreamEnv(tb, "")
	env.Connect("/mcp/alpha", "user-0")
	ctx := tb.Context()
	conns, err := env.Gateway.Store.ListConnections(ctx, store.ConnectionFilter{})
	if err != nil || len(conns) != 1 {
		tb.Fatalf("after the connect flow: %d connections, %v", len(conns), err)
	}
	first, err := env.Gateway.Store.GetConnection(ctx, conns[0].ConnectionKey)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 1; i < users; i++ {
		c := *first
		c.Subject = subject.New(gatewaytest.TestNamespace, fmt.Sprint("user-", i)).String()
		c.Version = 0
		if err := env.Gateway.Store.PutConnection(ctx, &c); err != nil {
			tb.Fatal(err)
		}
	}
	// A second gateway on the same store and project, forwarding to the in-memory upstream: its
	// credential cache starts empty. It logs at info, serve's default (the access log line counts).
	want := upstreamAnswer(tb, false)
	gw := gatewaytest.New(tb, gatewaytest.Options{Dir: env.Dir, Store: env.Gateway.Store, Ring: env.Gateway.Ring,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Proxy:  policy.ProxySettings{Transport: &cannedUpstream{body: want}}})

	body := strings.NewReader(upstream.ToolsCall)
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/mcp/alpha", body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprint("user-", i)
	}
	w := &discardWriter{h: http.Header{}}
	call = func(i int) {
		body.Reset(upstream.ToolsCall)
		req.Header.Set(gatewaytest.UserHeader, names[i])
		clear(w.h)
		w.status, w.n = 0, 0
		gw.ServeHTTP(w, req)
		if w.status != http.StatusOK || w.n != len(want) {
			tb.Fatalf("user %d: status %d, %d bytes (want 200, %d)", i, w.status, w.n, len(want))
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range users { // every user's connection into the cache
		call(i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perConn = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(users)
	return call, perConn
}
