package main

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

// fake makes a measurement of n requests in 1 s with every latency d and cpu of proxy CPU.
func fake(n int, d, cpu time.Duration) measurement {
	s := &sample{requests: n, elapsed: time.Second}
	for range n {
		s.latency = append(s.latency, d)
		s.ttfe = append(s.ttfe, d/2)
	}
	return measurement{s: s, proxyCPU: cpu * time.Duration(n), upstreamCPU: time.Duration(n) * time.Microsecond, dbCPU: -1, c: noCounters()}
}

// withCounters sets the auth-path counters of m.
func withCounters(m measurement, db, asRefresh int64) measurement {
	m.dbCPU = time.Duration(m.s.requests) * time.Microsecond // 1 µs per request in the database
	m.c = counters{dbStatements: db, asRefreshes: asRefresh, asRefused: 0, gwRefreshOK: asRefresh, gwRefreshMore: 0, gwReplays: 0, auditWritten: db, auditDropped: 1}
	return m
}

func testTargets(names ...string) []*target {
	var ts []*target
	for _, n := range names {
		ts = append(ts, &target{name: n, label: labels[n], gateway: isGateway(n)})
	}
	return ts
}

func TestReportPairsRoundsAndJudgesTheTargets(t *testing.T) {
	targets := testTargets("direct", "mcpgate", "mcpgate-apikey-oauth", "bare", "caddy")
	targets[1].idleRSS, targets[1].ready = 30<<20, 80*time.Millisecond
	res := &runResult{
		workloads: []string{"json", "sse", "latency", "streams"},
		targets:   targets,
		db:        "postgres",
		results: map[string]map[string][]measurement{
			"json": {
				"direct":  {fake(300, time.Millisecond, 0), fake(300, time.Millisecond, 0), fake(300, time.Millisecond, 0)},
				"mcpgate": {fake(90, 3*time.Millisecond, 60*time.Microsecond), fake(100, 3*time.Millisecond, 60*time.Microsecond), fake(50, 3*time.Millisecond, 60*time.Microsecond)},
				"mcpgate-apikey-oauth": {withCounters(fake(80, 3*time.Millisecond, 55*time.Microsecond), 4, 0),
					withCounters(fake(80, 3*time.Millisecond, 55*time.Microsecond), 0, 0), withCounters(fake(40, 3*time.Millisecond, 55*time.Microsecond), 0, 1)},
				"bare":  {fake(100, 2*time.Millisecond, 50*time.Microsecond), fake(100, 2*time.Millisecond, 50*time.Microsecond), fake(50, 2*time.Millisecond, 50*time.Microsecond)},
				"caddy": {fake(50, 5*time.Millisecond, 100*time.Microsecond), fake(50, 5*time.Millisecond, 100*time.Microsecond), fake(50, 5*time.Millisecond, 100*time.Microsecond)},
			},
			"sse": {
				"direct":               {fake(100, 2*time.Millisecond, 0)},
				"mcpgate":              {fake(90, 6*time.Millisecond, 70*time.Microsecond)},
				"mcpgate-apikey-oauth": {withCounters(fake(90, 4*time.Millisecond, 70*time.Microsecond), 0, 0)},
				"bare":                 {fake(95, 4*time.Millisecond, 60*time.Microsecond)},
				"caddy":                {fake(60, 8*time.Millisecond, 100*time.Microsecond)},
			},
			"latency": {
				"direct":               {fake(10, 20*time.Microsecond, 0)},
				"mcpgate":              {fake(10, 150*time.Microsecond, 0)},
				"mcpgate-apikey-oauth": {withCounters(fake(10, 150*time.Microsecond, 0), 0, 0)},
				"bare":                 {fake(10, 100*time.Microsecond, 0)},
				"caddy":                {fake(10, 200*time.Microsecond, 0)},
			},
		},
		streams: map[string]streamResult{
			"mcpgate": {n: 1000, before: 20 << 20, after: 20<<20 + 1000*50<<10},
			"bare":    {n: 1000, before: 10 << 20, after: 10<<20 + 1000*30<<10},
		},
		cold: &coldStarts{fresh: 250 * time.Millisecond, restarts: []time.Duration{90 * time.Millisecond, 100 * time.Millisecond, 110 * time.Millisecond}, idleRSS: 25 << 20},
		svg:  "bench.svg",
	}
	var b strings.Builder
	writeReport(&b, options{rounds: 3, concurrency: 50, streams: 1000}, "env", res)
	out := b.String()
	for _, want := range []string{
		// Ratios are per round (0.9, 1.0, 1.0), then the median: 1.00, not 240/250.
		"| mcpgate | 90 | 3000 µs | 3000 µs | +2000 µs | 60 µs | 1 µs | 1.00× (0.90–1.00) | 1.20× (1.20–1.20) |",
		"| bare httputil.ReverseProxy (tuned) | 100 | 2000 µs | 2000 µs | +1000 µs | 50 µs | 1 µs | — | — |",
		"- FAIL: mcpgate: proxy CPU per JSON request 1.20× the bare proxy's (60 µs vs 50 µs; rounds 1.20–1.20; target ≤ 1.05×)",
		"- PASS: mcpgate: JSON throughput 1.00× the bare proxy's (rounds 0.90–1.00; target ≥ 0.95×)",
		"- PASS: mcpgate, API key + user OAuth: proxy CPU per JSON request with its PostgreSQL backends' 1.12× the bare proxy's (55 µs + 1 µs DB vs 50 µs; gateway alone 1.10×; rounds 1.12–1.12; target ≤ 1.12×)",
		"- PASS: mcpgate: JSON throughput 1.80× Caddy's (rounds 1.00–2.00; target ≥ 1.00×)",
		// SSE first event: mcpgate 3 ms, bare 2 ms, direct 1 ms.
		"- FAIL: mcpgate: SSE added first-event p99 +2000 µs, bare proxy's +1000 µs (paired difference +1000 µs; target ≤ the bare proxy's)",
		"- PASS: mcpgate, API key + user OAuth: SSE added first-event p99 +1000 µs, bare proxy's +1000 µs",
		"- PASS: mcpgate: unloaded p50 +50 µs the bare proxy's (target ≤ +100 µs)",
		"| mcpgate | 150 µs | 150 µs | +130 µs | 10 | 0 µs |",
		// Auth paths: 4 statements over 200 JSON responses; 1 refresh over 5 s of measured windows.
		"| mcpgate, API key + user OAuth | 0.0200 / 0.0000 / 0.0000 | 1 µs / 1 µs / 1 µs | 4 / 300 | 4 / 5 | 1 in 5 s (0.20/s) | 1 / 0 | 0 | 0 |",
		"| mcpgate | 80 ms | 30.0 MiB | 68.8 MiB | 50.0 KiB |",
		"- FAIL: mcpgate: 50.0 KiB RSS per idle SSE stream at 1000 streams (target ≤ 40 KiB)",
		"- FAIL: mcpgate: cold start to /readyz 250 ms (empty data dir 250 ms, restarts median 100 ms; the slower counts; target ≤ 200 ms)",
		"- PASS: mcpgate: idle RSS 30.0 MiB (target ≤ 40 MiB)",
		"![Proxy CPU per request and p99 latency per target](bench.svg)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q\n%s", want, out)
		}
	}
	// The bare proxy's stream figure is shown but not judged.
	if strings.Contains(out, "FAIL: bare") || strings.Contains(out, "PASS: bare") {
		t.Errorf("the bare proxy is judged:\n%s", out)
	}

	svg := chart(res)
	if err := xml.Unmarshal(svg, new(struct{})); err != nil {
		t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
	}
	for _, want := range []string{"<svg ", "Proxy CPU per request (µs)", "p99 latency under load (ms)", "p99 latency, one connection (µs)", ">mcpgate<", ">60.0<"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("chart lacks %q\n%s", want, svg)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tt := range []struct{ in, want float64 }{{0.7, 0.8}, {1, 1}, {1.1, 1.2}, {2.9, 3}, {7, 8}, {64, 80}, {120, 120}, {214, 250}, {9000, 10000}} {
		if got := niceCeil(tt.in); got != tt.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseSample(t *testing.T) {
	for _, tt := range []struct {
		line    string
		ok      bool
		name    string
		outcome string
		value   float64
	}{
		{`mcpgate_upstream_refreshes_total{outcome="success",upstream="bench"} 12`, true, "mcpgate_upstream_refreshes_total", "success", 12},
		{`mcpgate_audit_rows_written_total 3`, true, "mcpgate_audit_rows_written_total", "", 3},
		{`# HELP mcpgate_x y`, false, "", "", 0},
		{``, false, "", "", 0},
	} {
		s, ok := parseSample(tt.line)
		if ok != tt.ok || s.name != tt.name || s.labels["outcome"] != tt.outcome || s.value != tt.value {
			t.Errorf("parseSample(%q) = %+v, %v", tt.line, s, ok)
		}
	}
}
