// Package redistest runs a throwaway Redis server for a test: redis-server from PATH (or
// MCPGATE_REDIS_SERVER), on a free loopback port, in the test's temp dir, with no persistence (no
// RDB snapshot, no AOF). Each call starts its own server, stopped when the test ends.
//
// Without redis-server installed the test is skipped with a message saying what to install, except
// under CI=true where that is a failure: CI must not pass by skipping. scripts/test installs it.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Package names the Debian package the tests need.
const Package = "redis-server"

// BinEnv names a redis-server binary to use instead of the one in PATH.
const BinEnv = "MCPGATE_REDIS_SERVER"

// Server is a running redis-server.
type Server struct {
	// URL is its redis:// URL (database 0, no password).
	URL    string
	Addr   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has ended (Wait returned)
	dir    string
	port   int
}

// Start starts a redis-server for t and stops it when t ends. It skips t when redis-server is
// missing, unless CI=true, where it fails.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv(BinEnv)
	if bin == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("redistest: redis-server is required in CI: %v (install %s)", err, Package)
			}
			t.Skipf("redistest: skipping, no redis-server in PATH (install %s, or set %s)", Package, BinEnv)
		}
		bin = p
	}
	s := &Server{dir: t.TempDir()}
	if err := s.start(bin); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start(bin string) error {
	var lastErr error
	for range 5 { // a free port may be taken between choosing it and redis-server binding it
		port, err := freePort()
		if err != nil {
			return err
		}
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.URL = "redis://" + s.Addr + "/0"
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", s.dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", filepath.Join(s.dir, "redis.log"),
			"--protected-mode", "no")
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", bin, err)
		}
		s.cmd, s.exited = cmd, make(chan struct{})
		go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(s.exited)
		if lastErr = s.waitReady(10 * time.Second); lastErr == nil {
			return nil
		}
		s.Stop()
	}
	log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return fmt.Errorf("redis-server did not start: %v\n%s", lastErr, log)
}

// waitReady pings until the server answers PONG.
func (s *Server) waitReady(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := s.ping()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-s.exited:
			return fmt.Errorf("redis-server exited: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) ping() error {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Stop stops the server (SIGKILL: there is nothing to save) and waits for it. It may be called
// more than once; a test of an unreachable Redis calls it itself.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
