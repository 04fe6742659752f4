package connect

import (
	"context"
	"time"

	"github.com/mcpgate/mcpgate/internal/safehttp"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// LeaseName is the store lease a refresh of key takes.
func LeaseName(k store.ConnectionKey) string { return leaseName(k) }

// SetHTTPTimeoutForTest bounds the manager's outbound OAuth requests (a hanging token endpoint
// then fails in d instead of safehttp.DefaultTimeout). Call it before the first request.
func (m *Manager) SetHTTPTimeoutForTest(d time.Duration) {
	allow, _ := safehttp.ParseAllowList("127.0.0.1")
	m.engine = upstream.New(upstream.Options{Allow: allow, Registrations: m.regs, HTTPTimeout: d})
}

// RefreshRecentForTest runs one pass of the background refresher with the given horizon.
func (m *Manager) RefreshRecentForTest(ctx context.Context, horizon time.Duration) int {
	return m.refreshRecent(ctx, horizon)
}
