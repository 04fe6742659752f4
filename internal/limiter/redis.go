package limiter

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis timings.
const (
	// RedisTimeout bounds one call to Redis: a rate limit must not hold a request for long.
	RedisTimeout = 500 * time.Millisecond
	// RedisPause is how long after a failed call Redis is not asked again (every Take answers
	// ErrUnavailable at once): a Redis that is down costs one timeout per pause, not one per request,
	// and its failure is logged about once per pause.
	RedisPause = time.Second
)

// countScript adds ARGV[2] (0 or more) to the counter KEYS[1] and returns the count and the
// milliseconds until it expires. The first event of a window sets the expiry to ARGV[1] ms; a
// counter found without one (written by something else) gets it too. With ARGV[2] = 0 an absent
// counter is read as 0 and not created. Run atomically by Redis, so replicas sharing the server
// count exactly, on the server's clock.
var countScript = redis.NewScript(`
local n
local add = tonumber(ARGV[2])
if add > 0 then
  n = redis.call('INCRBY', KEYS[1], add)
else
  n = tonumber(redis.call('GET', KEYS[1]) or '0')
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// Redis is a fixed-window limiter whose counters live in one Redis server, shared by every
// replica: exact across them (strict mode). Every Take is one round trip. Its keys are prefix +
// the caller's key. It is safe for concurrent use.
type Redis struct {
	client *redis.Client
	prefix string
	// pausedUntil is the UnixNano until which calls are not made after a failure.
	pausedUntil atomic.Int64
	onError     func(error)
}

// RedisOptions configure OpenRedis.
type RedisOptions struct {
	// Prefix starts every key (DefaultRedisPrefix when empty).
	Prefix string
	// OnError is told of every failed call (not of the calls skipped during RedisPause), and of
	// failed syncs of an Async: the caller logs and counts them. Nil: they are dropped.
	OnError func(error)
}

// DefaultRedisPrefix starts the keys of a Redis limiter.
const DefaultRedisPrefix = "mcpgate:ratelimit:"

// OpenRedis connects to the Redis server at url (redis:// or rediss://, as redis.ParseURL reads
// it: user, password, database number, TLS). It does not dial: a Redis that is down at start is
// the same as one that goes down later (see Take).
func OpenRedis(url string, o RedisOptions) (*Redis, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		// Not wrapped: url.Parse errors quote the whole URL, password included.
		return nil, errors.New("parsing the Redis URL: not a redis:// or rediss:// URL (redis://[user:password@]host:port[/db])")
	}
	opt.DialTimeout = RedisTimeout
	opt.ReadTimeout = RedisTimeout
	opt.WriteTimeout = RedisTimeout
	opt.MaxRetries = -1 // a retry would count an event twice; the caller decides what a failure means
	if o.Prefix == "" {
		o.Prefix = DefaultRedisPrefix
	}
	return &Redis{client: redis.NewClient(opt), prefix: o.Prefix, onError: o.OnError}, nil
}

// Ping checks that the server answers (serve logs the outcome at start; a failure does not stop it).
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, RedisTimeout)
	defer cancel()
	return r.client.Ping(ctx).Err()
}

// Addr is the server's host:port (for logs: the URL may hold a password).
func (r *Redis) Addr() string { return r.client.Options().Addr }

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

// Take counts one event for key under l in Redis. When Redis cannot answer it returns
// ErrUnavailable (wrapping the cause on the call that failed) and, for RedisPause, answers
// ErrUnavailable without calling: what that means for the request is the caller's choice.
func (r *Redis) Take(ctx context.Context, key string, l Limit) (Result, error) {
	if time.Now().UnixNano() < r.pausedUntil.Load() {
		return Result{}, ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, RedisTimeout)
	defer cancel()
	n, ttl, err := r.count(ctx, r.prefix+key, l.Window, 1)
	if err != nil {
		return Result{}, r.failed(err)
	}
	if n > int64(l.Requests) {
		return refused(ttl), nil
	}
	return Result{Allowed: true}, nil
}

// count runs countScript on key.
func (r *Redis) count(ctx context.Context, key string, window time.Duration, add int) (int64, time.Duration, error) {
	v, err := countScript.Run(ctx, r.client, []string{key}, window.Milliseconds(), add).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	if len(v) != 2 {
		return 0, 0, fmt.Errorf("count script answered %d values", len(v))
	}
	return v[0], time.Duration(v[1]) * time.Millisecond, nil
}

// failed pauses calls, reports err and returns it as ErrUnavailable.
func (r *Redis) failed(err error) error {
	r.pausedUntil.Store(time.Now().Add(RedisPause).UnixNano())
	err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	if r.onError != nil {
		r.onError(err)
	}
	return err
}
