package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"testing"

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// scriptRun is a running Node script that prints one JSON object per line, each with a "phase",
// and reads one command per line on its standard input: the conversation the TypeScript-client
// tests have with their scripts.
type scriptRun[T any] struct {
	t      *testing.T
	ctx    context.Context
	name   string
	stdin  io.WriteCloser
	stderr *gatewaytest.Buffer
	lines  chan scriptLine[T]
	exited chan error
}

type scriptLine[T any] struct {
	phase string
	v     T
	raw   string
	err   error
}

// startScript starts cmd (from nodeenv's Command, bound to ctx); cancel runs at cleanup.
func startScript[T any](t *testing.T, ctx context.Context, cancel context.CancelFunc, name string, cmd *exec.Cmd) *scriptRun[T] {
	t.Helper()
	s := &scriptRun[T]{t: t, ctx: ctx, name: name, stderr: &gatewaytest.Buffer{},
		lines: make(chan scriptLine[T]), exited: make(chan error, 1)}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stdin = stdin
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			l := scriptLine[T]{raw: sc.Text()}
			var p struct {
				Phase string `json:"phase"`
			}
			if l.err = json.Unmarshal(sc.Bytes(), &p); l.err == nil {
				l.phase = p.Phase
				l.err = json.Unmarshal(sc.Bytes(), &l.v)
			}
			select {
			case s.lines <- l:
			case <-ctx.Done():
			}
		}
		close(s.lines)
		s.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		cancel()
	})
	return s
}

// next returns the script's next line, failing the test unless its phase is want.
func (s *scriptRun[T]) next(want string) T {
	s.t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			s.t.Fatalf("%s ended before %s: %v\nstderr:\n%s", s.name, want, <-s.exited, s.stderr.String())
		}
		if l.err != nil {
			s.t.Fatalf("%s printed %q, not a JSON line (%v), want phase %s\nstderr:\n%s", s.name, l.raw, l.err, want, s.stderr.String())
		}
		if l.phase != want {
			s.t.Fatalf("%s printed %s, want phase %s\nstderr:\n%s", s.name, l.raw, want, s.stderr.String())
		}
		return l.v
	case <-s.ctx.Done():
		s.t.Fatalf("%s: no %s line in time\nstderr:\n%s", s.name, want, s.stderr.String())
	}
	var zero T
	return zero
}

// say writes one command line to the script.
func (s *scriptRun[T]) say(cmd string) {
	s.t.Helper()
	if _, err := io.WriteString(s.stdin, cmd+"\n"); err != nil {
		s.t.Fatal(err)
	}
}

// finish closes the script's input and expects it to exit cleanly.
func (s *scriptRun[T]) finish() {
	s.t.Helper()
	_ = s.stdin.Close()
	select {
	case err := <-s.exited:
		if err != nil {
			s.t.Errorf("%s: %v\nstderr:\n%s", s.name, err, s.stderr.String())
		}
	case <-s.ctx.Done():
		s.t.Errorf("%s did not exit", s.name)
	}
}
