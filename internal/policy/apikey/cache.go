package apikey

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mcpgate/mcpgate/internal/store"
)

// maxCacheEntries bounds the cache; past it, expired entries are dropped first, then arbitrary ones.
const maxCacheEntries = 10000

// keyCache caches key lookups by hash for ttl, unknown keys included (a guessed key is looked up
// once per ttl, not once per request). A revocation or new expiry in the store is therefore seen
// within ttl; expiry itself is checked on every request against the cached record. Concurrent
// misses for one hash share one store lookup. A zero ttl disables caching.
type keyCache struct {
	ttl    time.Duration
	max    int
	lookup func(ctx context.Context, hash []byte) (*store.APIKey, error)
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]cacheEntry
	sf      singleflight.Group
}

type cacheEntry struct {
	key     *known // nil: no such key
	expires time.Time
}

// known is a key as requests use it: the record, and its metadata decoded once (request.user.data,
// shared by every request that presents the key — policy.User.Data is read-only).
type known struct {
	*store.APIKey
	data map[string]any
}

func newKnown(k *store.APIKey) *known {
	if k == nil {
		return nil
	}
	return &known{APIKey: k, data: metadata(k.Metadata)}
}

func newKeyCache(ttl time.Duration, max int, lookup func(context.Context, []byte) (*store.APIKey, error)) *keyCache {
	return &keyCache{ttl: ttl, max: max, lookup: lookup, now: time.Now, entries: map[string]cacheEntry{}}
}

// get returns the key with hash, nil when there is none, or the store's error (never cached).
func (c *keyCache) get(ctx context.Context, hash []byte) (*known, error) {
	if c.ttl <= 0 {
		k, err := c.lookup(ctx, hash)
		return newKnown(k), err
	}
	if k, ok := c.cached(hash); ok {
		return k, nil
	}
	id := string(hash)
	v, err, _ := c.sf.Do(id, func() (any, error) {
		// A caller that missed the cache just before another one filled it finds it here.
		if k, ok := c.cached(hash); ok {
			return k, nil
		}
		// The lookup is shared by every waiter: it must not die with the first caller's request.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		k, err := c.lookup(ctx, hash)
		if err != nil {
			return nil, err
		}
		kn := newKnown(k)
		c.put(id, kn)
		return kn, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*known), nil
}

// cached returns the fresh cache entry for hash (the map is read with the bytes: no key string is
// made on the hot path).
func (c *keyCache) cached(hash []byte) (*known, bool) {
	c.mu.Lock()
	e, ok := c.entries[string(hash)]
	c.mu.Unlock()
	if !ok || !c.now().Before(e.expires) {
		return nil, false
	}
	return e.key, true
}

func (c *keyCache) put(id string, k *known) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for h, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, h)
			}
		}
		for h := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, h)
		}
	}
	c.entries[id] = cacheEntry{key: k, expires: now.Add(c.ttl)}
}
