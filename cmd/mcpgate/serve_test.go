package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// serveProject is a one-route project for serve.
func serveProject(t *testing.T) string {
	return gatewaytest.Project(t, map[string]string{"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{
		"/mcp/demo":{"post":{"operationId":"demo","x-zuplo-route":{"corsPolicy":"none",
			"handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"http://127.0.0.1:9/mcp"}}}}}}}`})
}

// served is a running `mcpgate serve` process (the test binary re-executed, as runCLI does).
type served struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs []map[string]any
	raw  strings.Builder
	done chan struct{}
}

// startServe runs `mcpgate serve args…` in dir with env and waits until it logs "mcpgate listening".
func startServe(t *testing.T, dir string, env []string, args ...string) *served {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCLIProcess$")
	cmd.Dir = dir
	argv, _ := json.Marshal(append([]string{"serve", "--log-format", "json"}, args...))
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "MCPGATE_TEST_RUN_CLI=1", "MCPGATE_TEST_CLI_ARGS=" + string(argv)}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &served{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			s.mu.Lock()
			s.raw.WriteString(sc.Text() + "\n")
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				s.logs = append(s.logs, m)
			}
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
	})
	gatewaytest.Eventually(t, 30*time.Second, "serve listening", func() bool {
		select {
		case <-s.done:
			t.Fatalf("serve exited:\n%s", s.output())
		default:
		}
		return s.log("mcpgate listening") != nil
	})
	return s
}

// log returns the first log record with msg, or nil.
func (s *served) log(msg string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.logs {
		if m["msg"] == msg {
			return m
		}
	}
	return nil
}

func (s *served) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

// loopback turns a listen address (maybe 0.0.0.0 or [::]) into one to dial.
func loopback(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + port
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// runCLIExit is runCLI (environment env added) for a command that must exit by itself: one still running after timeout is
// killed and fails the test (a serve that starts instead of refusing).
func runCLIExit(t *testing.T, dir string, env []string, timeout time.Duration, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperCLIProcess$")
	cmd.Dir = dir
	argv, _ := json.Marshal(args)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "MCPGATE_TEST_RUN_CLI=1", "MCPGATE_TEST_CLI_ARGS=" + string(argv)}, env...)
	var errb strings.Builder
	cmd.Stderr = &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("mcpgate %v still running after %s, want it to exit:\n%s", args, timeout, errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return cliResult{stderr: errb.String(), code: code}
}

// TestServeNeedsPublicURLOffLoopback: on a listener other machines can reach, public URLs built
// from the request's Host would let any client choose them, so serve refuses to start without
// --public-url unless --allow-derived-public-url opts in.
func TestServeNeedsPublicURLOffLoopback(t *testing.T) {
	dir := t.TempDir()
	project := serveProject(t)
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		r := runCLIExit(t, dir, nil, 30*time.Second, "serve", "--config", project, "--listen", listen)
		if r.code != 1 || !strings.Contains(r.stderr, "is not a loopback address") || !strings.Contains(r.stderr, "--public-url (MCPGATE_PUBLIC_URL)") ||
			!strings.Contains(r.stderr, "--allow-derived-public-url (MCPGATE_ALLOW_DERIVED_PUBLIC_URL)") {
			t.Errorf("serve --listen %s without --public-url: exit %d\n%s", listen, r.code, r.stderr)
		}
	}
	for _, listen := range []string{"127.0.0.1", "[::1]", "localhost"} {
		if ok, err := loopbackListen(t.Context(), listen+":9000"); err != nil || !ok {
			t.Errorf("%s: loopback %v %v, want true", listen, ok, err)
		}
	}

	// The opt-in, by its environment variable: serve starts and warns.
	s := startServe(t, dir, []string{"MCPGATE_ALLOW_DERIVED_PUBLIC_URL=true"}, "--config", project, "--listen", "0.0.0.0:0")
	w := s.log("no --public-url: links, redirect URIs and metadata documents are built from each request's Host header " +
		"(and X-Forwarded-Proto/Host from --trusted-proxies); a client that reaches the gateway under another name gets URLs with that name. Set --public-url in production")
	if w == nil || w["level"] != "WARN" {
		t.Fatalf("no start-up warning for derived public URLs:\n%s", s.output())
	}
	addr, _ := s.log("mcpgate listening")["address"].(string)
	if status, body := get(t, "http://"+loopback(t, addr)+"/metrics"); status != 200 || !strings.Contains(body, "mcpgate_audit_rows_written_total") {
		t.Errorf("/metrics on the main listener (no --metrics-listen): %d", status)
	}

	// With --public-url a non-loopback listener starts without the warning.
	s = startServe(t, t.TempDir(), nil, "--config", project, "--listen", "0.0.0.0:0", "--public-url", "https://mcp.example.com")
	if s.log("no --public-url: links, redirect URIs and metadata documents are built from each request's Host header "+
		"(and X-Forwarded-Proto/Host from --trusted-proxies); a client that reaches the gateway under another name gets URLs with that name. Set --public-url in production") != nil {
		t.Error("warned although --public-url is set")
	}
}

