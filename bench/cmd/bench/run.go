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
	profile     string
	keep        bool
}

// target is one thing the load is sent to.
type target struct {
	name  string
	label string
	addr  string
	proc  *proc // the proxy process whose CPU is counted (the upstream for direct)
}

// measurement is one target × workload × round.
type measurement struct {
	s           *sample
	proxyCPU    time.Duration // CPU the proxy process used during the measured window
	upstreamCPU time.Duration
	loadgenCPU  time.Duration
}

func (m measurement) perRequest(d time.Duration) time.Duration {
	if m.s.requests == 0 {
		return 0
	}
	return d / time.Duration(m.s.requests)
}

var labels = map[string]string{
	"direct":      "direct (no proxy)",
	"mcpgate":     "mcpgate",
	"mcpgate-b":   "mcpgate (-compare build)",
	"bare":        "bare httputil.ReverseProxy (tuned)",
	"bare-stdlib": "httputil.ReverseProxy, defaults",
	"bare-idle":   "bare, tuned, 120 s idle timeout",
	"caddy":       "Caddy " + caddyVersion,
	"nginx":       "nginx",
}

func benchmark(ctx context.Context, o options, stdout, stderr io.Writer) error {
	names := splitComma(o.only)
	for _, n := range names {
		if labels[n] == "" {
			return fmt.Errorf("-targets: unknown target %q (direct, mcpgate, mcpgate-b, bare, bare-idle, bare-stdlib, caddy, nginx)", n)
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
		if w != "json" && w != "sse" && w != "latency" {
			return fmt.Errorf("-workloads: unknown workload %q (json, sse, latency)", w)
		}
	}
	if o.rounds < 1 || o.concurrency < 1 || o.duration <= 0 {
		return errors.New("-rounds, -concurrency and -duration must be positive")
	}
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }

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
	if slices.Contains(names, "mcpgate") && o.mcpgate == "" {
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

	// The upstream first; every target forwards to it.
	upAddr, err := freePort()
	if err != nil {
		return err
	}
	up, err := start(ctx, dir, "upstream", nil, self, "upstream", "-listen", upAddr, "-sse-delay", o.sseDelay.String())
	if err != nil {
		return err
	}
	procs := []*proc{up}
	defer func() {
		for _, p := range slices.Backward(procs) {
			p.stop()
		}
	}()
	if err := waitReady(ctx, up, upAddr, "/mcp"); err != nil {
		return err
	}

	var targets []*target
	for _, name := range names {
		t := &target{name: name, label: labels[name]}
		if name == "direct" {
			t.addr, t.proc = upAddr, up
			targets = append(targets, t)
			continue
		}
		if t.addr, err = freePort(); err != nil {
			return err
		}
		switch name {
		case "mcpgate", "mcpgate-b":
			cfg := filepath.Join(dir, "mcpgate-config")
			if err := upstream.WriteGatewayProject(cfg, "http://"+upAddr+"/mcp"); err != nil {
				return err
			}
			bin := o.mcpgate
			if name == "mcpgate-b" {
				bin = o.compare
			}
			t.proc, err = start(ctx, dir, name, nil, bin, "serve", "--config", cfg, "--listen", t.addr,
				"--data-dir", filepath.Join(dir, name+"-data"), "--log-level", "warn", "--log-format", "json")
		case "bare":
			t.proc, err = start(ctx, dir, name, nil, self, "bareproxy", "-listen", t.addr, "-upstream", "http://"+upAddr)
		case "bare-idle":
			// mcpgate serve's keep-alive idle timeout: the server arms a read deadline after
			// every request, which the tuned bare proxy (no idle timeout) does not pay.
			t.proc, err = start(ctx, dir, name, nil, self, "bareproxy", "-idle-timeout", "120s", "-listen", t.addr, "-upstream", "http://"+upAddr)
		case "bare-stdlib":
			t.proc, err = start(ctx, dir, name, nil, self, "bareproxy", "-stdlib", "-listen", t.addr, "-upstream", "http://"+upAddr)
		case "caddy":
			cf := filepath.Join(dir, "Caddyfile")
			if err := os.WriteFile(cf, []byte(caddyfile(t.addr, upAddr)), 0o644); err != nil {
				return err
			}
			env := []string{"XDG_DATA_HOME=" + filepath.Join(dir, "caddy-data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "caddy-config"), "HOME=" + dir}
			t.proc, err = start(ctx, dir, name, env, o.caddy, "run", "--config", cf, "--adapter", "caddyfile")
		case "nginx":
			nd := filepath.Join(dir, "nginx")
			if err := os.MkdirAll(nd, 0o755); err != nil {
				return err
			}
			conf := filepath.Join(nd, "nginx.conf")
			if err := os.WriteFile(conf, []byte(nginxConf(nd, t.addr, upAddr)), 0o644); err != nil {
				return err
			}
			t.proc, err = start(ctx, dir, name, nil, o.nginx, "-p", nd, "-c", conf, "-e", filepath.Join(nd, "error.log"))
		}
		if err != nil {
			return err
		}
		procs = append(procs, t.proc)
		targets = append(targets, t)
	}
	for _, t := range targets {
		if err := waitReady(ctx, t.proc, t.addr, "/mcp"); err != nil {
			return err
		}
	}

	env := environment(o, targets)
	logf("%s", env)
	est := time.Duration(o.rounds*len(workloads)*len(targets)) * (o.duration + o.warmup)
	logf("running %d rounds × %d workloads × %d targets (about %s) …", o.rounds, len(workloads), len(targets), est.Round(time.Second))

	results := map[string]map[string][]measurement{} // workload → target → rounds
	for _, w := range workloads {
		results[w] = map[string][]measurement{}
	}
	for round := 1; round <= o.rounds; round++ {
		for _, w := range workloads {
			for _, t := range targets {
				var prof *profiler
				if o.profile != "" && round == 1 && t.name != "direct" {
					if prof, err = startProfile(ctx, o.profile, t, w, o.duration); err != nil {
						return err
					}
				}
				m, err := measure(ctx, o, t, up, w)
				if perr := prof.wait(); perr != nil {
					logf("%v", perr)
				}
				if err != nil {
					return err
				}
				results[w][t.name] = append(results[w][t.name], m)
				line := fmt.Sprintf("round %d %-4s %-8s %8.0f req/s  p50 %-8s p99 %-8s proxy CPU %s/req",
					round, w, t.name, m.s.rps(), us(percentile(m.s.latency, 50)), us(percentile(m.s.latency, 99)), us(m.perRequest(m.proxyCPU)))
				if w == "sse" {
					line += fmt.Sprintf("  TTFE p50 %s", us(percentile(m.s.ttfe, 50)))
				}
				if m.s.errors > 0 {
					line += fmt.Sprintf("  %d errors (first: %v)", m.s.errors, m.s.firstErr)
				}
				logf("%s", line)
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	var report bytes.Buffer
	writeReport(&report, o, env, workloads, targets, results)
	if _, err := stdout.Write(report.Bytes()); err != nil {
		return err
	}
	if o.out != "" {
		return os.WriteFile(o.out, report.Bytes(), 0o644)
	}
	return nil
}

// measure runs a warm-up, then the measured load, reading the CPU counters of the proxy, the
// upstream and this process around the measured window only.
func measure(ctx context.Context, o options, t *target, up *proc, workload string) (measurement, error) {
	l := load{addr: t.addr, path: "/mcp", sse: workload == "sse", concurrency: o.concurrency, duration: o.warmup}
	if workload == "latency" {
		l.concurrency = 1
	}
	if o.warmup > 0 {
		if s := l.run(ctx); s.requests == 0 {
			return measurement{}, fmt.Errorf("%s: warm-up: no successful request (%d errors, first: %v)", t.name, s.errors, s.firstErr)
		}
	}
	l.duration = o.duration
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
	if s.requests == 0 {
		return measurement{}, fmt.Errorf("%s: no successful request (%d errors, first: %v)", t.name, s.errors, s.firstErr)
	}
	return measurement{s: s, proxyCPU: p1 - p0, upstreamCPU: u1 - u0, loadgenCPU: s1 - s0}, nil
}

func environment(o options, targets []*target) string {
	var b strings.Builder
	fmt.Fprintf(&b, "machine: %d CPUs (%s), %s/%s, Go %s; load average before the run: %s\n",
		runtime.NumCPU(), cpuModel(), runtime.GOOS, runtime.GOARCH, strings.TrimPrefix(runtime.Version(), "go"), loadAverage())
	fmt.Fprintf(&b, "load: %d connections (latency workload: 1), %d rounds × %s per target and workload (after %s warm-up), targets interleaved in the order %s\n",
		o.concurrency, o.rounds, o.duration, o.warmup, strings.Join(names(targets), ", "))
	fmt.Fprintf(&b, "request: POST /mcp tools/call (%d-byte body); JSON answer %d-byte text result; SSE answer = progress event, %s pause, result event",
		len(upstream.ToolsCall), upstream.ResultTextSize, o.sseDelay)
	for _, t := range targets {
		if t.name == "nginx" || t.name == "caddy" {
			fmt.Fprintf(&b, "\n%s: %s", t.name, toolVersion(t))
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
