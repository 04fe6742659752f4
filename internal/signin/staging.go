package signin

import (
	"sync"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// Staging collects the sign-in routes of a configuration being loaded by a reload
// (docs/architecture.md#reloading-the-configuration). Until Commit the server keeps the routes of
// the configuration being served, and a configuration that fails to load leaves no trace. Issued
// tokens, grants and registered clients are in the store and stay valid; identity providers are
// shared by issuer and client, so a kept one keeps its discovery and keys.
type Staging struct {
	s *Server

	mu     sync.Mutex
	routes map[string]*route
	byOp   map[string]*route
}

// Stage starts collecting the sign-in routes of a new configuration.
func (s *Server) Stage() *Staging {
	return &Staging{s: s, routes: map[string]*route{}, byOp: map[string]*route{}}
}

// Attach implements policy.SignIn as Server.Attach does, into the staged set.
func (st *Staging) Attach(spec policy.SignInSpec) (policy.Inbound, error) {
	p, err := st.s.idpOf(spec)
	if err != nil {
		return nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.s.attach(st.routes, st.byOp, spec, p)
}

// Commit makes the staged routes the server's, replacing every route it had.
func (st *Staging) Commit() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	st.s.routes, st.s.byOp = st.routes, st.byOp
}

var _ policy.SignIn = (*Staging)(nil)
