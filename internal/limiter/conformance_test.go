package limiter

import (
	"context"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testutil/redistest"
)

// taker is what every limiter offers its callers.
type taker interface {
	Take(ctx context.Context, key string, l Limit) (Result, error)
}

// TestConformance runs the same contract against every implementation: within one process each
// is exact, keys are independent, each key has its own limit, and a refusal says how long its
// window has left.
func TestConformance(t *testing.T) {
	impls := []struct {
		name string
		new  func(t *testing.T) taker
	}{
		{"memory", func(*testing.T) taker { return NewMemory(MemoryOptions{}) }},
		{"redis", func(t *testing.T) taker { return openRedis(t, redistest.Start(t).URL, RedisOptions{}) }},
		{"async", func(t *testing.T) taker {
			a := openRedis(t, redistest.Start(t).URL, RedisOptions{}).Async(AsyncOptions{})
			t.Cleanup(func() { _ = a.Close() })
			return a
		}},
	}
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			lim := impl.new(t)
			ctx := context.Background()
			take := func(key string, l Limit) Result {
				t.Helper()
				r, err := lim.Take(ctx, key, l)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			five := Limit{Requests: 5, Window: time.Minute}
			one := Limit{Requests: 1, Window: 30 * time.Second}
			for i := range 5 {
				if !take("a", five).Allowed {
					t.Fatalf("a: event %d of 5 refused", i+1)
				}
			}
			if !take("b", one).Allowed {
				t.Fatal("b: first event refused (another key)")
			}
			r := take("a", five)
			if r.Allowed || r.RetryAfter <= 0 || r.RetryAfter > time.Minute {
				t.Errorf("a: 6th event %+v, want refused with 0 < RetryAfter ≤ 1m", r)
			}
			r = take("b", one)
			if r.Allowed || r.RetryAfter <= 0 || r.RetryAfter > 30*time.Second {
				t.Errorf("b: 2nd event %+v, want refused with 0 < RetryAfter ≤ 30s", r)
			}
		})
	}
}
