// Command bench compares mcpgate's proxying cost with a direct call, a bare httputil.ReverseProxy,
// Caddy and nginx, on mcpgate's real request paths side by side: no policies (mcpgate), a static
// upstream key (mcpgate-static), an API key with the caller's own upstream OAuth token
// (mcpgate-apikey-oauth), mcpgate's own sign-in with the same (mcpgate-signin-oauth), and the API-key
// path with upstream tokens so short-lived that the gateway refreshes them under load
// (mcpgate-refresh). The OAuth targets are set up over HTTP the way people set them up: an API key
// from mcpgate keys create, the connect flow through the gateway's pages against a small
// authorization server in the bench upstream, and an MCP client's sign-in with PKCE.
//
// In one run, on loopback, it sends the same MCP tools/call load to each target in turn (direct,
// mcpgate, …, nginx, then again, for several rounds), as JSON and as a short SSE stream at a fixed
// concurrency and as JSON on one connection (unloaded latency), and prints for each target the
// medians over rounds of req/s, p50 and p99 latency, time to first SSE event, and CPU time per
// request of the proxy process (from /proc/<pid>/stat), with ratios to the bare proxy paired
// within rounds. Before the rounds it measures memory per idle SSE stream (-streams of them held
// open through each proxy), mcpgate's cold start to /readyz and idle RSS. The auth-path targets run
// on a throwaway PostgreSQL with pg_stat_statements, which counts their database round trips. The
// issue's targets are printed as PASS/FAIL lines, and -o also writes an SVG chart.
//
//	go run ./bench/cmd/bench               # or bench/run
//	go run ./bench/cmd/bench -rounds 3 -duration 2s -o /tmp/bench.md
//
// It installs what is missing (nginx with apt-get, Caddy with go install into
// $HOME/.cache/mcpgate-bench/bin, or under $XDG_CACHE_HOME) and builds mcpgate from the working
// tree. All traffic stays on 127.0.0.1. The subcommands upstream and bareproxy are the processes it starts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mcpgate/mcpgate/bench/upstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 && (args[0] == "upstream" || args[0] == "bareproxy") {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet(strings.TrimSpace("bench "+sub), flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch sub {
	case "upstream":
		listen := fs.String("listen", loopback+":0", "address to serve on")
		delay := fs.Duration("sse-delay", 0, "pause between the two SSE events (0: default)")
		oauth := fs.Bool("oauth", false, "protect /mcp with the bench OAuth authorization server (served on the same address)")
		ttl := fs.Duration("token-ttl", upstream.DefaultTokenTTL, "with -oauth: lifetime of the access tokens it issues")
		static := fs.String("static-key", "", "with -oauth: a bearer token /mcp accepts as well (a static upstream key)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return serveUpstream(ctx, *listen, *delay, *oauth, *ttl, *static)
	case "bareproxy":
		listen := fs.String("listen", loopback+":0", "address to serve on")
		target := fs.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:8080")
		stdlib := fs.Bool("stdlib", false, "httputil.ReverseProxy's defaults: no buffer pool, no full duplex")
		idle := fs.Duration("idle-timeout", 0, "http.Server IdleTimeout (0: none, the server's default)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return serveBareProxy(ctx, *listen, *target, *stdlib, *idle)
	}
	var o options
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; each runs every target once per workload")
	fs.DurationVar(&o.duration, "duration", 2500*time.Millisecond, "measured time per target, workload and round")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured load before each measurement")
	fs.IntVar(&o.concurrency, "concurrency", 50, "concurrent connections (each sends requests back to back)")
	fs.DurationVar(&o.sseDelay, "sse-delay", 2*time.Millisecond, "upstream pause between the progress event and the result of an SSE answer")
	fs.StringVar(&o.only, "targets", defaultTargets, "targets in the order each round runs them (also: bare-stdlib, httputil.ReverseProxy with its defaults; bare-idle, the tuned bare proxy with mcpgate's 120 s idle timeout)")
	fs.StringVar(&o.workloads, "workloads", "json,sse,latency,streams", "workloads: json and sse (tools/call at -concurrency), latency (JSON, one connection: unloaded latency), sse-latency (SSE, one connection: the first event's latency without queueing; not in the default), streams (memory per idle SSE stream, once, before the others)")
	fs.IntVar(&o.streams, "streams", 2000, "idle SSE streams held open through each proxy by the streams workload (e.g. 10000)")
	fs.StringVar(&o.db, "db", "auto", "store of the auth-path targets (mcpgate-apikey-oauth, -signin-oauth, -refresh): postgres (a throwaway cluster with pg_stat_statements: DB round trips are counted), sqlite, or auto (postgres when installed)")
	fs.DurationVar(&o.refreshTTL, "refresh-ttl", time.Second, "lifetime of the upstream access tokens of mcpgate-refresh (the gateway refreshes ahead of expiry, at two thirds of it)")
	fs.IntVar(&o.coldStarts, "coldstarts", 5, "restarts of mcpgate timed to /readyz (after one start on a fresh data dir); 0: none")
	fs.StringVar(&o.mcpgate, "mcpgate", "", "mcpgate binary (default: built from ./cmd/mcpgate)")
	fs.StringVar(&o.compare, "compare", "", "a second mcpgate binary, measured as target mcpgate-b (A/B of a change)")
	fs.StringVar(&o.caddy, "caddy", "", "caddy binary (default: $HOME/.cache/mcpgate-bench/bin/caddy, installed when missing)")
	fs.StringVar(&o.nginx, "nginx", "", "nginx binary (default: nginx on PATH or /usr/sbin/nginx, apt-get installed when missing)")
	fs.StringVar(&o.out, "o", "", "also write the report (markdown) to this file, and the chart beside it (.svg)")
	fs.StringVar(&o.svg, "svg", "", "write the chart (SVG: CPU per request and p99 per target) to this file (default: -o's name with .svg)")
	fs.StringVar(&o.profile, "profile", "", "record each proxy with Linux perf (call graphs) in round 1 of each workload, into this directory (round 1 then includes perf's overhead)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, logs)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (subcommands: upstream, bareproxy)", fs.Args())
	}
	return benchmark(ctx, o, stdout, stderr)
}
