package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Targets the issue sets for mcpgate.
const (
	minRatioBare  = 0.95
	minRatioCaddy = 1.0
	maxAddedP50   = 100 * time.Microsecond // over the bare proxy's added p50
)

// series extracts one figure of a target's rounds.
type series func(m measurement) float64

func medianOf(ms []measurement, f series) float64 {
	v := make([]float64, len(ms))
	for i, m := range ms {
		v[i] = f(m)
	}
	return median(v)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// pairedMedian is the median over rounds of f(a[i], b[i]): a ratio or difference taken within a
// round, where both targets saw the same background load, is steadier than one of medians.
func pairedMedian(a, b []measurement, f func(a, b measurement) float64) float64 {
	n := min(len(a), len(b))
	v := make([]float64, n)
	for i := range n {
		v[i] = f(a[i], b[i])
	}
	return median(v)
}

// pairedRange is the smallest and largest of f(a[i], b[i]) over rounds.
func pairedRange(a, b []measurement, f func(a, b measurement) float64) (lo, hi float64) {
	for i := range min(len(a), len(b)) {
		v := f(a[i], b[i])
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	return lo, hi
}

var (
	rps     series = func(m measurement) float64 { return m.s.rps() }
	p50     series = func(m measurement) float64 { return float64(percentile(m.s.latency, 50)) }
	p99     series = func(m measurement) float64 { return float64(percentile(m.s.latency, 99)) }
	ttfe50  series = func(m measurement) float64 { return float64(percentile(m.s.ttfe, 50)) }
	ttfe99  series = func(m measurement) float64 { return float64(percentile(m.s.ttfe, 99)) }
	cpuReq  series = func(m measurement) float64 { return float64(m.perRequest(m.proxyCPU)) }
	upReq   series = func(m measurement) float64 { return float64(m.perRequest(m.upstreamCPU)) }
	lgReq   series = func(m measurement) float64 { return float64(m.perRequest(m.loadgenCPU)) }
	errs    series = func(m measurement) float64 { return float64(m.s.errors) }
	ratioOf        = func(a, b measurement) float64 { return a.s.rps() / b.s.rps() }
)

// us formats a duration in microseconds (or milliseconds from 10 ms up).
func us(d time.Duration) string {
	if d >= 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

func usf(f float64) string { return us(time.Duration(f)) }

func signedUs(f float64) string {
	if f < 0 {
		return "−" + usf(-f)
	}
	return "+" + usf(f)
}

func writeReport(w io.Writer, o options, env string, workloads []string, targets []*target, results map[string]map[string][]measurement) {
	fmt.Fprintf(w, "```\n%s\n```\n", env)
	for _, wl := range workloads {
		res := results[wl]
		direct, hasDirect := res["direct"]
		gw, hasGW := res["mcpgate"]
		switch wl {
		case "latency":
			fmt.Fprintf(w, "\n**Latency**: JSON tools/call on one connection, one request at a time (medians of %d rounds)\n\n", o.rounds)
			fmt.Fprintln(w, "| target | p50 | p99 | added p50 | req/s | proxy CPU/req |")
			fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
		case "json":
			fmt.Fprintf(w, "\n**JSON** tools/call, %d connections (medians of %d rounds)\n\n", o.concurrency, o.rounds)
			fmt.Fprintln(w, "| target | req/s | p50 | p99 | added p50 | proxy CPU/req | upstream CPU/req | mcpgate ÷ target (req/s) |")
			fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
		default:
			fmt.Fprintf(w, "\n**SSE** tools/call, %d connections: progress event, %s, result event (medians of %d rounds)\n\n", o.concurrency, o.sseDelay, o.rounds)
			fmt.Fprintln(w, "| target | req/s | TTFE p50 | TTFE p99 | added TTFE p50 | p50 | p99 | proxy CPU/req | mcpgate ÷ target (req/s) |")
			fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		}
		for _, t := range targets {
			ms := res[t.name]
			added, cpu, ratio := "—", "—", "—"
			if hasDirect && t.name != "direct" {
				f := p50
				if wl == "sse" {
					f = ttfe50
				}
				added = signedUs(pairedMedian(ms, direct, func(a, b measurement) float64 { return f(a) - f(b) }))
			}
			if t.name != "direct" {
				cpu = usf(medianOf(ms, cpuReq))
			}
			if hasGW && t.name != "mcpgate" {
				ratio = fmt.Sprintf("%.2f×", pairedMedian(gw, ms, ratioOf))
				if lo, hi := pairedRange(gw, ms, ratioOf); len(ms) > 1 {
					ratio += fmt.Sprintf(" (%.2f–%.2f)", lo, hi)
				}
			}
			name := t.label
			if e := medianOf(ms, errs); e > 0 {
				name += fmt.Sprintf(" (%.0f errors/round)", e)
			}
			switch wl {
			case "latency":
				fmt.Fprintf(w, "| %s | %s | %s | %s | %.0f | %s |\n", name,
					usf(medianOf(ms, p50)), usf(medianOf(ms, p99)), added, medianOf(ms, rps), cpu)
			case "json":
				fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s | %s | %s |\n", name, medianOf(ms, rps),
					usf(medianOf(ms, p50)), usf(medianOf(ms, p99)), added, cpu, usf(medianOf(ms, upReq)), ratio)
			default:
				fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", name, medianOf(ms, rps),
					usf(medianOf(ms, ttfe50)), usf(medianOf(ms, ttfe99)), added,
					usf(medianOf(ms, p50)), usf(medianOf(ms, p99)), cpu, ratio)
			}
		}
		if hasGW && wl != "latency" {
			fmt.Fprintf(w, "\nLoad generator CPU/req (through mcpgate): %s.\n", usf(medianOf(gw, lgReq)))
		}
		writeChecks(w, wl, res)
	}
}

// writeChecks prints the targets for one workload.
func writeChecks(w io.Writer, wl string, res map[string][]measurement) {
	gw, ok := res["mcpgate"]
	if !ok {
		return
	}
	var lines []string
	check := func(ok bool, format string, args ...any) {
		mark := "MISS"
		if ok {
			mark = "PASS"
		}
		lines = append(lines, fmt.Sprintf("- %s: %s", mark, fmt.Sprintf(format, args...)))
	}
	bare, hasBare := res["bare"]
	if wl == "latency" {
		if hasBare {
			d := pairedMedian(gw, bare, func(a, b measurement) float64 { return p50(a) - p50(b) })
			check(time.Duration(d) <= maxAddedP50, "unloaded p50 %s the bare proxy's (target ≤ +%s)", signedUs(d), us(maxAddedP50))
		}
	} else if hasBare {
		r := pairedMedian(gw, bare, ratioOf)
		lo, hi := pairedRange(gw, bare, ratioOf)
		check(r >= minRatioBare, "throughput %.2f× the bare proxy's (rounds: %.2f–%.2f; target ≥ %.2f×)", r, lo, hi, minRatioBare)
	}
	if caddy, ok := res["caddy"]; ok && wl != "latency" {
		r := pairedMedian(gw, caddy, ratioOf)
		lo, hi := pairedRange(gw, caddy, ratioOf)
		check(r >= minRatioCaddy, "throughput %.2f× Caddy's (rounds: %.2f–%.2f; target ≥ %.2f×)", r, lo, hi, minRatioCaddy)
	}
	if hasBare && wl != "latency" {
		c := pairedMedian(gw, bare, func(a, b measurement) float64 { return cpuReq(a) - cpuReq(b) })
		lo, hi := pairedRange(gw, bare, func(a, b measurement) float64 { return cpuReq(a) - cpuReq(b) })
		lines = append(lines, fmt.Sprintf("- CPU/req: mcpgate %s, bare proxy %s (%s per request; rounds: %s to %s)",
			usf(medianOf(gw, cpuReq)), usf(medianOf(bare, cpuReq)), signedUs(c), signedUs(lo), signedUs(hi)))
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "\nTargets (%s):\n%s\n", strings.ToUpper(wl), strings.Join(lines, "\n"))
	}
}
