package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcpgate/mcpgate/bench/upstream"
)

// Every server the benchmark starts listens on 127.0.0.1 only.
const loopback = "127.0.0.1"

// Timeouts of the process management.
const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
)

// proc is a server process the benchmark started.
type proc struct {
	name    string
	cmd     *exec.Cmd
	log     string        // its stdout+stderr
	exited  chan struct{} // closed once the process has ended and been reaped
	started time.Time     // just before exec
}

func (p *proc) pid() string { return strconv.Itoa(p.cmd.Process.Pid) }

// start runs name with args, output to dir/<name>.log.
func start(ctx context.Context, dir, name string, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(cleanEnv(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{}), started: started}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// cleanEnv is this process's environment without mcpgate's settings (MCPGATE_*): every mcpgate
// the harness starts gets its settings from flags only, so a developer's MCPGATE_DATABASE_URL
// does not send a target to their database.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCPGATE_") {
			env = append(env, kv)
		}
	}
	return env
}

// raiseFileLimit raises this process's open-file limit (inherited by every process it starts) to
// at least n where the hard limit, or root, allows: the streams workload holds two descriptors
// per stream in a proxy.
func raiseFileLimit(n int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	want := uint64(n)
	if l.Cur >= want {
		return nil
	}
	if l.Max < want {
		nl := syscall.Rlimit{Cur: want, Max: want}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nl); err == nil {
			return nil
		}
		want = l.Max
	}
	l.Cur = want
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if want < uint64(n) {
		return fmt.Errorf("open-file limit %d is below the %d the streams workload may need (ulimit -n)", want, n)
	}
	return nil
}

// stop ends the process with SIGTERM (SIGKILL after stopTimeout) and waits for it.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// tail returns the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// freePort returns a loopback port nobody listens on right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", loopback+":0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitReady polls l's address with its JSON and SSE tools/call until both succeed.
func waitReady(ctx context.Context, p *proc, l load) error {
	name, addr := p.name, l.addr
	deadline := time.Now().Add(readyTimeout)
	l.sse = false
	req := l.request()
	l.sse = true
	sseReq := l.request()
	var last error
	for time.Now().Before(deadline) {
		last = probe(ctx, addr, req, sseReq)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.exited:
			return fmt.Errorf("%s exited (%v) before answering\n--- %s ---\n%s", name, p.cmd.ProcessState, p.log, p.tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s at %s did not answer a tools/call: %v\n--- %s ---\n%s", name, addr, last, p.log, p.tail())
}

// readyzPoll is how often waitReadyz asks; it bounds the start-up times' resolution.
const readyzPoll = 2 * time.Millisecond

// waitReadyz polls an mcpgate's GET /readyz until it answers 200 and returns the time since the
// process was started.
func waitReadyz(ctx context.Context, p *proc, addr string) (time.Duration, error) {
	deadline := time.Now().Add(readyTimeout)
	req := []byte("GET /readyz HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n")
	var last error
	for time.Now().Before(deadline) {
		if last = readyz(addr, req); last == nil {
			return time.Since(p.started), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-p.exited:
			return 0, fmt.Errorf("%s exited (%v) before it was ready\n--- %s ---\n%s", p.name, p.cmd.ProcessState, p.log, p.tail())
		case <-time.After(readyzPoll):
		}
	}
	return 0, fmt.Errorf("%s at %s: /readyz did not answer 200: %v\n--- %s ---\n%s", p.name, addr, last, p.log, p.tail())
}

func readyz(addr string, req []byte) error {
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(time.Second))
	if _, err := nc.Write(req); err != nil {
		return err
	}
	var b [12]byte
	if _, err := io.ReadFull(nc, b[:]); err != nil {
		return err
	}
	if string(b[9:12]) != "200" {
		return fmt.Errorf("status %s", b[9:12])
	}
	return nil
}

func probe(ctx context.Context, addr string, reqs ...[]byte) error {
	c, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.close()
	for i, req := range reqs {
		if _, err := c.do(req, i == 1); err != nil {
			return err
		}
	}
	return nil
}

// serveUpstream is the "upstream" subcommand: the bench upstream on addr until SIGTERM; with
// oauth, an OAuth-protected one with its authorization server, issuing tokens of tokenTTL and
// accepting staticKey too (when set).
func serveUpstream(ctx context.Context, addr string, sseDelay time.Duration, oauth bool, tokenTTL time.Duration, staticKey string) error {
	h := &upstream.Handler{SSEDelay: sseDelay}
	if oauth {
		h.Auth = &upstream.AuthServer{Issuer: "http://" + addr, TokenTTL: tokenTTL}
		if staticKey != "" {
			h.Auth.StaticKeys = []string{staticKey}
		}
	}
	return serve(ctx, addr, h, 0)
}

// serveBareProxy is the "bareproxy" subcommand: a plain httputil.ReverseProxy (Rewrite) in front
// of target. Tuned (the default), it has what any careful Go proxy has and mcpgate has too: an
// upstream keep-alive pool as large as mcpgate's, pooled 32 KiB copy buffers, and full duplex
// (without it the server may close the request body under a streaming response, golang/go#40747).
// With stdlib set it is httputil.ReverseProxy with its defaults, except the pool size.
func serveBareProxy(ctx context.Context, addr, target string, stdlib bool, idleTimeout time.Duration) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	t := &http.Transport{
		Proxy:               nil, // loopback only; the environment's proxy settings do not apply
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport: t,
	}
	if stdlib {
		return serve(ctx, addr, rp, idleTimeout)
	}
	rp.BufferPool = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
	return serve(ctx, addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		rp.ServeHTTP(w, r)
	}), idleTimeout)
}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte    { return *b.p.Get().(*[]byte) }
func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

