package limiter

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testutil/redistest"
	"github.com/redis/go-redis/v9"
)

func openRedis(t *testing.T, url string, o RedisOptions) *Redis {
	t.Helper()
	r, err := OpenRedis(url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// counter reads a Redis counter directly (0 when absent).
func counter(t *testing.T, r *Redis, key string) int64 {
	t.Helper()
	n, err := r.client.Get(context.Background(), r.prefix+key).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	return n
}

// TestRedisIsExactAcrossClients: three clients (three replicas) on one server allow exactly the
// limit in all, however the events interleave; the refused learn how long the window has left.
func TestRedisIsExactAcrossClients(t *testing.T) {
	srv := redistest.Start(t)
	l := Limit{Requests: 25, Window: time.Minute}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 3 {
		r := openRedis(t, srv.URL, RedisOptions{})
		for range 3 {
			wg.Go(func() {
				for range 20 {
					res, err := r.Take(context.Background(), "k", l)
					if err != nil {
						t.Error(err)
						return
					}
					if res.Allowed {
						allowed.Add(1)
					} else if res.RetryAfter <= 0 || res.RetryAfter > time.Minute {
						t.Errorf("RetryAfter %s", res.RetryAfter)
					}
				}
			})
		}
	}
	wg.Wait()
	if allowed.Load() != 25 {
		t.Errorf("%d of 180 allowed, want exactly 25", allowed.Load())
	}
}

// TestRedisWindowEnds: the window opened by the first event ends on the server's clock; then the
// key may act again.
func TestRedisWindowEnds(t *testing.T) {
	srv := redistest.Start(t)
	r := openRedis(t, srv.URL, RedisOptions{})
	l := Limit{Requests: 2, Window: 200 * time.Millisecond}
	ctx := context.Background()
	for range 2 {
		if res, err := r.Take(ctx, "k", l); err != nil || !res.Allowed {
			t.Fatalf("%+v %v", res, err)
		}
	}
	res, err := r.Take(ctx, "k", l)
	if err != nil || res.Allowed {
		t.Fatalf("third event: %+v %v", res, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := r.Take(ctx, "k", l)
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the window never ended")
		}
		time.Sleep(res.RetryAfter) // as a client honouring Retry-After would
	}
}

// TestRedisUnavailable: a Redis that does not answer is ErrUnavailable, reported once; for
// RedisPause Redis is not asked again, so a dead server costs no timeout per request.
func TestRedisUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	var reported []error
	var mu sync.Mutex
	r := openRedis(t, srv.URL, RedisOptions{OnError: func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }})
	l := Limit{Requests: 5, Window: time.Minute}
	if _, err := r.Take(context.Background(), "k", l); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for i := range 10 {
		start := time.Now()
		_, err := r.Take(context.Background(), "k", l)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("event %d: %v, want ErrUnavailable", i, err)
		}
		if i > 0 && time.Since(start) > 50*time.Millisecond {
			t.Errorf("event %d during the pause took %s", i, time.Since(start))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 1 {
		t.Errorf("%d failures reported, want 1 (the call that failed): %v", len(reported), reported)
	}
}

func TestOpenRedisKeepsPasswordsOutOfErrors(t *testing.T) {
	for _, url := range []string{"http://u:hunter2@host:6379", "redis://u:hunter2@host:notaport", "redis://u:hunter2@host:6379/notadb"} {
		_, err := OpenRedis(url, RedisOptions{})
		if err == nil {
			t.Errorf("%s: no error", url)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error quotes the password: %v", url, err)
		}
	}
}

// TestAsyncConverges: three replicas counting locally allow what each sees as under the limit
// (overshooting it in all, the price of async mode); once they have synced, the Redis total is
// exactly what they allowed, and every replica refuses.
func TestAsyncConverges(t *testing.T) {
	srv := redistest.Start(t)
	l := Limit{Requests: 10, Window: time.Minute}
	ctx := context.Background()
	var replicas []*Async
	for range 3 {
		a := openRedis(t, srv.URL, RedisOptions{}).Async(AsyncOptions{Interval: time.Hour}) // synced by hand below
		t.Cleanup(func() { _ = a.Close() })
		replicas = append(replicas, a)
	}
	allowed := 0
	for _, a := range replicas {
		for range 4 {
			if res, _ := a.Take(ctx, "k", l); res.Allowed {
				allowed++
			}
		}
	}
	if allowed != 12 {
		t.Fatalf("%d allowed before any sync, want 12 (each replica saw 4 of 10)", allowed)
	}
	for range 2 { // the first round sends, the second tells the early ones what the late ones sent
		for _, a := range replicas {
			if err := a.sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := counter(t, replicas[0].r, "k"); n != 12 {
		t.Errorf("Redis total %d, want 12", n)
	}
	for i, a := range replicas {
		if res, _ := a.Take(ctx, "k", l); res.Allowed || res.RetryAfter <= 0 || res.RetryAfter > time.Minute {
			t.Errorf("replica %d after sync: %+v, want refused", i, res)
		}
	}
}

// TestAsyncSyncsInTheBackground: the counts reach Redis without anyone asking, and Close sends
// what is still pending.
func TestAsyncSyncsInTheBackground(t *testing.T) {
	srv := redistest.Start(t)
	r := openRedis(t, srv.URL, RedisOptions{})
	a := r.Async(AsyncOptions{Interval: 10 * time.Millisecond})
	l := Limit{Requests: 100, Window: time.Minute}
	for range 5 {
		_, _ = a.Take(context.Background(), "k", l)
	}
	deadline := time.Now().Add(5 * time.Second)
	for counter(t, r, "k") != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("Redis total %d after 5 s, want 5", counter(t, r, "k"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	b := r.Async(AsyncOptions{Interval: time.Hour})
	_, _ = b.Take(context.Background(), "k", l)
	_ = b.Close()
	_ = a.Close()
	if n := counter(t, r, "k"); n != 6 {
		t.Errorf("Redis total %d after Close, want 6", n)
	}
}

// TestAsyncWithoutRedisCountsLocally: while Redis is down an async replica keeps limiting on its
// own counts.
func TestAsyncWithoutRedisCountsLocally(t *testing.T) {
	srv := redistest.Start(t)
	r := openRedis(t, srv.URL, RedisOptions{})
	srv.Stop()
	a := r.Async(AsyncOptions{Interval: 10 * time.Millisecond})
	t.Cleanup(func() { _ = a.Close() })
	l := Limit{Requests: 3, Window: time.Minute}
	allowed := 0
	for range 10 {
		if res, err := a.Take(context.Background(), "k", l); err == nil && res.Allowed {
			allowed++
		}
	}
	if allowed != 3 {
		t.Errorf("%d allowed, want 3", allowed)
	}
}

// TestAsyncSyncsOnlyKeysInUse: a key is synced while it has pending counts or was asked lately
// (activeSyncs intervals); an idle key, however long its window, costs Redis nothing.
func TestAsyncSyncsOnlyKeysInUse(t *testing.T) {
	srv := redistest.Start(t)
	r := openRedis(t, srv.URL, RedisOptions{})
	c := newClock()
	a := r.Async(AsyncOptions{Interval: time.Hour, Now: c.Now}) // synced by hand
	t.Cleanup(func() { _ = a.Close() })
	ctx := context.Background()
	calls := func() string {
		info, err := r.client.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(info, "\r\n") {
			if strings.HasPrefix(line, "cmdstat_evalsha:") {
				calls, _, _ := strings.Cut(strings.TrimPrefix(line, "cmdstat_evalsha:"), ",")
				return calls
			}
		}
		return "none"
	}
	_, _ = a.Take(ctx, "k", Limit{Requests: 10, Window: 24 * time.Hour})
	if err := countScript.Load(ctx, r.client).Err(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := a.sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := calls(); got != "calls=2" {
		t.Fatalf("EVALSHA %s after two syncs of a key just used, want calls=2", got)
	}
	c.Add(activeSyncs * time.Hour)
	if err := a.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := calls(); got != "calls=2" {
		t.Errorf("EVALSHA %s after a sync of an idle key, want still calls=2", got)
	}
	if n := counter(t, r, "k"); n != 1 {
		t.Errorf("Redis total %d, want 1", n)
	}
}
