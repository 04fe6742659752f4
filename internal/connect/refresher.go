package connect

import (
	"context"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
)

// The background refresher keeps recently used connections fresh ahead of their next request: every
// BackgroundInterval it refreshes each connection this instance used within RecentUse whose token
// becomes due before the next tick. It goes through the same per-connection singleflight, store
// lease and re-read as a request (docs/architecture.md#background-refresh), so several instances
// running it still make one refresh per connection, and a request arriving meanwhile joins it.
const (
	// BackgroundInterval is how often the refresher looks.
	BackgroundInterval = 30 * time.Second
	// RecentUse is how long after its last request a connection is kept fresh.
	RecentUse = 30 * time.Minute
)

// ProactiveRetryBackoff is how long after a failed refresh a still-valid token is used without
// trying again (requests whose token has expired still try: they cannot be served otherwise).
const ProactiveRetryBackoff = 5 * time.Second

// noteRefreshFailure remembers when a refresh of key last failed (transient or setup).
func (m *Manager) noteRefreshFailure(key store.ConnectionKey) {
	if e := m.entry(key); e != nil {
		e.failed.Store(m.now().UnixNano())
	}
}

// refreshFailedRecently reports whether a refresh of key failed within ProactiveRetryBackoff.
func (m *Manager) refreshFailedRecently(key store.ConnectionKey) bool {
	e := m.entry(key)
	if e == nil {
		return false
	}
	at := e.failed.Load()
	return at != 0 && m.now().Sub(time.Unix(0, at)) < ProactiveRetryBackoff
}

// RunBackgroundRefresh refreshes recently used connections every interval until ctx ends.
func (m *Manager) RunBackgroundRefresh(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.refreshRecent(ctx, interval)
		}
	}
}

// refreshRecent starts a refresh of every connection used within RecentUse whose cached token
// is due (or expired) before now+horizon, forgets connections unused for longer (their cached
// credential too), and returns how many refreshes it started or joined. It does not wait for them.
func (m *Manager) refreshRecent(ctx context.Context, horizon time.Duration) int {
	now := m.now()
	started := 0
	m.entries.Range(func(k, v any) bool {
		e := v.(*entry)
		if now.Sub(time.Unix(0, e.last.Load())) > RecentUse {
			// Unused for that long: its cached credential goes too (the next request reads the
			// store), so the cache holds the connections in use, not every one ever seen.
			m.entries.Delete(k)
			return true
		}
		t, u := e.tok.Load(), e.use.Load()
		if t == nil || u == nil {
			return true // not connected, revoked, marked for reconsent, or no request used it yet
		}
		if !t.fresh(now.Add(horizon), m.skew) {
			m.refreshAsync(ctx, u.ep, u.up, k.(store.ConnectionKey), t.Version, "background")
			started++
		}
		return true
	})
	return started
}
