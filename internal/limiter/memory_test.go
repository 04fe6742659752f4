package limiter

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func take(t *testing.T, m *Memory, key string, l Limit) Result {
	t.Helper()
	r, err := m.Take(context.Background(), key, l)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMemoryWindow(t *testing.T) {
	c := newClock()
	m := NewMemory(MemoryOptions{Now: c.Now})
	l := Limit{Requests: 3, Window: time.Minute}
	for i := range 3 {
		if r := take(t, m, "a", l); !r.Allowed {
			t.Fatalf("event %d refused", i+1)
		}
		c.Add(10 * time.Second)
	}
	r := take(t, m, "a", l)
	if r.Allowed || r.RetryAfter != 30*time.Second {
		t.Fatalf("4th event: %+v, want refused with 30s to wait (the window opened at the first event)", r)
	}
	if p := m.Peek("a", l); p.Allowed || p.RetryAfter != 30*time.Second {
		t.Errorf("Peek = %+v", p)
	}
	if r := take(t, m, "b", l); !r.Allowed {
		t.Error("another key is refused")
	}
	c.Add(30*time.Second - time.Nanosecond)
	if r := take(t, m, "a", l); r.Allowed || r.RetryAfter != time.Millisecond {
		t.Errorf("just before the window ends: %+v", r)
	}
	c.Add(time.Nanosecond)
	for i := range 3 {
		if r := take(t, m, "a", l); !r.Allowed {
			t.Fatalf("new window: event %d refused", i+1)
		}
	}
	if r := take(t, m, "a", l); r.Allowed || r.RetryAfter != time.Minute {
		t.Errorf("new window, 4th event: %+v", r)
	}
}

func TestMemoryPeekAndReset(t *testing.T) {
	c := newClock()
	m := NewMemory(MemoryOptions{Now: c.Now})
	l := Limit{Requests: 2, Window: time.Minute}
	for range 5 {
		if !m.Peek("a", l).Allowed {
			t.Fatal("Peek counted")
		}
	}
	take(t, m, "a", l)
	take(t, m, "a", l)
	if m.Peek("a", l).Allowed {
		t.Fatal("Peek allows past the limit")
	}
	m.Reset("a")
	if !m.Peek("a", l).Allowed || m.Len() != 0 {
		t.Errorf("after Reset: allowed %v, %d keys", m.Peek("a", l).Allowed, m.Len())
	}
	c.Add(time.Hour)
	take(t, m, "b", l)
	c.Add(time.Hour)
	m.Peek("b", l) // an ended window is forgotten when seen
	if m.Len() != 0 {
		t.Errorf("%d keys after their windows ended", m.Len())
	}
}

// TestMemoryIsBounded: however many keys act, at most MaxKeys are remembered, the least recently
// counted forgotten first; a key that keeps acting stays, and stays limited.
func TestMemoryIsBounded(t *testing.T) {
	c := newClock()
	const size = 1000
	m := NewMemory(MemoryOptions{MaxKeys: size, Now: c.Now})
	l := Limit{Requests: 3, Window: time.Hour}
	key := func(i int) string { return fmt.Sprintf("k%d", i) }
	hot := key(0)
	for i := range 5 * size {
		if i%(size/2) == 0 {
			take(t, m, hot, l) // ten times in all, past its limit
		}
		take(t, m, key(i+1), l)
	}
	if m.Len() != size {
		t.Fatalf("%d keys remembered, want %d", m.Len(), size)
	}
	if r := take(t, m, hot, l); r.Allowed {
		t.Error("a key that kept acting was forgotten")
	}
	if !m.Peek(key(1), l).Allowed || m.Len() != size {
		t.Error("the least recently counted key is still remembered")
	}
}

func TestMemoryConcurrentIsExact(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	l := Limit{Requests: 100, Window: time.Hour}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if r, _ := m.Take(context.Background(), "k", l); r.Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 100 {
		t.Errorf("%d of 400 allowed, want exactly 100", allowed)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{{time.Millisecond, 1}, {time.Second, 1}, {time.Second + time.Millisecond, 2}, {90 * time.Second, 90}} {
		if got := RetryAfterSeconds(tc.d); got != tc.want {
			t.Errorf("RetryAfterSeconds(%s) = %d, want %d", tc.d, got, tc.want)
		}
	}
}
