package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/bench/upstream"
)

// caddyVersion is the Caddy release the issue names.
const caddyVersion = "v2.11.9"

// staticUpstreamKey is the static upstream credential of mcpgate-static (the auth upstream
// accepts it besides the tokens its authorization server issues).
const staticUpstreamKey = "bench-static-upstream-key"

// signInTokenTTL is the lifetime of the gateway's own access tokens on mcpgate-signin-oauth
// (gateway.accessTokenTtlSeconds): a day, so none expires during a run.
const signInTokenTTL = 86400

type options struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	sseDelay    time.Duration
	only        string
	workloads   string
	mcpgate     string
	compare     string
	caddy       string
	nginx       string
	out         string
	svg         string
	profile     string
	keep        bool
	streams     int
	db          string
	refreshTTL  time.Duration
	coldStarts  int
}

// upstreamProc is one bench upstream process.
type upstreamProc struct {
	name  string
	addr  string
	proc  *proc
	oauth bool // it has an authorization server (GET /bench/stats)
}

// target is one thing the load is sent to.
type target struct {
	name    string
	label   string
	addr    string
	proc    *proc         // the proxy process whose CPU is counted (the upstream for direct)
	up      *upstreamProc // the upstream it forwards to
	header  string        // request header lines the load adds (the caller's credential)
	gateway bool          // an mcpgate process: /readyz and /metrics
	db      string        // its PostgreSQL database ("": SQLite, DB round trips not counted)
	ready   time.Duration // from exec to /readyz answering 200 (mcpgate targets)
	idleRSS int64         // resident set after start-up and setup, before any load (bytes)
}

// measurement is one target × workload × round.
type measurement struct {
	s           *sample
	proxyCPU    time.Duration // CPU the proxy process used during the measured window
	upstreamCPU time.Duration
	loadgenCPU  time.Duration
	dbCPU       time.Duration // CPU of the target's PostgreSQL backends (-1: not on PostgreSQL)
	c           counters      // auth-path counters over the measured window
}

func (m measurement) perRequest(d time.Duration) time.Duration {
	if m.s.requests == 0 {
		return 0
	}
	return d / time.Duration(m.s.requests)
}

var labels = map[string]string{
	"direct":               "direct (no proxy)",
	"mcpgate":              "mcpgate",
	"mcpgate-b":            "mcpgate (-compare build)",
	"mcpgate-static":       "mcpgate, static upstream key",
	"mcpgate-apikey-oauth": "mcpgate, API key + user OAuth",
	"mcpgate-signin-oauth": "mcpgate, sign-in + user OAuth",
	"mcpgate-refresh":      "mcpgate, API key + user OAuth, short-lived tokens",
	"bare":                 "bare httputil.ReverseProxy (tuned)",
	"bare-stdlib":          "httputil.ReverseProxy, defaults",
	"bare-idle":            "bare, tuned, 120 s idle timeout",
	"caddy":                "Caddy " + caddyVersion,
	"nginx":                "nginx",
}

// defaultTargets is every target of the comparison, in the order each round runs them.
const defaultTargets = "direct,mcpgate,mcpgate-static,mcpgate-apikey-oauth,mcpgate-signin-oauth,mcpgate-refresh,bare,caddy,nginx"

// isGateway reports whether target name is an mcpgate process.
func isGateway(name string) bool { return strings.HasPrefix(name, "mcpgate") }

// onAuthPath reports whether target name keeps state in the database on its request path (a
// stored upstream connection): these run on PostgreSQL, where round trips are counted.
func onAuthPath(name string) bool {
	return name == "mcpgate-apikey-oauth" || name == "mcpgate-signin-oauth" || name == "mcpgate-refresh"
}

// run is everything a benchmark run measured, for the report.
type runResult struct {
	workloads []string
	targets   []*target
	results   map[string]map[string][]measurement // workload → target → rounds
	streams   map[string]streamResult             // target → idle-stream figures
	cold      *coldStarts                         // nil when not measured
	db        string                              // "postgres" or "sqlite": the auth-path targets' store
	top       map[string][]statement              // target → its most frequent statements over the load rounds
	svg       string                              // the chart's file name, when one was written
}

// harness holds what the set-up of the targets shares.
type harness struct {
	o     options
	dir   string
	self  string
	pg    *pgCluster
	procs []*proc
	ups   map[string]*upstreamProc
	logf  func(string, ...any)
}

