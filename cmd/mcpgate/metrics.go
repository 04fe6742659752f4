package main

import (
	"context"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/telemetry"
)

func init() {
	// Prometheus metrics at /metrics (refresh outcomes, lease waits, replays, step-ups,
	// connect-required answers, upstream latency). No token or subject is ever a label; restrict
	// who may scrape it at the network level, like /healthz.
	serveHooks = append(serveHooks, func(_ context.Context, _ *config.Project, svc *gateway.Services) error {
		telemetry.Mount(svc.Register)
		svc.Logger.Info("metrics mounted", "path", telemetry.MetricsPath)
		return nil
	})
}
