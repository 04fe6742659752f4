package main

import (
	"context"
	"os"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/gateway"
)

func init() {
	// The background refresher keeps connections used in the last 30 minutes fresh ahead of
	// their next request (connect.RunBackgroundRefresh), until serve stops. It runs only when a
	// token-exchange policy is configured; MCPGATE_BACKGROUND_REFRESH=off turns it off.
	serveHooks = append(serveHooks, func(ctx context.Context, _ *config.Project, svc *gateway.Services) error {
		m := connect.Existing(svc)
		if m == nil || os.Getenv("MCPGATE_BACKGROUND_REFRESH") == "off" {
			return nil
		}
		go m.RunBackgroundRefresh(ctx, connect.BackgroundInterval)
		svc.Logger.Info("background refresh of recently used connections started", "interval", connect.BackgroundInterval.String(),
			"recentUse", connect.RecentUse.String())
		return nil
	})
}
