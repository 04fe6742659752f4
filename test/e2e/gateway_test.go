package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// gatewayStartTimeout bounds how long mcpgate serve may take to report ready.
const gatewayStartTimeout = 30 * time.Second

// mcpRoute is one McpProxyHandler route of a test configuration, with no policies.
type mcpRoute struct {
	Path        string // e.g. /mcp/everything
	OperationID string
	Upstream    string // rewritePattern: the upstream's MCP URL
}

// gatewayOptions are the serve settings a test varies.
type gatewayOptions struct {
	// fixedPublicURL sets --public-url to the gateway's own loopback URL; without it the gateway
	// derives its public origin from each request's Host header.
	fixedPublicURL bool
}

// gateway is a running `mcpgate serve`.
type gateway struct {
	// Base is http://127.0.0.1:PORT.
	Base string
	logs *gatewaytest.Buffer
	// exited is closed when the process ends (serveGateway's gateways).
	exited <-chan struct{}
}

// URL returns the gateway URL of path.
func (g *gateway) URL(path string) string { return g.Base + path }

// Logs returns the gateway's log output so far (JSON lines).
func (g *gateway) Logs() string { return g.logs.String() }

// startGateway writes a Zuplo-style project with routes into a temp dir, runs `mcpgate serve` on a
// free loopback port with JSON logs, and returns once /readyz answers 200. The gateway is stopped
// with SIGTERM when the test ends; its logs are printed if the test failed.
func startGateway(t *testing.T, opts gatewayOptions, routes ...mcpRoute) *gateway {
	t.Helper()
	if serveMissing != "" {
		t.Skip(serveMissing)
	}
	dir := t.TempDir()
	cfgDir := filepath.Join(dir, "project")
	writeProject(t, cfgDir, routes)

	args := []string{"serve", "--config", cfgDir, "--data-dir", filepath.Join(dir, "data")}
	if opts.fixedPublicURL {
		// The public URL must be known before the start, so the port is picked here (the tiny window
		// before the gateway binds it again is the price).
		addr := freeLoopbackAddr(t)
		args = append(args, "--listen", addr, "--public-url", "http://"+addr)
	} else {
		// Port 0: the kernel picks; the gateway logs the address it got.
		args = append(args, "--listen", "127.0.0.1:0")
	}
	g, _ := serveGateway(t, args)
	return g
}

// serveGateway runs `mcpgate <args>` with JSON logs, the test process's MCPGATE_* settings removed
// and env added, and returns once it is ready. stop (also run when the test ends) ends it with
// SIGTERM and waits; the logs are printed when the test failed.
func serveGateway(t *testing.T, args []string, env ...string) (g *gateway, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, mcpgateBin, args...)
	cmd.Env = append(append(environWithout("MCPGATE_"), "MCPGATE_LOG_FORMAT=json"), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	done := make(chan struct{})
	g = &gateway{logs: new(gatewaytest.Buffer), exited: done}
	cmd.Stdout, cmd.Stderr = g.logs, g.logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting mcpgate %s: %v", args[0], err)
	}
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("mcpgate %s (exit: %v) logs:\n%s", args[0], waitErr, g.Logs())
		}
	})
	if err := g.waitReady(done); err != nil {
		t.Fatalf("starting mcpgate %s: %v\n%s", args[0], err, g.Logs())
	}
	return g, stop
}

// waitReady polls, with a deadline, for the "mcpgate listening" log line and then for /readyz 200.
func (g *gateway) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(gatewayStartTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if g.Base == "" {
			if addr := listenAddress(g.logs.String()); addr != "" {
				g.Base = "http://" + addr
			}
		}
		if g.Base != "" {
			resp, err := client.Get(g.Base + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		select {
		case <-exited:
			return errors.New("mcpgate serve exited before it was ready")
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s", gatewayStartTimeout)
		}
	}
}

// freeLoopbackAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// listenAddress finds the address of the JSON log line {"msg":"mcpgate listening","address":…}.
func listenAddress(logs string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg     string `json:"msg"`
			Address string `json:"address"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "mcpgate listening" && line.Address != "" {
			return line.Address
		}
	}
	return ""
}

// writeProject writes zuplo.jsonc, config/routes.oas.json and config/policies.json.
func writeProject(t *testing.T, dir string, routes []mcpRoute) {
	t.Helper()
	paths := map[string]any{}
	for _, r := range routes {
		paths[r.Path] = map[string]any{
			"get,post": map[string]any{
				"operationId": r.OperationID,
				"x-zuplo-route": map[string]any{
					"corsPolicy": "none",
					"handler": map[string]any{
						"module":  "$import(@zuplo/runtime/mcp-gateway)",
						"export":  "McpProxyHandler",
						"options": map[string]any{"rewritePattern": r.Upstream},
					},
					"policies": map[string]any{"inbound": []string{}},
				},
			},
		}
	}
	oas := map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "mcpgate e2e", "version": "1"},
		"paths":   paths,
	}
	files := map[string]any{
		"zuplo.jsonc":            map[string]any{"version": 1, "compatibilityDate": "2026-03-01"},
		"config/routes.oas.json": oas,
		"config/policies.json":   map[string]any{"policies": []any{}},
	}
	writeFiles(t, dir, files)
}

// environWithout is the test process's environment minus variables starting with prefix, so a
// developer's own MCPGATE_* settings do not change the gateway under test.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// writeFiles writes each value as indented JSON to its slash-separated path under dir.
func writeFiles(t *testing.T, dir string, files map[string]any) {
	t.Helper()
	for name, v := range files {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
