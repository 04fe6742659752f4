package limiter

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// DefaultMaxKeys bounds the keys a Memory remembers when MemoryOptions.MaxKeys is 0.
const DefaultMaxKeys = 100_000

// MemoryOptions configure a Memory. The zero value is usable.
type MemoryOptions struct {
	// MaxKeys bounds the keys remembered (DefaultMaxKeys when 0). Past it the least recently
	// counted key is forgotten: a key that keeps acting stays, and memory stays bounded however
	// many addresses a caller uses.
	MaxKeys int
	// Now is the clock (time.Now when nil); tests pass their own.
	Now func() time.Time
}

// Memory is an exact fixed-window limiter in one process's memory, bounded in size (an LRU of
// keys). It is safe for concurrent use.
type Memory struct {
	mu    sync.Mutex
	items map[string]*list.Element // of *window
	order *list.List               // front: most recently counted
	max   int
	now   func() time.Time
}

// window is one key's current window.
type window struct {
	key string
	end time.Time
	n   int
}

// NewMemory returns an empty Memory.
func NewMemory(o MemoryOptions) *Memory {
	m := &Memory{items: map[string]*list.Element{}, order: list.New(), max: o.MaxKeys, now: o.Now}
	if m.max <= 0 {
		m.max = DefaultMaxKeys
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m
}

// Take counts one event for key under l and says whether it is allowed. It never fails; the
// context and error are there so that Memory, Redis and Async answer the same interface.
func (m *Memory) Take(_ context.Context, key string, l Limit) (Result, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.current(key, now)
	if w == nil {
		for len(m.items) >= m.max {
			oldest := m.order.Back()
			m.order.Remove(oldest)
			delete(m.items, oldest.Value.(*window).key)
		}
		w = &window{key: key, end: now.Add(l.Window)}
		m.items[key] = m.order.PushFront(w)
	} else {
		m.order.MoveToFront(m.items[key])
	}
	if w.n >= l.Requests {
		return refused(w.end.Sub(now)), nil
	}
	w.n++
	return Result{Allowed: true}, nil
}

// Peek says whether one more event for key would be allowed under l, counting nothing.
func (m *Memory) Peek(key string, l Limit) Result {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if w := m.current(key, now); w != nil && w.n >= l.Requests {
		return refused(w.end.Sub(now))
	}
	return Result{Allowed: true}
}

// Reset forgets key's window (a successful login clears its address's failures).
func (m *Memory) Reset(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forget(key)
}

// Len is the number of keys remembered.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}

// current is key's window, or nil when it has none or its window ended (then it is forgotten).
func (m *Memory) current(key string, now time.Time) *window {
	el, ok := m.items[key]
	if !ok {
		return nil
	}
	w := el.Value.(*window)
	if !now.Before(w.end) {
		m.forget(key)
		return nil
	}
	return w
}

func (m *Memory) forget(key string) {
	if el, ok := m.items[key]; ok {
		m.order.Remove(el)
		delete(m.items, key)
	}
}
