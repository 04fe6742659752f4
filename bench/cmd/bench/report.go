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
	minRatioBare   = 0.95                   // req/s ÷ the bare proxy's (JSON, mcpgate and mcpgate-static)
	maxCPUBare     = 1.05                   // proxy CPU per JSON request ÷ the bare proxy's (mcpgate, mcpgate-static)
	maxCPUBareAuth = 1.12                   // the same for the user-OAuth paths (mcpgate-apikey-oauth, -signin-oauth)
	minRatioCaddy  = 1.0                    // req/s ÷ Caddy's (mcpgate)
	maxAddedP50    = 100 * time.Microsecond // unloaded p50 over the bare proxy's (mcpgate)
	maxStreamBytes = 40 << 10               // RSS per idle SSE stream (every mcpgate target)
	maxColdStart   = 200 * time.Millisecond // exec to /readyz 200 (mcpgate)
	maxIdleRSS     = 40 << 20               // resident set after start-up, no load (mcpgate)
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
	rpsOf    series = func(m measurement) float64 { return m.s.rps() }
	p50      series = func(m measurement) float64 { return float64(percentile(m.s.latency, 50)) }
	p99      series = func(m measurement) float64 { return float64(percentile(m.s.latency, 99)) }
	ttfe50   series = func(m measurement) float64 { return float64(percentile(m.s.ttfe, 50)) }
	ttfe99   series = func(m measurement) float64 { return float64(percentile(m.s.ttfe, 99)) }
	cpuReq   series = func(m measurement) float64 { return float64(m.perRequest(m.proxyCPU)) }
	upReq    series = func(m measurement) float64 { return float64(m.perRequest(m.upstreamCPU)) }
	lgReq    series = func(m measurement) float64 { return float64(m.perRequest(m.loadgenCPU)) }
	errs     series = func(m measurement) float64 { return float64(m.s.errors) }
	ratioOf         = func(a, b measurement) float64 { return a.s.rps() / b.s.rps() }
	cpuRatio        = func(a, b measurement) float64 { return cpuReq(a) / cpuReq(b) }
	// withDB is the proxy's CPU per request plus its PostgreSQL backends' (when measured).
	withDB      series = func(m measurement) float64 { return float64(m.perRequest(m.proxyCPU + max(m.dbCPU, 0))) }
	dbReq       series = func(m measurement) float64 { return float64(m.perRequest(max(m.dbCPU, 0))) }
	withDBRatio        = func(a, b measurement) float64 { return withDB(a) / withDB(b) }
)

// onPG reports whether ms were measured with the database backends' CPU.
func onPG(ms []measurement) bool { return len(ms) > 0 && ms[0].dbCPU >= 0 }

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

// ratioCell is the paired median of f over rounds with its range, or "—".
func ratioCell(a, b []measurement, f func(a, b measurement) float64) string {
	if len(a) == 0 || len(b) == 0 {
		return "—"
	}
	s := fmt.Sprintf("%.2f×", pairedMedian(a, b, f))
	if lo, hi := pairedRange(a, b, f); min(len(a), len(b)) > 1 {
		s += fmt.Sprintf(" (%.2f–%.2f)", lo, hi)
	}
	return s
}

func writeReport(w io.Writer, o options, env string, res *runResult) {
	fmt.Fprintf(w, "```\n%s\n```\n", env)
	for _, wl := range res.workloads {
		r, ok := res.results[wl]
		if !ok {
			continue
		}
		writeTable(w, o, wl, res.targets, r)
	}
	writeAuthPaths(w, o, res)
	writeMemory(w, o, res)
	writeChecks(w, res)
	if res.svg != "" {
		fmt.Fprintf(w, "\n![Proxy CPU per request and p99 latency per target](%s)\n", res.svg)
	}
}

