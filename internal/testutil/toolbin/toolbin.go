// Package toolbin finds the binary of a heavy test tool built by a script of test/tools (Ory Hydra,
// the OpenTelemetry Collector): a path named by an environment variable, else the script's cache.
// Under CI=true a missing binary is an error (scripts/test builds it first); otherwise the script
// runs (it returns at once when its cached binary is up to date), or, with the tool's build
// variable set to 0, the caller skips (an error wrapping ErrSkip).
package toolbin

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// EnvToolsDir overrides the cache directory of the build scripts.
const EnvToolsDir = "MCPGATE_TOOLS_DIR"

// ErrSkip marks a missing binary that the caller should skip on rather than fail.
var ErrSkip = errors.New("test tool binary not available")

// Tool is one test tool and where its binary comes from.
type Tool struct {
	// Name prefixes log lines and is the cached binary's file name ("hydra", "otelcol").
	Name string
	// Title names the tool in the build note ("Ory Hydra").
	Title string
	// EnvBinary names a prebuilt binary; EnvBuild set to 0 skips instead of building.
	EnvBinary, EnvBuild string
	// Script is the build script, relative to the repository root.
	Script string
	// ColdBuild says how long a cold build takes, for the note printed before one.
	ColdBuild string

	once sync.Once
	path string
	err  error
}

// CachePath returns where the build script puts the binary.
func (t *Tool) CachePath() string {
	dir := os.Getenv(EnvToolsDir)
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		dir = filepath.Join(home, ".cache", "mcpgate-tools")
	}
	return filepath.Join(dir, t.Name)
}

// Binary finds the tool's binary as the package documentation describes. logf receives progress
// notes (a cold build takes minutes).
func (t *Tool) Binary(logf func(format string, args ...any)) (string, error) {
	if p := os.Getenv(t.EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", t.EnvBinary, p, err)
		}
		return p, nil
	}
	cached := t.CachePath()
	_, statErr := os.Stat(cached)
	if os.Getenv("CI") == "true" {
		if statErr != nil {
			return "", fmt.Errorf("%s binary %s not found (CI=true): run %s before the tests, or set %s", t.Name, cached, t.Script, t.EnvBinary)
		}
		return cached, nil
	}
	if os.Getenv(t.EnvBuild) == "0" {
		if statErr != nil {
			return "", fmt.Errorf("%w: %s not found and %s=0; run %s or set %s", ErrSkip, cached, t.EnvBuild, t.Script, t.EnvBinary)
		}
		return cached, nil
	}
	t.once.Do(func() { t.path, t.err = t.build(logf) })
	if t.err != nil && statErr == nil {
		// A stale but present binary beats no test at all.
		logf("%s: %v; using the existing %s", t.Name, t.err, cached)
		return cached, nil
	}
	return t.path, t.err
}

// build runs the build script, which prints the binary's path last.
func (t *Tool) build(logf func(format string, args ...any)) (string, error) {
	script, err := findUp(t.Script)
	if err != nil {
		return "", fmt.Errorf("%w: %s not found and %s not found above the working directory; set %s", ErrSkip, t.CachePath(), t.Script, t.EnvBinary)
	}
	if _, err := os.Stat(t.CachePath()); err != nil {
		logf("%s: building %s with %s (cold build: %s on 2 cores; set %s=0 to skip instead)", t.Name, t.Title, script, t.ColdBuild, t.EnvBuild)
	}
	var stdout bytes.Buffer
	cmd := exec.Command(script)
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr // progress now: t.Log output is held back until the test ends
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("running %s: %w", script, err)
	}
	p := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(p, '\n'); i >= 0 {
		p = p[i+1:]
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s printed %q: %w", script, p, err)
	}
	return p, nil
}

// findUp looks for rel in the working directory and its parents.
func findUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