// TestServeMetricsListener: with --metrics-listen, /metrics is served there and not on the main
// listener (which MCP clients reach).
func TestServeMetricsListener(t *testing.T) {
	s := startServe(t, t.TempDir(), []string{"MCPGATE_METRICS_LISTEN=127.0.0.1:0"}, "--config", serveProject(t), "--listen", "127.0.0.1:0")
	gatewaytest.Eventually(t, 10*time.Second, "metrics listening", func() bool { return s.log("metrics listening") != nil })
	maddr, _ := s.log("metrics listening")["address"].(string)
	addr, _ := s.log("mcpgate listening")["address"].(string)
	if status, body := get(t, "http://"+maddr+"/metrics"); status != 200 || !strings.Contains(body, "mcpgate_audit_rows_written_total") ||
		!strings.Contains(body, "mcpgate_audit_rows_dropped_total") {
		t.Errorf("GET /metrics on --metrics-listen: %d\n%s", status, body)
	}
	if status, _ := get(t, "http://"+addr+"/metrics"); status != http.StatusNotFound {
		t.Errorf("GET /metrics on the main listener: %d, want 404", status)
	}
	if status, _ := get(t, "http://"+maddr+"/mcp/demo"); status != http.StatusNotFound {
		t.Errorf("the metrics listener serves routes: %d", status)
	}
}

// TestServeAuditRetention: serve deletes audit events older than --audit-retention
// (MCPGATE_AUDIT_RETENTION) at start and hourly after; a negative retention is refused.
func TestServeAuditRetention(t *testing.T) {
	dir := t.TempDir()
	project := serveProject(t)
	if r := runCLIExit(t, dir, nil, 30*time.Second, "serve", "--config", project, "--audit-retention", "-1h"); r.code != 1 || !strings.Contains(r.stderr, "--audit-retention") {
		t.Fatalf("negative retention: exit %d %s", r.code, r.stderr)
	}
	if r := runCLI(t, dir, nil, "keys", "create", "--consumer", "seed"); r.code != 0 { // creates the data dir and its key
		t.Fatalf("keys create: %s", r.stderr)
	}
	dataDir := filepath.Join(dir, ".mcpgate")
	st := openTestStore(t, dataDir, "")
	now := time.Now()
	for _, age := range []time.Duration{72 * time.Hour, 25 * time.Hour, time.Hour} {
		if err := st.AppendAudit(t.Context(), &store.AuditEvent{Time: now.Add(-age), Event: "seeded", Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
	}
	s := startServe(t, dir, []string{"MCPGATE_AUDIT_RETENTION=24h"}, "--config", project, "--listen", "127.0.0.1:0")
	if l := s.log("audit retention"); l == nil || l["keep"] != "24h0m0s" {
		t.Errorf("retention log %v", l)
	}
	gatewaytest.Eventually(t, 10*time.Second, "audit events older than 24h deleted", func() bool {
		evs, err := st.QueryAudit(t.Context(), store.AuditQuery{Event: "seeded"})
		return err == nil && len(evs) == 1 && now.Sub(evs[0].Time) < 2*time.Hour
	})
}

// TestServeRegistryPath: --registry-path (MCPGATE_REGISTRY_PATH) moves the MCP registry; a path
// that is not one, or one that would hide a route, stops serve before it listens.
func TestServeRegistryPath(t *testing.T) {
	dir := t.TempDir()
	project := serveProject(t)
	if r := runCLIExit(t, dir, nil, 30*time.Second, "serve", "--config", project, "--registry-path", "registry"); r.code != 1 ||
		!strings.Contains(r.stderr, `--registry-path: must be an absolute path (/…) or "off", got "registry"`) {
		t.Errorf("relative registry path: exit %d\n%s", r.code, r.stderr)
	}
	hidden := gatewaytest.Project(t, map[string]string{"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{
		"/v0.1/servers":{"get":{"operationId":"servers","x-zuplo-route":{
			"handler":{"module":"$import(@zuplo/runtime)","export":"urlRewriteHandler","options":{"rewritePattern":"http://127.0.0.1:9/servers"}}}}}}}`})
	if r := runCLIExit(t, dir, nil, 30*time.Second, "serve", "--config", hidden, "--registry-path", "/"); r.code != 1 ||
		!strings.Contains(r.stderr, "--registry-path: the registry's /v0.1/ would hide the routes /v0.1/servers; move it or set it to off") {
		t.Errorf("registry at the root over a route /v0.1/servers: exit %d\n%s", r.code, r.stderr)
	}

	s := startServe(t, dir, []string{"MCPGATE_REGISTRY_PATH=/mcp-registry"}, "--config", project, "--listen", "127.0.0.1:0")
	if l := s.log("MCP registry mounted"); l == nil || l["path"] != "/mcp-registry/v0.1/servers" {
		t.Fatalf("registry log %v\n%s", l, s.output())
	}
	addr, _ := s.log("mcpgate listening")["address"].(string)
	if status, body := get(t, "http://"+addr+"/mcp-registry/v0.1/servers"); status != http.StatusOK || !strings.Contains(body, `"name":"1.0.0.127/demo"`) {
		t.Errorf("GET the moved registry: %d %s", status, body)
	}
	if status, _ := get(t, "http://"+addr+"/__mcpgate/registry/v0.1/servers"); status != http.StatusNotFound {
		t.Errorf("GET the default registry path after moving it: %d, want 404", status)
	}
}
