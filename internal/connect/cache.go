package connect

import (
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// entry is what this instance keeps of one connection: its cached credential and, while requests
// use it, what the background refresher needs to refresh it as the last request would have. A
// request finds all of it with one map read (Manager.entries, keyed by the store.ConnectionKey
// itself: no key string is built on the hot path).
type entry struct {
	tok atomic.Pointer[Token] // nil: nothing cached (never read, not connected, revoked, reconsent)
	use atomic.Pointer[usage] // nil: no request used it yet (cached by a refresh or a connect)
	// last is when a request last used the connection (unix nanoseconds).
	last atomic.Int64
	// failed is when a refresh last failed (unix nanoseconds, 0: never): proactive refreshes
	// back off for ProactiveRetryBackoff.
	failed atomic.Int64
}

// usage is how the last request reached a connection: the endpoints and the upstream
// configuration a refresh must use (a reload replaces the *Upstream; the next request moves the
// refresher onto it).
type usage struct {
	ep upstream.Endpoints
	up *Upstream
}

// entry returns key's entry, or nil.
func (m *Manager) entry(key store.ConnectionKey) *entry {
	if v, ok := m.entries.Load(key); ok {
		return v.(*entry)
	}
	return nil
}

// entryFor returns key's entry, adding it when missing.
func (m *Manager) entryFor(key store.ConnectionKey) *entry {
	if e := m.entry(key); e != nil {
		return e
	}
	n := &entry{}
	n.last.Store(m.now().UnixNano()) // kept RecentUse from now, like a used one
	v, _ := m.entries.LoadOrStore(key, n)
	return v.(*entry)
}

// use returns key's entry for a request at now, recording the use (on the hot path: one map read,
// an atomic store, and a pointer swap only when the request came through other endpoints or
// another configuration than the last).
func (m *Manager) use(ep upstream.Endpoints, up *Upstream, key store.ConnectionKey, now time.Time) *entry {
	e := m.entryFor(key)
	e.last.Store(now.UnixNano())
	if u := e.use.Load(); u == nil || u.up != up || u.ep != ep {
		e.use.Store(&usage{ep: ep, up: up})
	}
	return e
}

// setCached caches t as key's credential.
func (m *Manager) setCached(key store.ConnectionKey, t *Token) { m.entryFor(key).tok.Store(t) }

// dropCached forgets key's cached credential: the next request reads the store.
func (m *Manager) dropCached(key store.ConnectionKey) {
	if e := m.entry(key); e != nil {
		e.tok.Store(nil)
	}
}
