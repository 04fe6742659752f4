package connect

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/upstream"
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
	if v, ok := m.recent.Load(cacheKey(key)); ok {
		v.(*recentUse).failed.Store(m.now().UnixNano())
	}
}

// refreshFailedRecently reports whether a refresh of key failed within ProactiveRetryBackoff.
func (m *Manager) refreshFailedRecently(key store.ConnectionKey) bool {
	v, ok := m.recent.Load(cacheKey(key))
	if !ok {
		return false
	}
	at := v.(*recentUse).failed.Load()
	return at != 0 && m.now().Sub(time.Unix(0, at)) < ProactiveRetryBackoff
}

// recentUse is what the refresher needs to refresh a connection as its last request would have.
type recentUse struct {
	ep   upstream.Endpoints
	up   *Upstream
	key  store.ConnectionKey
	last atomic.Int64 // unix nanoseconds of the last Lookup
	// failed is when a refresh last failed (unix nanoseconds, 0: never): proactive refreshes
	// back off for ProactiveRetryBackoff.
	failed atomic.Int64
}

// noteUse records a Lookup of key (cheap on the hot path: one map read and an atomic store).
func (m *Manager) noteUse(ep upstream.Endpoints, up *Upstream, key store.ConnectionKey, now time.Time) {
	k := cacheKey(key)
	if v, ok := m.recent.Load(k); ok {
		v.(*recentUse).last.Store(now.UnixNano())
		return
	}
	u := &recentUse{ep: ep, up: up, key: key}
	u.last.Store(now.UnixNano())
	m.recent.Store(k, u)
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
// is due (or expired) before now+horizon, forgets connections unused for longer, and returns how
// many refreshes it started or joined. It does not wait for them.
func (m *Manager) refreshRecent(ctx context.Context, horizon time.Duration) int {
	now := m.now()
	started := 0
	m.recent.Range(func(k, v any) bool {
		u := v.(*recentUse)
		if now.Sub(time.Unix(0, u.last.Load())) > RecentUse {
			m.recent.Delete(k)
			return true
		}
		c, ok := m.cache.Load(k)
		if !ok {
			return true // not connected, revoked or marked for reconsent: nothing to keep fresh
		}
		if t := c.(*Token); !t.fresh(now.Add(horizon), m.skew) {
			m.refreshAsync(ctx, u.ep, u.up, u.key, t.Version, "background")
			started++
		}
		return true
	})
	return started
}
