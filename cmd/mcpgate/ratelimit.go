package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mcpgate/mcpgate/internal/limiter"
	"github.com/mcpgate/mcpgate/internal/telemetry"
)

// openRateLimits opens the Redis server of MCPGATE_REDIS_URL, where rate-limit-inbound policies
// count across replicas (docs/architecture.md#rate-limits). Empty: none, and each instance counts
// in its own memory. A server that does not answer at start is logged, not fatal: the gateway
// serves, and the policies treat it as they treat a Redis that fails later (throwOnFailure).
func openRateLimits(ctx context.Context, log *slog.Logger, url string) (*limiter.Redis, error) {
	if url == "" {
		return nil, nil
	}
	log = log.With("component", "ratelimit")
	r, err := limiter.OpenRedis(url, limiter.RedisOptions{OnError: func(err error) {
		telemetry.Default.RateStoreFailed()
		log.Warn("rate-limit store unavailable: for the next second requests are let through unlimited, or refused by policies with throwOnFailure (async policies count locally)",
			"error", err)
	}})
	if err != nil {
		return nil, fmt.Errorf("MCPGATE_REDIS_URL: %w", err)
	}
	if err := r.Ping(ctx); err != nil {
		log.Warn("rate-limit store not reachable at start; serving anyway", "redis", r.Addr(), "error", err)
	} else {
		log.Info("rate limits are counted in Redis, across replicas", "redis", r.Addr())
	}
	return r, nil
}