func serve(ctx context.Context, addr string, h http.Handler, idleTimeout time.Duration) error {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idleTimeout}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	return srv.Shutdown(sctx)
}

// caddyfile proxies listen to upstreamAddr, streaming (flush_interval -1), with a keep-alive pool
// as large as the others'. No access log (Caddy logs none unless told).
func caddyfile(listen, upstreamAddr string) string {
	return `{
	admin off
	auto_https off
	persist_config off
	skip_install_trust
}

http://` + listen + ` {
	bind ` + loopback + `
	reverse_proxy ` + upstreamAddr + ` {
		flush_interval -1
		transport http {
			keepalive 90s
			keepalive_idle_conns 512
			keepalive_idle_conns_per_host 512
		}
	}
}
`
}

// nginxConnections is nginx's worker_connections for a run with streams idle streams: each holds
// a client and an upstream connection (nginx, in practice, runs out before twice streams; three
// times is enough). nginx allocates them all at start, so the figure also sets its idle RSS
// (about 0.3 KiB per connection).
func nginxConnections(streams int) int { return max(4096, 3*streams+1024) }

// fileLimit is this process's hard open-file limit (what the processes it starts may raise to).
func fileLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Max > 1<<20 {
		return 1 << 20
	}
	return int(l.Max)
}

// nginxConf is one nginx process (no master, one worker: the load generator and the upstream
// need the other core) with an upstream keep-alive pool and no buffering.
func nginxConf(dir, listen, upstreamAddr string, connections int) string {
	return `daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile ` + strconv.Itoa(min(connections+64, fileLimit())) + `;
pid ` + dir + `/nginx.pid;
error_log ` + dir + `/error.log warn;
events { worker_connections ` + strconv.Itoa(connections) + `; }
http {
	access_log off;
	client_body_temp_path ` + dir + `/client_body;
	proxy_temp_path ` + dir + `/proxy;
	fastcgi_temp_path ` + dir + `/fastcgi;
	uwsgi_temp_path ` + dir + `/uwsgi;
	scgi_temp_path ` + dir + `/scgi;
	keepalive_requests 1000000;
	upstream bench_upstream {
		server ` + upstreamAddr + `;
		keepalive 512;
		keepalive_requests 1000000;
	}
	server {
		listen ` + listen + `;
		location / {
			proxy_pass http://bench_upstream;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
		}
	}
}
`
}