// writeTable prints one workload's table.
func writeTable(w io.Writer, o options, wl string, targets []*target, res map[string][]measurement) {
	direct, hasDirect := res["direct"]
	bare := res["bare"]
	switch wl {
	case "latency":
		fmt.Fprintf(w, "\n**Latency**: JSON tools/call on one connection, one request at a time (medians of %d rounds)\n\n", o.rounds)
		fmt.Fprintln(w, "| target | p50 | p99 | added p50 | req/s | proxy CPU/req |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	case "sse-latency":
		fmt.Fprintf(w, "\n**SSE latency**: SSE tools/call on one connection, one request at a time: progress event, %s, result event (medians of %d rounds)\n\n", o.sseDelay, o.rounds)
		fmt.Fprintln(w, "| target | TTFE p50 | TTFE p99 | added TTFE p50 | added TTFE p99 | req/s | proxy CPU/req |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	case "json":
		fmt.Fprintf(w, "\n**JSON** tools/call, %d connections (medians of %d rounds; ÷ bare: paired within rounds, range in parentheses)\n\n", o.concurrency, o.rounds)
		fmt.Fprintln(w, "| target | req/s | p50 | p99 | added p50 | proxy CPU/req | upstream CPU/req | req/s ÷ bare | CPU/req ÷ bare |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	default:
		fmt.Fprintf(w, "\n**SSE** tools/call, %d connections: progress event, %s, result event (medians of %d rounds)\n\n", o.concurrency, o.sseDelay, o.rounds)
		fmt.Fprintln(w, "| target | req/s | TTFE p50 | TTFE p99 | added TTFE p50 | added TTFE p99 | p50 | p99 | proxy CPU/req | req/s ÷ bare | CPU/req ÷ bare |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	}
	for _, t := range targets {
		ms := res[t.name]
		if len(ms) == 0 {
			continue
		}
		added, added99, cpu := "—", "—", "—"
		if hasDirect && t.name != "direct" {
			f := p50
			if isSSE(wl) {
				f = ttfe50
			}
			added = signedUs(pairedMedian(ms, direct, func(a, b measurement) float64 { return f(a) - f(b) }))
			added99 = signedUs(pairedMedian(ms, direct, func(a, b measurement) float64 { return ttfe99(a) - ttfe99(b) }))
		}
		if t.name != "direct" {
			cpu = usf(medianOf(ms, cpuReq))
		}
		rps, cpuR := "—", "—"
		if t.name != "bare" && t.name != "direct" {
			rps, cpuR = ratioCell(ms, bare, ratioOf), ratioCell(ms, bare, cpuRatio)
		}
		name := t.label
		if e := medianOf(ms, errs); e > 0 {
			name += fmt.Sprintf(" (%.0f errors/round)", e)
		}
		switch wl {
		case "latency":
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.0f | %s |\n", name,
				usf(medianOf(ms, p50)), usf(medianOf(ms, p99)), added, medianOf(ms, rpsOf), cpu)
		case "sse-latency":
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.0f | %s |\n", name,
				usf(medianOf(ms, ttfe50)), usf(medianOf(ms, ttfe99)), added, added99, medianOf(ms, rpsOf), cpu)
		case "json":
			fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", name, medianOf(ms, rpsOf),
				usf(medianOf(ms, p50)), usf(medianOf(ms, p99)), added, cpu, usf(medianOf(ms, upReq)), rps, cpuR)
		default:
			fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name, medianOf(ms, rpsOf),
				usf(medianOf(ms, ttfe50)), usf(medianOf(ms, ttfe99)), added, added99,
				usf(medianOf(ms, p50)), usf(medianOf(ms, p99)), cpu, rps, cpuR)
		}
	}
	if gw, ok := res["mcpgate"]; ok && wl != "latency" && wl != "sse-latency" {
		fmt.Fprintf(w, "\nLoad generator CPU/req (through mcpgate): %s.\n", usf(medianOf(gw, lgReq)))
	}
}

// writeAuthPaths prints the counters of the targets with a stored upstream connection.
func writeAuthPaths(w io.Writer, o options, res *runResult) {
	var rows []*target
	for _, t := range res.targets {
		if onAuthPath(t.name) {
			rows = append(rows, t)
		}
	}
	if len(rows) == 0 {
		return
	}
	var wls []string
	for _, wl := range res.workloads {
		if res.results[wl] != nil {
			wls = append(wls, wl)
		}
	}
	fmt.Fprintf(w, "\n**Auth paths**: counted over the measured windows only (all rounds; store: %s)\n\n", res.db)
	fmt.Fprintf(w, "| target | DB round trips per request (%s) | DB backend CPU/req (%s) | DB statements / responses | audit rows written / dropped | refreshes at the upstream AS | gateway refreshes (success / other) | replays after an upstream 401 | upstream 401s |\n", strings.Join(wls, " / "), strings.Join(wls, " / "))
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, t := range rows {
		var total counters
		var requests int
		var measured time.Duration
		var perWL, cpuWL []string
		for i, wl := range wls {
			var c counters
			n := 0
			for j, m := range res.results[wl][t.name] {
				if j == 0 {
					c = m.c
				} else {
					c = c.add(m.c)
				}
				n += m.s.requests
				measured += m.s.elapsed
			}
			if i == 0 {
				total = c
			} else {
				total = total.add(c)
			}
			requests += n
			if c.dbStatements < 0 || n == 0 {
				perWL = append(perWL, "—")
			} else {
				perWL = append(perWL, fmt.Sprintf("%.4f", float64(c.dbStatements)/float64(n)))
			}
			if ms := res.results[wl][t.name]; onPG(ms) {
				cpuWL = append(cpuWL, usf(medianOf(ms, dbReq)))
			} else {
				cpuWL = append(cpuWL, "—")
			}
		}
		cell := func(v int64) string {
			if v < 0 {
				return "—"
			}
			return fmt.Sprint(v)
		}
		stmts := "—"
		if total.dbStatements >= 0 {
			stmts = fmt.Sprintf("%d / %d", total.dbStatements, requests)
		}
		refresh := cell(total.asRefreshes)
		if total.asRefreshes >= 0 && measured > 0 {
			refresh += fmt.Sprintf(" in %.0f s (%.2f/s)", measured.Seconds(), float64(total.asRefreshes)/measured.Seconds())
		}
		gw, audit := "—", "—"
		if total.gwRefreshOK >= 0 {
			gw = fmt.Sprintf("%d / %d", total.gwRefreshOK, total.gwRefreshMore)
		}
		if total.auditWritten >= 0 {
			audit = fmt.Sprintf("%d / %d", total.auditWritten, total.auditDropped)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", t.label, strings.Join(perWL, " / "), strings.Join(cpuWL, " / "), stmts, audit, refresh, gw, cell(total.gwReplays), cell(total.asRefused))
	}
	for _, t := range rows {
		top := res.top[t.name]
		if len(top) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nMost frequent statements of %s over the load rounds (warm-ups and pauses included; calls, pg_stat_statements text):\n\n", t.label)
		for _, st := range top {
			q := strings.Join(strings.Fields(st.query), " ")
			if len(q) > 160 {
				q = q[:160] + "…"
			}
			fmt.Fprintf(w, "- %d × `%s`\n", st.calls, strings.ReplaceAll(q, "`", "'"))
		}
	}
}

// writeMemory prints start-up times, idle resident sets and the cost of idle streams.
func writeMemory(w io.Writer, o options, res *runResult) {
	if len(res.streams) == 0 && res.cold == nil {
		return
	}
	fmt.Fprintf(w, "\n**Memory and start-up**: resident set (VmRSS) of each proxy process after start-up and set-up, before any load; then with %d idle SSE streams open through it (a tools/call answered by one event, then nothing)\n\n", o.streams)
	fmt.Fprintln(w, "| target | exec to /readyz | idle RSS | RSS with the streams open | RSS per idle stream |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, t := range res.targets {
		if t.name == "direct" {
			continue
		}
		ready := "—"
		if t.gateway {
			ready = ms(t.ready)
		}
		open, per := "—", "—"
		if r, ok := res.streams[t.name]; ok {
			open = fmt.Sprintf("%.1f MiB", mib(r.after))
			per = fmt.Sprintf("%.1f KiB", r.perStream()/1024)
		}
		fmt.Fprintf(w, "| %s | %s | %.1f MiB | %s | %s |\n", t.label, ready, mib(t.idleRSS), open, per)
	}
	if c := res.cold; c != nil {
		fmt.Fprintf(w, "\nCold start of mcpgate (no policies, SQLite) from exec to the first 200 of /readyz (polled every %s): %s on an empty data dir (key ring and database created), restarts on it %s (median %s); idle RSS 1 s after the first start %.1f MiB.\n",
			readyzPoll, ms(c.fresh), msList(c.restarts), ms(c.median()), mib(c.idleRSS))
	}
}

// writeChecks prints the targets as PASS/FAIL lines.
func writeChecks(w io.Writer, res *runResult) {
	var lines []string
	check := func(ok bool, format string, args ...any) {
		mark := "FAIL"
		if ok {
			mark = "PASS"
		}
		lines = append(lines, fmt.Sprintf("- %s: %s", mark, fmt.Sprintf(format, args...)))
	}
	rng := func(a, b []measurement, f func(a, b measurement) float64) string {
		lo, hi := pairedRange(a, b, f)
		return fmt.Sprintf("rounds %.2f–%.2f", lo, hi)
	}
	label := map[string]string{}
	for _, t := range res.targets {
		label[t.name] = t.label
	}
	if js := res.results["json"]; js != nil {
		if bare, ok := js["bare"]; ok {
			for _, name := range []string{"mcpgate", "mcpgate-static", "mcpgate-apikey-oauth", "mcpgate-signin-oauth"} {
				ms, ok := js[name]
				if !ok {
					continue
				}
				limit := maxCPUBare
				if onAuthPath(name) {
					limit = maxCPUBareAuth
				}
				if onPG(ms) {
					// On PostgreSQL the database work runs in its backends: counted with the
					// gateway's, as it would be in the gateway's own process on SQLite.
					r := pairedMedian(ms, bare, withDBRatio)
					check(r <= limit, "%s: proxy CPU per JSON request with its PostgreSQL backends' %.2f× the bare proxy's (%s + %s DB vs %s; gateway alone %.2f×; %s; target ≤ %.2f×)",
						label[name], r, usf(medianOf(ms, cpuReq)), usf(medianOf(ms, dbReq)), usf(medianOf(bare, cpuReq)),
						pairedMedian(ms, bare, cpuRatio), rng(ms, bare, withDBRatio), limit)
				} else {
					r := pairedMedian(ms, bare, cpuRatio)
					check(r <= limit, "%s: proxy CPU per JSON request %.2f× the bare proxy's (%s vs %s; %s; target ≤ %.2f×)",
						label[name], r, usf(medianOf(ms, cpuReq)), usf(medianOf(bare, cpuReq)), rng(ms, bare, cpuRatio), limit)
				}
				if !onAuthPath(name) {
					r := pairedMedian(ms, bare, ratioOf)
					check(r >= minRatioBare, "%s: JSON throughput %.2f× the bare proxy's (%s; target ≥ %.2f×)", label[name], r, rng(ms, bare, ratioOf), minRatioBare)
				}
			}
		}
		if gw, ok := js["mcpgate"]; ok {
			if caddy, ok := js["caddy"]; ok {
				r := pairedMedian(gw, caddy, ratioOf)
				check(r >= minRatioCaddy, "mcpgate: JSON throughput %.2f× Caddy's (%s; target ≥ %.2f×)", r, rng(gw, caddy, ratioOf), minRatioCaddy)
			}
		}
	}
	if sse := res.results["sse"]; sse != nil {
		if bare, ok := sse["bare"]; ok {
			direct, hasDirect := sse["direct"]
			for _, t := range res.targets {
				ms, ok := sse[t.name]
				if !t.gateway || !ok {
					continue
				}
				d := pairedMedian(ms, bare, func(a, b measurement) float64 { return ttfe99(a) - ttfe99(b) })
				detail := fmt.Sprintf("first-event p99 %s, bare proxy's %s", usf(medianOf(ms, ttfe99)), usf(medianOf(bare, ttfe99)))
				if hasDirect {
					add := func(x []measurement) string {
						return signedUs(pairedMedian(x, direct, func(a, b measurement) float64 { return ttfe99(a) - ttfe99(b) }))
					}
					detail = fmt.Sprintf("added first-event p99 %s, bare proxy's %s", add(ms), add(bare))
				}
				check(d <= 0, "%s: SSE %s (paired difference %s; target ≤ the bare proxy's)", t.label, detail, signedUs(d))
			}
		}
	}
	if lat := res.results["latency"]; lat != nil {
		gw, ok1 := lat["mcpgate"]
		bare, ok2 := lat["bare"]
		if ok1 && ok2 {
			d := pairedMedian(gw, bare, func(a, b measurement) float64 { return p50(a) - p50(b) })
			check(time.Duration(d) <= maxAddedP50, "mcpgate: unloaded p50 %s the bare proxy's (target ≤ +%s)", signedUs(d), us(maxAddedP50))
		}
	}
	for _, t := range res.targets {
		if r, ok := res.streams[t.name]; ok && t.gateway {
			check(r.perStream() <= maxStreamBytes, "%s: %.1f KiB RSS per idle SSE stream at %d streams (target ≤ %d KiB)", t.label, r.perStream()/1024, r.n, maxStreamBytes>>10)
		}
	}
	if c := res.cold; c != nil {
		check(c.worst() <= maxColdStart, "mcpgate: cold start to /readyz %s (empty data dir %s, restarts median %s; the slower counts; target ≤ %s)",
			ms(c.worst()), ms(c.fresh), ms(c.median()), ms(maxColdStart))
	}
	for _, t := range res.targets {
		if t.name == "mcpgate" && t.idleRSS > 0 {
			check(t.idleRSS <= maxIdleRSS, "mcpgate: idle RSS %.1f MiB (target ≤ %d MiB)", mib(t.idleRSS), maxIdleRSS>>20)
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "\n**Targets**\n\n%s\n", strings.Join(lines, "\n"))
	}
}
