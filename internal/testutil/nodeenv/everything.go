package nodeenv

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// everythingEntry is server-everything's CLI entry point under Dir.
const everythingEntry = "node_modules/@modelcontextprotocol/server-everything/dist/index.js"

// startTimeout bounds how long a Node server may take to listen and answer (about 1 s normally).
const startTimeout = 30 * time.Second

// Server is a running Node server.
type Server struct {
	// Addr is the host:port it listens on (always 127.0.0.1).
	Addr string
	// URL is its MCP endpoint, http://Addr/mcp.
	URL  string
	logs *lockedBuffer
	done chan struct{}
}

// Logs returns what the server printed so far (stdout and stderr interleaved).
func (s *Server) Logs() string { return s.logs.String() }

// Exited is closed when the server process ends.
func (s *Server) Exited() <-chan struct{} { return s.done }

// StartEverything starts @modelcontextprotocol/server-everything in streamableHttp mode on a free
// port of 127.0.0.1 and returns once it answers HTTP. It is stopped when the test ends; its output
// is logged if the test failed.
func (e *Env) StartEverything(t testing.TB) *Server {
	t.Helper()
	return e.StartServer(t, "server-everything", everythingEntry, "streamableHttp")
}

// StartConformanceServer starts node/conformance-server.mjs, a server written to pass every
// @modelcontextprotocol/conformance server scenario, like StartEverything.
func (e *Env) StartConformanceServer(t testing.TB) *Server {
	t.Helper()
	return e.StartServer(t, "conformance-server", "conformance-server.mjs")
}

// StartServer runs node with the Streamable HTTP server script and args, on a free port of
// 127.0.0.1 (PORT=0 and the bind-localhost.cjs preload), and returns once it answers HTTP at /mcp.
// name labels its output, which is logged if the test failed. It is stopped when the test ends.
func (e *Env) StartServer(t testing.TB, name, script string, args ...string) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// PORT=0: the kernel picks a free port; bind-localhost.cjs forces 127.0.0.1 and reports the port.
	cmd := e.Command(ctx, []string{"PORT=0"}, append([]string{"--require", "./bind-localhost.cjs", script}, args...)...)
	s := &Server{logs: new(lockedBuffer), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("nodeenv: starting %s: %v", name, err)
	}
	go func() {
		_ = cmd.Wait() // the exit status of a server we stop is not interesting; its logs are.
		close(s.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, s.Logs())
		}
	})
	if err := s.waitReady(); err != nil {
		t.Fatalf("nodeenv: starting %s: %v\n%s", name, err, s.Logs())
	}
	return s
}

// waitReady polls, with a deadline, first for the listening line and then for any HTTP answer.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if s.Addr == "" {
			if addr, ok := listeningLine(s.logs.String()); ok {
				s.Addr, s.URL = addr, "http://"+addr+"/mcp"
			}
		}
		if s.Addr != "" {
			// GET without a session answers 4xx; any answer means the server is up.
			if resp, err := client.Get(s.URL); err == nil {
				resp.Body.Close()
				return nil
			}
		}
		select {
		case <-s.done:
			return errExited
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering after %s", startTimeout)
		}
	}
}
