// Package limiter counts events per key in fixed windows: the one rate limiter of mcpgate. The
// rate-limit-inbound policy uses it, and so do the gateway's own per-address limits (client
// registration and the API-key login of sign-in, failed admin logins of the setup UI).
//
// The window is fixed and starts at a key's first event: the first event opens a window of
// Limit.Window, at most Limit.Requests events are allowed in it, and the refused ones learn how
// long until it ends (Retry-After). A fixed window is exact (a counter and an expiry, in memory as
// in Redis, where it is one INCR and one PEXPIRE in a Lua script whose clock is the server's, so
// replicas need no synchronised clocks) and cheap; its cost is a burst of up to twice the limit
// around a window's end, which is acceptable for every limit mcpgate has
// (docs/architecture.md#rate-limits).
//
// Three implementations: Memory (one process, exact; the default), Redis (every replica against one
// server, exact: strict mode) and Async (counted locally, the counts sent to Redis in the
// background: async mode).
package limiter

import (
	"errors"
	"time"
)

// Limit is how many events a key may have per window.
type Limit struct {
	Requests int
	Window   time.Duration
}

// Result is the answer to one event.
type Result struct {
	// Allowed says the event is within the limit (it was counted).
	Allowed bool
	// RetryAfter is, when refused, how long until the key's window ends (at least 1 ms).
	RetryAfter time.Duration
}

// ErrUnavailable is the error of a backend that cannot answer (Redis unreachable, or refusing
// calls for a moment after a failure): the caller decides whether that allows or refuses.
var ErrUnavailable = errors.New("limiter: the rate-limit store is unavailable")

// refused builds the answer to an event past the limit of a window that ends in wait.
func refused(wait time.Duration) Result {
	return Result{RetryAfter: max(wait, time.Millisecond)}
}

// RetryAfterSeconds is the Retry-After header value for wait: whole seconds, rounded up, at least 1.
func RetryAfterSeconds(wait time.Duration) int {
	return max(int((wait+time.Second-1)/time.Second), 1)
}
