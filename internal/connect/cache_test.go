package connect

import (
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// TestCacheEntryLifecycle: a request finds its connection's cached credential and use in one
// entry; a request under a reloaded configuration moves the background refresher onto it; an entry
// unused for RecentUse is forgotten with its credential (the cache holds the connections in use),
// one used within it is kept.
func TestCacheEntryLifecycle(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	m := &Manager{now: func() time.Time { return now }, skew: DefaultRefreshSkew}
	alice := store.ConnectionKey{UpstreamID: "linear", Mode: store.ModeUser, Subject: "apikey|alice"}
	bob := store.ConnectionKey{UpstreamID: "linear", Mode: store.ModeUser, Subject: "apikey|bob"}
	ep := upstream.Endpoints{PublicURL: "https://gw.example", BasePath: "/__mcpgate"}
	before, reloaded := &Upstream{}, &Upstream{}

	e := m.use(ep, before, alice, now)
	tok := &Token{Expiry: now.Add(24 * time.Hour)}
	m.setCached(alice, tok)
	if got := m.use(ep, before, alice, now); got != e || got.tok.Load() != tok {
		t.Fatalf("the second request found another entry or no credential")
	}
	if u := m.use(ep, reloaded, alice, now).use.Load(); u.up != reloaded || u.ep != ep {
		t.Fatalf("after a reload the refresher would use %p, want the new configuration %p", u.up, reloaded)
	}
	if m.cached(bob) != nil || m.entry(bob) != nil {
		t.Fatal("a user without requests has an entry")
	}
	m.setCached(bob, &Token{Expiry: now.Add(24 * time.Hour)}) // cached by a refresh, no request yet

	now = now.Add(RecentUse / 2)
	m.use(ep, reloaded, alice, now)
	if n := m.refreshRecent(t.Context(), time.Minute); n != 0 {
		t.Fatalf("%d refreshes of fresh tokens", n)
	}
	if m.cached(alice) != tok || m.cached(bob) == nil {
		t.Fatal("entries used (or cached) within RecentUse were forgotten")
	}
	now = now.Add(RecentUse/2 + time.Second)
	m.refreshRecent(t.Context(), time.Minute)
	if m.cached(alice) != tok {
		t.Fatal("alice, used RecentUse/2 ago, was forgotten")
	}
	if m.entry(bob) != nil {
		t.Fatal("bob's entry, untouched for longer than RecentUse, is still held")
	}
	now = now.Add(RecentUse)
	m.refreshRecent(t.Context(), time.Minute)
	if m.entry(alice) != nil || m.cached(alice) != nil {
		t.Fatal("alice's entry, unused for longer than RecentUse, is still held")
	}
	m.dropCached(alice) // nothing to drop: no panic, no entry made
	if m.entry(alice) != nil {
		t.Fatal("dropCached made an entry")
	}
}

// cached returns key's cached credential, or nil.
func (m *Manager) cached(key store.ConnectionKey) *Token {
	if e := m.entry(key); e != nil {
		return e.tok.Load()
	}
	return nil
}
