package ratelimit

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/mcpgate/mcpgate/internal/limiter"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/telemetry"
)

// Reason codes of the policy's answers (docs/errors.md).
const (
	ReasonRateLimited = "rate_limited"
	ReasonUnavailable = "rate_limit_unavailable"
)

// taker is what the policy needs of a limiter: limiter.Memory, limiter.Redis and limiter.Async.
type taker interface {
	Take(ctx context.Context, key string, l limiter.Limit) (limiter.Result, error)
}

// state is what Provision builds.
type state struct {
	counts taker
	limit  limiter.Limit
	// prefix starts every key: the policy's name, so two policies never share a count.
	prefix string
	urls   *publicurl.URLs
	// async is the background sync of mode async on Redis, stopped by Cleanup.
	async *limiter.Async
	// detail is the 429's message, built once.
	detail string
}

// Provision chooses where the policy counts: the host's Redis (strict: every request asks it;
// async: counted here and synced), or, without one, this instance's memory (exact; async changes
// nothing there).
func (p *Policy) Provision(_ context.Context, env *policy.Env) error {
	h := env.Host
	st := &state{limit: limiter.Limit{Requests: *p.RequestsAllowed, Window: p.Window()}, urls: h.URLs,
		prefix: env.Name + "|" + p.By() + "|"}
	switch {
	case h.RateLimits == nil:
		st.counts = limiter.NewMemory(limiter.MemoryOptions{Now: h.Now})
	case p.EffectiveMode() == ModeAsync:
		st.async = h.RateLimits.Async(limiter.AsyncOptions{Now: h.Now})
		st.counts = st.async
	default:
		st.counts = h.RateLimits
	}
	st.detail = "Rate limit exceeded: " + env.Name + " allows " + strconv.Itoa(st.limit.Requests) + " requests per " +
		windowText(st.limit.Window) + " " + countedAs(p.By()) + "."
	p.name, p.st = env.Name, st
	return nil
}

// windowText writes a window for people: "minute", "10 minutes", "30 seconds", "1.5s".
func windowText(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return one
		}
		return strconv.FormatInt(n, 10) + " " + one + "s"
	}
	switch {
	case d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	case d%time.Second == 0:
		return unit(int64(d/time.Second), "second")
	}
	return d.String()
}

func countedAs(by string) string {
	switch by {
	case ByIP:
		return "per client address"
	case ByAll:
		return "for all callers together"
	}
	return "per user"
}

// HandleRequest counts the request and answers 429 past the limit.
func (p *Policy) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	st := p.st
	res, err := st.counts.Take(r.Context(), st.prefix+p.key(c, r), st.limit)
	if err != nil {
		return nil, p.unchecked(c, err)
	}
	if res.Allowed {
		return nil, nil
	}
	telemetry.Default.RateLimited(p.name)
	// The detail names the policy. No extra member: problem.Body's Extra costs a JSON round trip
	// (about 70 allocations), and a 429 is the answer a flood gets (BENCHMARKS.md, "Rate limits").
	e := problem.New(http.StatusTooManyRequests, st.detail, nil).WithReason(ReasonRateLimited)
	if p.Header() == HeaderModeRetryAfter {
		e.WithHeader("Retry-After", strconv.Itoa(limiter.RetryAfterSeconds(res.RetryAfter)))
	}
	return nil, e
}

// key is what the request is counted under. A request without a user under rateLimitBy user is
// counted by its client address, in keys of their own: a route that lets anonymous callers
// through (allowUnauthenticatedRequests) still limits them.
func (p *Policy) key(c *policy.Context, r *http.Request) string {
	switch p.By() {
	case ByAll:
		return ""
	case ByUser:
		if c.User != nil {
			return c.User.Subject()
		}
		return "anonymous|" + publicurl.AddrKey(p.st.urls.ClientAddr(r))
	}
	return publicurl.AddrKey(p.st.urls.ClientAddr(r))
}

// unchecked answers a request whose limit could not be checked: through (the default; the store's
// failure is logged by whoever opened it, here it is counted), or 503 with throwOnFailure.
func (p *Policy) unchecked(c *policy.Context, err error) error {
	if !p.ThrowOnFailure {
		telemetry.Default.RateUnchecked(p.name, telemetry.RateUncheckedAllowed)
		if c.Log != nil && !errors.Is(err, limiter.ErrUnavailable) {
			c.Log.Warn("rate limit not checked; the request goes on", "policy", p.name, "err", err)
		}
		return nil
	}
	telemetry.Default.RateUnchecked(p.name, telemetry.RateUncheckedRefused)
	return problem.New(http.StatusServiceUnavailable, "The rate limit of this route cannot be checked right now ("+p.name+"). Try again shortly.", err).
		WithReason(ReasonUnavailable).WithHeader("Retry-After", "1")
}

// Cleanup stops the async sync after sending what is pending.
func (p *Policy) Cleanup() error {
	if p.st != nil && p.st.async != nil {
		return p.st.async.Close()
	}
	return nil
}