func benchmark(ctx context.Context, o options, stdout, stderr io.Writer) error {
	names := splitComma(o.only)
	for _, n := range names {
		if labels[n] == "" {
			return fmt.Errorf("-targets: unknown target %q (%s, mcpgate-b, bare-idle, bare-stdlib)", n, defaultTargets)
		}
	}
	if o.compare != "" && !slices.Contains(names, "mcpgate-b") {
		i := slices.Index(names, "mcpgate") + 1 // right after mcpgate, or first
		names = slices.Insert(names, i, "mcpgate-b")
	}
	if slices.Contains(names, "mcpgate-b") && o.compare == "" {
		return errors.New("-targets: mcpgate-b needs -compare")
	}
	workloads := splitComma(o.workloads)
	for _, w := range workloads {
		if w != "json" && w != "sse" && w != "latency" && w != "sse-latency" && w != "streams" {
			return fmt.Errorf("-workloads: unknown workload %q (json, sse, latency, sse-latency, streams)", w)
		}
	}
	if o.rounds < 1 || o.concurrency < 1 || o.duration <= 0 {
		return errors.New("-rounds, -concurrency and -duration must be positive")
	}
	if o.db != "auto" && o.db != "postgres" && o.db != "sqlite" {
		return fmt.Errorf("-db: auto, postgres or sqlite, got %q", o.db)
	}
	if o.refreshTTL < time.Second {
		return errors.New("-refresh-ttl must be at least 1s")
	}
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	if slices.Contains(workloads, "streams") {
		if err := raiseFileLimit(2*o.streams + 4096); err != nil {
			logf("warning: %v", err)
		}
	}

	dir, err := os.MkdirTemp("", "mcpgate-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("work directory: %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	if slices.ContainsFunc(names, func(n string) bool { return isGateway(n) && n != "mcpgate-b" }) && o.mcpgate == "" {
		o.mcpgate = filepath.Join(dir, "mcpgate")
		logf("building mcpgate from ./cmd/mcpgate …")
		if err := runQuiet(ctx, "go", "build", "-o", o.mcpgate, "github.com/mcpgate/mcpgate/cmd/mcpgate"); err != nil {
			return fmt.Errorf("building mcpgate (run from the repository): %w", err)
		}
	}
	if slices.Contains(names, "caddy") {
		if o.caddy, err = ensureCaddy(ctx, o.caddy, logf); err != nil {
			return err
		}
	}
	if slices.Contains(names, "nginx") {
		if o.nginx, err = ensureNginx(ctx, o.nginx, logf); err != nil {
			return err
		}
	}

	h := &harness{o: o, dir: dir, self: self, ups: map[string]*upstreamProc{}, logf: logf}
	defer func() {
		for _, p := range slices.Backward(h.procs) {
			p.stop()
		}
		if h.pg != nil {
			h.pg.stop()
		}
	}()
	res := &runResult{workloads: workloads, results: map[string]map[string][]measurement{}, streams: map[string]streamResult{}, db: "sqlite"}
	if slices.ContainsFunc(names, onAuthPath) && o.db != "sqlite" {
		logf("starting PostgreSQL (pg_stat_statements) for the auth-path targets …")
		h.pg, err = startPG(ctx)
		switch {
		case err == nil:
			res.db = "postgres"
		case o.db == "postgres":
			return err
		default:
			logf("warning: %v; the auth-path targets run on SQLite and DB round trips are not counted", err)
		}
	}

	// The upstreams first; every target forwards to one of them.
	if _, err := h.upstream(ctx, "upstream", false, 0); err != nil {
		return err
	}
	for _, t := range names {
		switch t {
		case "mcpgate-static", "mcpgate-apikey-oauth", "mcpgate-signin-oauth":
			_, err = h.upstream(ctx, "upstream-auth", true, upstream.DefaultTokenTTL)
		case "mcpgate-refresh":
			_, err = h.upstream(ctx, "upstream-refresh", true, o.refreshTTL)
		}
		if err != nil {
			return err
		}
	}

	// The targets one after the other, so each one's start-up time is its own.
	for _, name := range names {
		t, err := h.startTarget(ctx, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		res.targets = append(res.targets, t)
	}
	time.Sleep(time.Second)
	for _, t := range res.targets {
		if t.name != "direct" {
			if t.idleRSS, err = rss(t.proc.pid()); err != nil {
				return err
			}
		}
	}

	env := environment(o, res.targets, res.db)
	logf("%s", env)

	if slices.Contains(names, "mcpgate") && o.coldStarts > 0 {
		logf("cold starts of mcpgate to /readyz (%d) …", o.coldStarts+1)
		if res.cold, err = h.measureColdStarts(ctx, o.coldStarts); err != nil {
			return err
		}
		logf("cold start: fresh data dir %s, restarts %s", ms(res.cold.fresh), msList(res.cold.restarts))
	}

	if slices.Contains(workloads, "streams") {
		logf("idle SSE streams: %d through each proxy …", o.streams)
		for _, t := range res.targets {
			if t.name == "direct" {
				continue
			}
			l := load{addr: t.addr, path: "/mcp", header: t.header}
			r := measureStreams(ctx, l, t.proc.pid(), o.streams)
			if r.err != nil {
				return fmt.Errorf("%s: idle streams: %w", t.name, r.err)
			}
			res.streams[t.name] = r
			logf("streams %-22s RSS %6.1f → %6.1f MiB: %5.1f KiB per stream (opened in %s)", t.name, mib(r.before), mib(r.after), r.perStream()/1024, r.openTime.Round(time.Millisecond))
			time.Sleep(500 * time.Millisecond) // the proxies close the upstream side
		}
	}

	loadWorkloads := slices.DeleteFunc(slices.Clone(workloads), func(w string) bool { return w == "streams" })
	est := time.Duration(o.rounds*len(loadWorkloads)*len(res.targets)) * (o.duration + o.warmup)
	if len(loadWorkloads) > 0 {
		logf("running %d rounds × %d workloads × %d targets (about %s) …", o.rounds, len(loadWorkloads), len(res.targets), est.Round(time.Second))
	}
	for _, w := range loadWorkloads {
		res.results[w] = map[string][]measurement{}
	}
	stmts0 := map[string]map[int64]statement{}
	for _, t := range res.targets {
		if t.db != "" {
			if stmts0[t.name], err = h.pg.statementCalls(ctx, t.db); err != nil {
				return err
			}
		}
	}
	for round := 1; round <= o.rounds; round++ {
		for _, w := range loadWorkloads {
			for _, t := range res.targets {
				var prof *profiler
				if o.profile != "" && round == 1 && t.name != "direct" {
					if prof, err = startProfile(ctx, o.profile, t, w, o.duration); err != nil {
						return err
					}
				}
				m, err := measure(ctx, o, t, w, h.pg)
				if perr := prof.wait(); perr != nil {
					logf("%v", perr)
				}
				if err != nil {
					return err
				}
				res.results[w][t.name] = append(res.results[w][t.name], m)
				logf("%s", roundLine(round, w, t, m))
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	res.top = map[string][]statement{}
	for _, t := range res.targets {
		if t.db != "" {
			after, err := h.pg.statementCalls(ctx, t.db)
			if err != nil {
				return err
			}
			res.top[t.name] = topStatements(stmts0[t.name], after, 5)
		}
	}

	var report bytes.Buffer
	svgPath := o.svg
	if svgPath == "" && o.out != "" {
		svgPath = strings.TrimSuffix(o.out, ".md") + ".svg"
	}
	if svgPath != "" {
		if err := os.WriteFile(svgPath, chart(res), 0o644); err != nil {
			return err
		}
		res.svg = filepath.Base(svgPath)
		logf("chart: %s", svgPath)
	}
	writeReport(&report, o, env, res)
	if _, err := stdout.Write(report.Bytes()); err != nil {
		return err
	}
	if o.out != "" {
		return os.WriteFile(o.out, report.Bytes(), 0o644)
	}
	return nil
}

// isSSE reports whether workload w asks for SSE answers.
func isSSE(w string) bool { return w == "sse" || w == "sse-latency" }

func roundLine(round int, w string, t *target, m measurement) string {
	line := fmt.Sprintf("round %d %-7s %-21s %8.0f req/s  p50 %-8s p99 %-8s proxy CPU %s/req",
		round, w, t.name, m.s.rps(), us(percentile(m.s.latency, 50)), us(percentile(m.s.latency, 99)), us(m.perRequest(m.proxyCPU)))
	if isSSE(w) {
		line += fmt.Sprintf("  TTFE p50 %s", us(percentile(m.s.ttfe, 50)))
	}
	if m.c.dbStatements >= 0 {
		line += fmt.Sprintf("  DB %d statements, %s/req", m.c.dbStatements, us(m.perRequest(m.dbCPU)))
	}
	if m.c.asRefreshes >= 0 {
		line += fmt.Sprintf("  AS refreshes %d", m.c.asRefreshes)
	}
	if m.s.errors > 0 {
		line += fmt.Sprintf("  %d errors (first: %v)", m.s.errors, m.s.firstErr)
	}
	return line
}

// upstream starts (once) the upstream process name: oauth makes it an OAuth-protected resource
// with its own authorization server issuing tokens of ttl.
func (h *harness) upstream(ctx context.Context, name string, oauth bool, ttl time.Duration) (*upstreamProc, error) {
	if u := h.ups[name]; u != nil {
		return u, nil
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"upstream", "-listen", addr, "-sse-delay", h.o.sseDelay.String()}
	if oauth {
		args = append(args, "-oauth", "-token-ttl", ttl.String(), "-static-key", staticUpstreamKey)
	}
	p, err := start(ctx, h.dir, name, nil, h.self, args...)
	if err != nil {
		return nil, err
	}
	h.procs = append(h.procs, p)
	header := ""
	if oauth {
		header = "Authorization: Bearer " + staticUpstreamKey + "\r\n"
	}
	if err := waitReady(ctx, p, load{addr: addr, path: "/mcp", header: header}); err != nil {
		return nil, err
	}
	u := &upstreamProc{name: name, addr: addr, proc: p, oauth: oauth}
	h.ups[name] = u
	return u, nil
}

// startTarget starts target name in front of its upstream, sets it up (API key, connection,
// sign-in) and checks it answers a JSON and an SSE tools/call.
func (h *harness) startTarget(ctx context.Context, name string) (*target, error) {
	o := h.o
	t := &target{name: name, label: labels[name], gateway: isGateway(name), up: h.ups["upstream"]}
	switch name {
	case "mcpgate-refresh":
		t.label = fmt.Sprintf("mcpgate, API key + user OAuth, %s tokens", o.refreshTTL)
		t.up = h.ups["upstream-refresh"]
	case "mcpgate-static", "mcpgate-apikey-oauth", "mcpgate-signin-oauth":
		t.up = h.ups["upstream-auth"]
	}
	if name == "direct" {
		t.addr, t.proc = t.up.addr, t.up.proc
		return t, nil
	}
	var err error
	if t.addr, err = freePort(); err != nil {
		return nil, err
	}
	upURL := "http://" + t.up.addr + "/mcp"
	if t.gateway {
		var project upstream.GatewayProject
		switch name {
		case "mcpgate", "mcpgate-b":
			project = upstream.GatewayProject{Upstream: upURL}
		case "mcpgate-static":
			project = upstream.StaticKeyProject(upURL, staticUpstreamKey)
		case "mcpgate-apikey-oauth", "mcpgate-refresh":
			project = upstream.APIKeyOAuthProject(upURL)
		case "mcpgate-signin-oauth":
			project = upstream.SignInOAuthProject(upURL, signInTokenTTL)
		}
		cfg := filepath.Join(h.dir, name+"-config")
		if name == "mcpgate" {
			cfg = filepath.Join(h.dir, "mcpgate-config") // also the cold starts' project
		}
		if err := project.Write(cfg); err != nil {
			return nil, err
		}
		bin := o.mcpgate
		if name == "mcpgate-b" {
			bin = o.compare
		}
		state := []string{"--data-dir", filepath.Join(h.dir, name+"-data")}
		if onAuthPath(name) && h.pg != nil {
			t.db = strings.ReplaceAll(name, "-", "_")
			url, err := h.pg.createDB(ctx, t.db)
			if err != nil {
				return nil, err
			}
			state = append(state, "--database-url", url)
		}
		var key string
		if name == "mcpgate-apikey-oauth" || name == "mcpgate-refresh" {
			cmd := exec.CommandContext(ctx, bin, append([]string{"keys", "create", "--consumer", "bench"}, state...)...)
			cmd.Env = cleanEnv()
			out, err := cmd.Output()
			if err != nil {
				return nil, fmt.Errorf("mcpgate keys create: %w", err)
			}
			key = strings.TrimSpace(string(out))
		}
		args := append([]string{"serve", "--config", cfg, "--listen", t.addr, "--log-level", "warn", "--log-format", "json"}, state...)
		if t.up.oauth {
			args = append(args, "--safehttp-allow", loopback) // the bench authorization server is plain http on loopback
		}
		if t.proc, err = start(ctx, h.dir, name, nil, bin, args...); err != nil {
			return nil, err
		}
		h.procs = append(h.procs, t.proc)
		if t.ready, err = waitReadyz(ctx, t.proc, t.addr); err != nil {
			return nil, err
		}
		gw := "http://" + t.addr
		switch name {
		case "mcpgate-apikey-oauth", "mcpgate-refresh":
			if err := connectWithAPIKey(ctx, gw, key); err != nil {
				return nil, fmt.Errorf("connecting the upstream: %w", err)
			}
			t.header = "Authorization: Bearer " + key + "\r\n"
		case "mcpgate-signin-oauth":
			tok, err := signIn(ctx, gw)
			if err != nil {
				return nil, fmt.Errorf("signing in: %w", err)
			}
			t.header = "Authorization: Bearer " + tok + "\r\n"
		}
		return t, waitReady(ctx, t.proc, load{addr: t.addr, path: "/mcp", header: t.header})
	}
	upBase := "http://" + t.up.addr
	switch name {
	case "bare":
		t.proc, err = start(ctx, h.dir, name, nil, h.self, "bareproxy", "-listen", t.addr, "-upstream", upBase)
	case "bare-idle":
		// mcpgate serve's keep-alive idle timeout: the server arms a read deadline after
		// every request, which the tuned bare proxy (no idle timeout) does not pay.
		t.proc, err = start(ctx, h.dir, name, nil, h.self, "bareproxy", "-idle-timeout", "120s", "-listen", t.addr, "-upstream", upBase)
	case "bare-stdlib":
		t.proc, err = start(ctx, h.dir, name, nil, h.self, "bareproxy", "-stdlib", "-listen", t.addr, "-upstream", upBase)
	case "caddy":
		cf := filepath.Join(h.dir, "Caddyfile")
		if err := os.WriteFile(cf, []byte(caddyfile(t.addr, t.up.addr)), 0o644); err != nil {
			return nil, err
		}
		env := []string{"XDG_DATA_HOME=" + filepath.Join(h.dir, "caddy-data"), "XDG_CONFIG_HOME=" + filepath.Join(h.dir, "caddy-config"), "HOME=" + h.dir}
		t.proc, err = start(ctx, h.dir, name, env, o.caddy, "run", "--config", cf, "--adapter", "caddyfile")
	case "nginx":
		nd := filepath.Join(h.dir, "nginx")
		if err := os.MkdirAll(nd, 0o755); err != nil {
			return nil, err
		}
		conf := filepath.Join(nd, "nginx.conf")
		if err := os.WriteFile(conf, []byte(nginxConf(nd, t.addr, t.up.addr, nginxConnections(o.streams))), 0o644); err != nil {
			return nil, err
		}
		t.proc, err = start(ctx, h.dir, name, nil, o.nginx, "-p", nd, "-c", conf, "-e", filepath.Join(nd, "error.log"))
	}
	if err != nil {
		return nil, err
	}
	h.procs = append(h.procs, t.proc)
	return t, waitReady(ctx, t.proc, load{addr: t.addr, path: "/mcp"})
}

// measure runs a warm-up, then the measured load, reading the CPU counters of the proxy, the
// upstream and this process around the measured window only (and, around them, the auth-path
// counters).
func measure(ctx context.Context, o options, t *target, workload string, pg *pgCluster) (measurement, error) {
	l := load{addr: t.addr, path: "/mcp", sse: isSSE(workload), header: t.header, concurrency: o.concurrency, duration: o.warmup}
	if workload == "latency" || workload == "sse-latency" {
		l.concurrency = 1
	}
	if o.warmup > 0 {
		if s := l.run(ctx); s.requests == 0 {
			return measurement{}, fmt.Errorf("%s: warm-up: no successful request (%d errors, first: %v)", t.name, s.errors, s.firstErr)
		}
	}
	l.duration = o.duration
	c0, err := readCounters(ctx, t, pg)
	if err != nil {
		return measurement{}, err
	}
	var db0, db1 map[int]time.Duration
	if t.db != "" {
		if db0, err = pg.backendCPU(ctx, t.db); err != nil {
			return measurement{}, err
		}
	}
	up := t.up.proc
	p0, err1 := cpuTime(t.proc.pid())
	u0, err2 := cpuTime(up.pid())
	s0, err3 := cpuTime("self")
	s := l.run(ctx)
	p1, err4 := cpuTime(t.proc.pid())
	u1, err5 := cpuTime(up.pid())
	s1, err6 := cpuTime("self")
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
		return measurement{}, fmt.Errorf("%s: reading CPU time: %w", t.name, err)
	}
	dbCPU := time.Duration(-1)
	if t.db != "" {
		if db1, err = pg.backendCPU(ctx, t.db); err != nil {
			return measurement{}, err
		}
		dbCPU = cpuDelta(db0, db1)
	}
	c1, err := readCounters(ctx, t, pg)
	if err != nil {
		return measurement{}, err
	}
	if s.requests == 0 {
		return measurement{}, fmt.Errorf("%s: no successful request (%d errors, first: %v)", t.name, s.errors, s.firstErr)
	}
	return measurement{s: s, proxyCPU: p1 - p0, upstreamCPU: u1 - u0, loadgenCPU: s1 - s0, dbCPU: dbCPU, c: c1.sub(c0)}, nil
}

func environment(o options, targets []*target, db string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "machine: %d CPUs (%s), %s, %s/%s, Go %s; load average before the run: %s\n",
		runtime.NumCPU(), cpuModel(), memTotal(), runtime.GOOS, runtime.GOARCH, strings.TrimPrefix(runtime.Version(), "go"), loadAverage())
	fmt.Fprintf(&b, "load: %d connections (latency workload: 1), %d rounds × %s per target and workload (after %s warm-up), targets interleaved in the order %s\n",
		o.concurrency, o.rounds, o.duration, o.warmup, strings.Join(names(targets), ", "))
	fmt.Fprintf(&b, "request: POST /mcp tools/call (%d-byte body); JSON answer %d-byte text result; SSE answer = progress event, %s pause, result event",
		len(upstream.ToolsCall), upstream.ResultTextSize, o.sseDelay)
	for _, t := range targets {
		if t.name == "nginx" || t.name == "caddy" {
			fmt.Fprintf(&b, "\n%s: %s", t.name, toolVersion(t))
		}
	}
	if slices.ContainsFunc(targets, func(t *target) bool { return onAuthPath(t.name) }) {
		fmt.Fprintf(&b, "\nauth-path targets' store: %s", db)
		if db == "postgres" {
			b.WriteString(" (throwaway cluster on loopback, fsync off, pg_stat_statements)")
		}
		if slices.ContainsFunc(targets, func(t *target) bool { return t.name == "mcpgate-refresh" }) {
			fmt.Fprintf(&b, "; mcpgate-refresh's upstream tokens live %s", o.refreshTTL)
		}
	}
	return b.String()
}

func names(ts []*target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.name)
	}
	return out
}

func toolVersion(t *target) string {
	var out []byte
	if t.name == "nginx" {
		out, _ = exec.Command(t.proc.cmd.Path, "-v").CombinedOutput()
	} else {
		out, _ = exec.Command("go", "version", "-m", t.proc.cmd.Path).CombinedOutput()
		for line := range strings.SplitSeq(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "mod" {
				return f[1] + " " + f[2]
			}
		}
	}
	return strings.TrimSpace(string(out))
}

// runQuiet runs a command, returning its output in the error when it fails.
func runQuiet(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// ensureCaddy returns a Caddy binary, installing the pinned release with go install when none is
// found (about 3 minutes of compiling on 2 cores, once).
func ensureCaddy(ctx context.Context, path string, logf func(string, ...any)) (string, error) {
	if path != "" {
		return path, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "mcpgate-bench", "bin")
	path = filepath.Join(bin, "caddy")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	logf("installing Caddy %s into %s (go install, a few minutes once) …", caddyVersion, bin)
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/caddyserver/caddy/v2/cmd/caddy@"+caddyVersion)
	cmd.Dir = os.TempDir() // outside this module: its go.mod must not change
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("installing caddy: %w\n%s", err, out)
	}
	return path, nil
}

// ensureNginx returns an nginx binary, installing Debian's package when none is found.
func ensureNginx(ctx context.Context, path string, logf func(string, ...any)) (string, error) {
	if path != "" {
		return path, nil
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("nginx is not installed: apt-get install nginx (or -targets without nginx)")
	}
	logf("installing nginx (apt-get) …")
	if err := runQuiet(ctx, "apt-get", "update", "-qq"); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "nginx")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("installing nginx: %w\n%s", err, out)
	}
	return "/usr/sbin/nginx", nil
}

func splitComma(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
