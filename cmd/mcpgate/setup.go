package main

import (
	"context"
	"fmt"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/setup"
)

// serveHooks run after the gateway is built (its policies provisioned) and before it listens;
// features that mount their own endpoints add themselves here from init().
var serveHooks []func(ctx context.Context, project *config.Project, svc *gateway.Services) error

// runServeHooks runs every serve hook in order.
func runServeHooks(ctx context.Context, project *config.Project, svc *gateway.Services) error {
	for _, h := range serveHooks {
		if err := h(ctx, project, svc); err != nil {
			return err
		}
	}
	return nil
}

func init() {
	// The setup UI ({base}/setup) and the admin API ({base}/admin/api/…), for admin API keys
	// (mcpgate keys create --admin) and JWTs carrying MCPGATE_ADMIN_CLAIM.
	serveHooks = append(serveHooks, func(_ context.Context, project *config.Project, svc *gateway.Services) error {
		if _, err := setup.Mount(svc, project); err != nil {
			return fmt.Errorf("mounting the setup UI: %w", err)
		}
		svc.Logger.Info("setup UI mounted", "path", svc.URLs.BasePath+"/setup", "api", svc.URLs.BasePath+"/admin/api")
		return nil
	})
}
