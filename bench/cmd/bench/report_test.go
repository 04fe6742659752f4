package main

import (
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
	return measurement{s: s, proxyCPU: cpu * time.Duration(n), upstreamCPU: time.Duration(n) * time.Microsecond}
}

func TestReportPairsRoundsAndJudgesTheTargets(t *testing.T) {
	targets := []*target{{name: "direct", label: labels["direct"]}, {name: "mcpgate", label: labels["mcpgate"]},
		{name: "bare", label: labels["bare"]}, {name: "caddy", label: labels["caddy"]}}
	res := map[string]map[string][]measurement{
		"json": {
			"direct":  {fake(300, time.Millisecond, 0), fake(300, time.Millisecond, 0), fake(300, time.Millisecond, 0)},
			"mcpgate": {fake(90, 3*time.Millisecond, 60*time.Microsecond), fake(100, 3*time.Millisecond, 60*time.Microsecond), fake(50, 3*time.Millisecond, 60*time.Microsecond)},
			"bare":    {fake(100, 2*time.Millisecond, 50*time.Microsecond), fake(100, 2*time.Millisecond, 50*time.Microsecond), fake(50, 2*time.Millisecond, 50*time.Microsecond)},
			"caddy":   {fake(50, 5*time.Millisecond, 100*time.Microsecond), fake(50, 5*time.Millisecond, 100*time.Microsecond), fake(50, 5*time.Millisecond, 100*time.Microsecond)},
		},
		"latency": {
			"direct":  {fake(10, 20*time.Microsecond, 0)},
			"mcpgate": {fake(10, 150*time.Microsecond, 0)},
			"bare":    {fake(10, 100*time.Microsecond, 0)},
			"caddy":   {fake(10, 200*time.Microsecond, 0)},
		},
	}
	var b strings.Builder
	writeReport(&b, options{rounds: 3, concurrency: 50}, "env", []string{"json", "latency"}, targets, res)
	out := b.String()
	for _, want := range []string{
		// Ratios are per round (0.9, 1.0, 1.0), then the median: 1.00, not 240/250.
		"| mcpgate | 90 | 3000 µs | 3000 µs | +2000 µs | 60 µs | 1 µs | — |",
		"| bare httputil.ReverseProxy (tuned) | 100 | 2000 µs | 2000 µs | +1000 µs | 50 µs | 1 µs | 1.00× (0.90–1.00) |",
		"- PASS: throughput 1.00× the bare proxy's (rounds: 0.90–1.00; target ≥ 0.95×)",
		"- PASS: throughput 1.80× Caddy's (rounds: 1.00–2.00; target ≥ 1.00×)",
		"- CPU/req: mcpgate 60 µs, bare proxy 50 µs (+10 µs per request; rounds: +10 µs to +10 µs)",
		"- PASS: unloaded p50 +50 µs the bare proxy's (target ≤ +100 µs)",
		"| mcpgate | 150 µs | 150 µs | +130 µs | 10 | 0 µs |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q\n%s", want, out)
		}
	}
}
