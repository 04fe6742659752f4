package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy"
)

// lifecycleLog records the lifecycle calls of the modules of one test.
type lifecycleLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *lifecycleLog) add(s string) { l.mu.Lock(); l.calls = append(l.calls, s); l.mu.Unlock() }

// staged is an inbound policy that records Provision and Cleanup and fails Provision on demand.
type staged struct {
	name string
	fail bool
	log  *lifecycleLog
}

func (s *staged) Provision(context.Context, *policy.Env) error {
	s.log.add("provision " + s.name)
	if s.fail {
		return errors.New("cannot reach its key server")
	}
	return nil
}

func (s *staged) Cleanup() error { s.log.add("cleanup " + s.name); return nil }

func (s *staged) HandleRequest(*policy.Context, *http.Request) (*http.Response, error) {
	return nil, nil
}

// TestFailedProvisionCleansUp: when a module's Provision fails, New cleans up that module (it may
// have acquired something before failing) and every module provisioned before it, and none that
// was never provisioned; the error names the policy.
func TestFailedProvisionCleansUp(t *testing.T) {
	log := &lifecycleLog{}
	policies := map[string]*config.Policy{
		"first":  pol("first", &staged{name: "first", log: log}),
		"broken": pol("broken", &staged{name: "broken", fail: true, log: log}),
		"later":  pol("later", &staged{name: "later", log: log}),
	}
	p := &config.Project{Routes: []*config.Route{mcpRoute("/mcp/a", "first", "broken", "later")}, Policies: policies}
	_, err := New(context.Background(), p, Settings{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), `provisioning policy "broken": cannot reach its key server`) {
		t.Fatalf("New: %v", err)
	}
	want := []string{"provision first", "provision broken", "cleanup broken", "cleanup first"}
	if !slices.Equal(log.calls, want) {
		t.Fatalf("lifecycle calls %q, want %q", log.calls, want)
	}
}

// TestModulesGetTheHost: Provision receives the Host the gateway was given, with URLs, Register
// and Authenticate filled in.
func TestModulesGetTheHost(t *testing.T) {
	var got *policy.Env
	rec := &envRecorder{got: &got}
	host := &policy.Host{}
	p := &config.Project{Routes: []*config.Route{mcpRoute("/mcp/a", "rec")}, Policies: map[string]*config.Policy{"rec": pol("rec", rec)}}
	srv, err := New(context.Background(), p, Settings{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Host: host})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if got == nil || got.Host != host || host.URLs == nil || host.Register == nil || host.Authenticate == nil || got.Name != "rec" {
		t.Fatalf("env %+v, host %+v", got, host)
	}
}

type envRecorder struct{ got **policy.Env }

func (e *envRecorder) Provision(_ context.Context, env *policy.Env) error { *e.got = env; return nil }
func (e *envRecorder) HandleRequest(*policy.Context, *http.Request) (*http.Response, error) {
	return nil, nil
}
