package connect

import (
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// Staging collects the upstreams of a configuration being loaded by a reload
// (docs/architecture.md#reloading-the-configuration). Its Attach registers nothing with the
// manager: until Commit, the manager's pages and the background refresher keep the upstreams of
// the configuration being served, and a configuration that fails to load leaves no trace.
//
// Requests of the replaced configuration keep the *Upstream their policy attached, so they finish
// with the settings they started with. Stored connections are keyed by upstream id and stay; so do
// the in-memory caches keyed by it.
type Staging struct {
	m *Manager

	mu        sync.Mutex
	upstreams map[string]*Upstream
}

// Stage starts collecting the upstreams of a new configuration.
func (m *Manager) Stage() *Staging {
	return &Staging{m: m, upstreams: map[string]*Upstream{}}
}

// Attach implements policy.Connections as Manager.Attach does, into the staged set.
func (s *Staging) Attach(spec policy.UpstreamSpec) (policy.Inbound, error) {
	up := &Upstream{UpstreamSpec: spec}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.upstreams[up.ID]; ok {
		return nil, fmt.Errorf("upstream id %q is configured twice", up.ID)
	}
	s.upstreams[up.ID] = up
	return &inject{m: s.m, up: up, authProfileID: up.AuthProfileID()}, nil
}

// Commit makes the staged upstreams the manager's, replacing every upstream it had: an upstream
// the new configuration no longer names is gone from the connect pages and the setup UI (its
// stored connections stay). An upstream whose OAuth settings changed loses its cached discovery,
// so its next connect or refresh discovers the new settings; its client registrations are kept
// (the authorization server still knows them). It returns the ids whose discovery was forgotten.
func (s *Staging) Commit() (changed []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, up := range s.upstreams {
		prev, ok := m.upstreams[id]
		switch {
		case !ok:
		case reflect.DeepEqual(prev.Upstream, up.Upstream):
			// The same upstream: what it said last (its challenge) still holds.
			up.RememberChallenge(prev.Challenge())
		default:
			m.engine.ForgetDiscovery(id)
			changed = append(changed, id)
		}
	}
	m.upstreams = s.upstreams
	slices.Sort(changed)
	return changed
}

var _ policy.Connections = (*Staging)(nil)
