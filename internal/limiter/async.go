package limiter

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultSyncInterval is how often an Async sends its counts to Redis and learns the other
// replicas': the most a window can overshoot is what the replicas allow in one interval before
// they learn of each other's counts.
const DefaultSyncInterval = 250 * time.Millisecond

// errAsyncFull is the answer of an Async that already holds MaxKeys live windows.
var errAsyncFull = fmt.Errorf("%w: too many keys counted locally", ErrUnavailable)

// Async counts events in memory and, every interval, adds the local counts to the Redis counters
// and reads the totals back (async mode): a Take never waits for Redis, at the price of overshooting
// a limit by what the replicas allow between two syncs. While Redis is unavailable each replica
// keeps counting on its own, so the limit becomes per replica until Redis answers again. It is safe
// for concurrent use; Close stops the sync after sending what is pending.
type Async struct {
	r        *Redis
	interval time.Duration
	now      func() time.Time
	max      int

	mu    sync.Mutex
	items map[string]*asyncWindow

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// asyncWindow is one key's window as this replica knows it.
type asyncWindow struct {
	window time.Duration
	end    time.Time
	// known is the total in Redis at the last sync (this replica's sent events included); pending
	// is what this replica allowed since and has not sent yet.
	known, pending int64
	// asked is when the key was last counted or refused. A key is synced while it has pending
	// counts or was asked within activeSyncs intervals, so an idle key costs Redis nothing and a
	// busy one keeps learning the other replicas' counts even while it only refuses.
	asked time.Time
}

// activeSyncs is how many intervals after its last request a key is still synced.
const activeSyncs = 4

// AsyncOptions configure Async.
type AsyncOptions struct {
	// Interval between syncs (DefaultSyncInterval when 0).
	Interval time.Duration
	// MaxKeys bounds the live windows held (DefaultMaxKeys when 0); past it, new keys are
	// ErrUnavailable until windows end.
	MaxKeys int
	// Now is the clock of the local windows (time.Now when nil).
	Now func() time.Time
}

// Async returns a limiter that counts locally and syncs with r in the background until Close.
func (r *Redis) Async(o AsyncOptions) *Async {
	a := &Async{r: r, interval: o.Interval, now: o.Now, max: o.MaxKeys, items: map[string]*asyncWindow{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if a.interval <= 0 {
		a.interval = DefaultSyncInterval
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.max <= 0 {
		a.max = DefaultMaxKeys
	}
	go a.run()
	return a
}

// Take counts one event for key under l against what this replica knows of the total. It does
// no I/O.
func (a *Async) Take(_ context.Context, key string, l Limit) (Result, error) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.items[key]
	if w != nil && !now.Before(w.end) {
		delete(a.items, key)
		w = nil
	}
	if w == nil {
		if len(a.items) >= a.max {
			a.dropEnded(now)
			if len(a.items) >= a.max {
				return Result{}, errAsyncFull
			}
		}
		w = &asyncWindow{window: l.Window, end: now.Add(l.Window)}
		a.items[key] = w
	}
	w.asked = now
	if w.known+w.pending >= int64(l.Requests) {
		return refused(w.end.Sub(now)), nil
	}
	w.pending++
	return Result{Allowed: true}, nil
}

func (a *Async) dropEnded(now time.Time) {
	for k, w := range a.items {
		if !now.Before(w.end) {
			delete(a.items, k)
		}
	}
}

func (a *Async) run() {
	defer close(a.done)
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			a.syncNow()
			return
		case <-t.C:
			a.syncNow()
		}
	}
}

func (a *Async) syncNow() {
	if time.Now().UnixNano() < a.r.pausedUntil.Load() {
		return // counts stay pending and go with a later sync
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*RedisTimeout)
	defer cancel()
	if err := a.sync(ctx); err != nil {
		_ = a.r.failed(fmt.Errorf("syncing local counts: %w", err))
	}
}

// sync sends the pending counts of the windows in use and reads back their totals, in one
// pipeline.
func (a *Async) sync(ctx context.Context) error {
	type item struct {
		key  string
		w    *asyncWindow
		sent int64
	}
	now := a.now()
	a.mu.Lock()
	a.dropEnded(now)
	batch := make([]item, 0, len(a.items))
	active := now.Add(-activeSyncs * a.interval)
	for k, w := range a.items {
		if w.pending > 0 || w.asked.After(active) {
			batch = append(batch, item{k, w, w.pending})
		}
	}
	a.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	run := func() ([]*redis.Cmd, error) {
		pipe := a.r.client.Pipeline()
		cmds := make([]*redis.Cmd, len(batch))
		for i, b := range batch {
			cmds[i] = countScript.EvalSha(ctx, pipe, []string{a.r.prefix + b.key}, b.w.window.Milliseconds(), b.sent)
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// A restarted server forgot the script: load it and send again (nothing was counted).
		if err := countScript.Load(ctx, a.r.client).Err(); err != nil {
			return err
		}
		cmds, err = run()
	}
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, b := range batch {
		v, err := cmds[i].Int64Slice()
		if err != nil || len(v) != 2 {
			continue
		}
		b.w.pending -= b.sent
		if a.items[b.key] != b.w {
			continue // the window ended meanwhile; its successor starts from zero
		}
		b.w.known = v[0]
		if v[1] > 0 {
			b.w.end = now.Add(time.Duration(v[1]) * time.Millisecond) // Redis's window is the one
		}
	}
	return nil
}

// Close sends the pending counts and stops the sync. It does not close the Redis client.
func (a *Async) Close() error {
	a.once.Do(func() { close(a.stop) })
	<-a.done
	return nil
}
