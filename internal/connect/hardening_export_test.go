package connect

import "time"

// SetForcedRefreshIntervalForTest shortens ForcedRefreshInterval for this manager. Call it before
// the gateway serves (gatewaytest.Options.BeforeStart).
func (m *Manager) SetForcedRefreshIntervalForTest(d time.Duration) { m.forcedInterval = d }
