package main

import (
	"context"
	"fmt"
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
	name   string
	cmd    *exec.Cmd
	log    string        // its stdout+stderr
	exited chan struct{} // closed once the process has ended and been reaped
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
	cmd.Env = append(os.Environ(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
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

// waitReady polls addr with a JSON and an SSE tools/call until both succeed.
func waitReady(ctx context.Context, p *proc, addr, path string) error {
	name := p.name
	deadline := time.Now().Add(readyTimeout)
	req := load{addr: addr, path: path}.request()
	sseReq := load{addr: addr, path: path, sse: true}.request()
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

// serveUpstream is the "upstream" subcommand: the bench upstream on addr until SIGTERM.
func serveUpstream(ctx context.Context, addr string, sseDelay time.Duration) error {
	return serve(ctx, addr, &upstream.Handler{SSEDelay: sseDelay}, 0)
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

// nginxConf is one nginx process (no master, one worker: the load generator and the upstream
// need the other core) with an upstream keep-alive pool and no buffering.
func nginxConf(dir, listen, upstreamAddr string) string {
	return `daemon off;
master_process off;
worker_processes 1;
pid ` + dir + `/nginx.pid;
error_log ` + dir + `/error.log warn;
events { worker_connections 4096; }
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
