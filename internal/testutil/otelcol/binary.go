package otelcol

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

// Environment variables that steer where the collector binary comes from, as for Hydra
// (internal/testutil/hydra).
const (
	// EnvBinary names a prebuilt collector (test/tools/build-otelcol.sh's output).
	EnvBinary = "MCPGATE_TEST_OTELCOL"
	// EnvToolsDir overrides the cache directory of test/tools/build-otelcol.sh.
	EnvToolsDir = "MCPGATE_TOOLS_DIR"
	// EnvBuild set to 0 makes tests skip instead of building the collector.
	EnvBuild = "MCPGATE_TEST_OTELCOL_BUILD"

	buildScript = "test/tools/build-otelcol.sh"
)

// errSkip marks a missing binary that the caller should skip on rather than fail.
var errSkip = errors.New("otelcol binary not available")

// CachePath returns where test/tools/build-otelcol.sh puts the binary.
func CachePath() string {
	dir := os.Getenv(EnvToolsDir)
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		dir = filepath.Join(home, ".cache", "mcpgate-tools")
	}
	return filepath.Join(dir, "otelcol")
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary finds the collector: MCPGATE_TEST_OTELCOL, else the cached build. Under CI=true a
// missing binary is an error (scripts/test builds it first); otherwise the build script runs, or
// with MCPGATE_TEST_OTELCOL_BUILD=0 the caller skips (an error wrapping errSkip).
func Binary(logf func(format string, args ...any)) (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	cached := CachePath()
	_, statErr := os.Stat(cached)
	if os.Getenv("CI") == "true" {
		if statErr != nil {
			return "", fmt.Errorf("otelcol binary %s not found (CI=true): run %s before the tests, or set %s", cached, buildScript, EnvBinary)
		}
		return cached, nil
	}
	if os.Getenv(EnvBuild) == "0" {
		if statErr != nil {
			return "", fmt.Errorf("%w: %s not found and %s=0; run %s or set %s", errSkip, cached, EnvBuild, buildScript, EnvBinary)
		}
		return cached, nil
	}
	buildOnce.Do(func() { buildPath, buildErr = runBuildScript(logf) })
	if buildErr != nil && statErr == nil {
		logf("otelcol: %v; using the existing %s", buildErr, cached)
		return cached, nil
	}
	return buildPath, buildErr
}

// runBuildScript runs build-otelcol.sh, which returns at once when the cached binary is up to
// date and builds it otherwise.
func runBuildScript(logf func(format string, args ...any)) (string, error) {
	script, err := findUp(buildScript)
	if err != nil {
		return "", fmt.Errorf("%w: %s not found and %s not found above the working directory; set %s", errSkip, CachePath(), buildScript, EnvBinary)
	}
	if _, err := os.Stat(CachePath()); err != nil {
		logf("otelcol: building the OpenTelemetry Collector with %s (cold build: a few minutes on 2 cores; set %s=0 to skip instead)", script, EnvBuild)
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
