package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// The Go proxies here have no pprof endpoint (mcpgate serve has none), so the harness profiles
// them from outside with Linux perf, which also sees the kernel's share and works for Caddy and
// nginx alike. Read a profile with
//
//	perf report -i DIR/mcpgate-json.perf.data --no-children --sort symbol
//	perf report -i DIR/mcpgate-json.perf.data --children --sort symbol -g none
//
// and compare it with the bare proxy's (bare-json.perf.data).

// profiler is a running perf record.
type profiler struct {
	cmd  *exec.Cmd
	path string
}

// startProfile records t's process for about d (the measured window follows the warm-up, so the
// recording starts now and runs the warm-up plus d; perf's own start-up eats into the warm-up).
func startProfile(ctx context.Context, dir string, t *target, workload string, d time.Duration) (*profiler, error) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return nil, errors.New("-profile needs Linux perf (apt-get install linux-perf)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, t.name+"-"+workload+".perf.data")
	secs := strconv.FormatFloat((d + time.Second).Seconds(), 'f', 1, 64)
	cmd := exec.CommandContext(ctx, perf, "record", "-F", "999", "-g", "-p", t.proc.pid(), "-o", path, "--", "sleep", secs)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting perf: %w", err)
	}
	return &profiler{cmd: cmd, path: path}, nil
}

// wait waits for the recording to end; a nil profiler is no recording.
func (p *profiler) wait() error {
	if p == nil {
		return nil
	}
	if err := p.cmd.Wait(); err != nil {
		return fmt.Errorf("perf record for %s: %w", p.path, err)
	}
	return nil
}
