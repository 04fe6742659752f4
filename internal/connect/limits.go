package connect

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/telemetry"
)

// Authorization limits: a person is sent to an upstream's authorization server at most
// AuthorizationLimit times per AuthorizationWindow (connects, reconnects and step-ups alike, the
// first connect included), so an upstream that keeps demanding what its authorization server never
// grants (403 insufficient_scope after every step-up) cannot keep a person in a loop.
//
// An authorization request is counted when Approve sends the browser to the authorization server:
// the audit event mcp_auth_upstream_connect_started, stored (synchronously) in the gateway's
// shared store, so every replica counts the same requests, and restarts forget nothing. The
// process also keeps its own record, which counts alone when the store cannot be read and keeps
// concurrent approvals in one process from overtaking each other. Two replicas approving for the
// same person in the same instant may both pass: the count is exact per process and eventually
// exact across replicas, which is enough for a limit on a person's clicks.
//
// Past the limit, a step-up gets the -32003 answer without a link (hook.go stepUp), and Approve
// of any link still open shows an error page instead of going to the authorization server.
// Shared connections (an administrator's) are not limited.
const (
	AuthorizationLimit  = 3
	AuthorizationWindow = 10 * time.Minute
)

// recentAuthorizations returns how many authorization requests were sent for key within the
// window, and when the oldest of the last AuthorizationLimit leaves it (zero when fewer).
func (m *Manager) recentAuthorizations(ctx context.Context, key store.ConnectionKey) (int, time.Time) {
	now := m.now()
	n, until := m.storedAuthorizations(ctx, key, now)
	m.stepMu.Lock()
	defer m.stepMu.Unlock()
	local := m.localAuthorizations(key, now)
	if len(local) >= AuthorizationLimit {
		if t := local[len(local)-AuthorizationLimit].Add(AuthorizationWindow); n < AuthorizationLimit || t.After(until) {
			until = t
		}
	}
	return max(n, len(local)), until
}

// reserveAuthorization counts one authorization request for key in this process unless the
// limit is reached; ok false says until when it is. release takes the reservation back (the
// request never reached the authorization server).
func (m *Manager) reserveAuthorization(ctx context.Context, key store.ConnectionKey) (release func(), until time.Time, ok bool) {
	now := m.now()
	n, until := m.storedAuthorizations(ctx, key, now)
	m.stepMu.Lock()
	defer m.stepMu.Unlock()
	local := m.localAuthorizations(key, now)
	if len(local) >= AuthorizationLimit {
		if t := local[len(local)-AuthorizationLimit].Add(AuthorizationWindow); n < AuthorizationLimit || t.After(until) {
			until = t
		}
	}
	if max(n, len(local)) >= AuthorizationLimit {
		return nil, until, false
	}
	k := cacheKey(key)
	if m.authz == nil {
		m.authz = map[string][]time.Time{}
	}
	m.authz[k] = append(local, now)
	return func() {
		m.stepMu.Lock()
		defer m.stepMu.Unlock()
		ts := m.authz[k]
		for i := len(ts) - 1; i >= 0; i-- {
			if ts[i].Equal(now) {
				m.authz[k] = append(ts[:i:i], ts[i+1:]...)
				return
			}
		}
	}, time.Time{}, true
}

// localAuthorizations is this process's record for key within the window, oldest first (pruned
// in place). m.stepMu is held.
func (m *Manager) localAuthorizations(key store.ConnectionKey, now time.Time) []time.Time {
	k := cacheKey(key)
	var recent []time.Time
	for _, t := range m.authz[k] {
		if now.Sub(t) < AuthorizationWindow {
			recent = append(recent, t)
		}
	}
	if len(recent) == 0 {
		delete(m.authz, k)
	} else {
		m.authz[k] = recent
	}
	return recent
}

// storedAuthorizations counts the connect_started audit events of key's subject and upstream
// within the window in the shared store (at most AuthorizationLimit are read). A store failure
// counts nothing (the process's own record still does) and is logged.
func (m *Manager) storedAuthorizations(ctx context.Context, key store.ConnectionKey, now time.Time) (int, time.Time) {
	evs, err := m.store.QueryAudit(ctx, store.AuditQuery{Subject: key.Subject, UpstreamID: key.UpstreamID,
		Event: audit.UpstreamConnectStarted, Since: now.Add(-AuthorizationWindow), Limit: AuthorizationLimit})
	if err != nil {
		m.log.Warn("counting authorization requests in the store failed; this process's own count is used",
			"upstreamServerId", key.UpstreamID, "error", err)
		return 0, time.Time{}
	}
	if len(evs) < AuthorizationLimit {
		return len(evs), time.Time{}
	}
	return len(evs), evs[len(evs)-1].Time.Add(AuthorizationWindow) // newest first
}

// refusedFreshTokens counts requests an upstream refused (401) with a fresh token
// (refusedFreshToken in hook.go), by upstream and by how the token was fresh.
var refusedFreshTokens = func() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpgate_upstream_refused_fresh_token_total",
		Help: "Requests an upstream refused (401) with a fresh token, answered with an error and the connection kept, by forced_refresh: replayed (refreshed and replayed once, refused again) or skipped (a forced refresh of the connection ran less than 30 s before: not refreshed again).",
	}, []string{"upstream", "forced_refresh"})
	telemetry.Default.Registry().MustRegister(c)
	return c
}()
