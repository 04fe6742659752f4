package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/mcpwire"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// What the administrator needs from the manager: a connect link for a shared slot, revoking a
// connection (locally and at the authorization server), and a health classification of stored
// connections. The setup UI and the admin API (internal/setup) are its clients.

// ExpiringSoonWindow is how close to its expiry an access token counts as "expiring soon".
const ExpiringSoonWindow = 10 * time.Minute

// revokeTimeout bounds the best-effort RFC 7009 call a revoke makes.
const revokeTimeout = 10 * time.Second

// Health is what the operator needs to know about one connection.
type Health string

// Health states, from worst to best. A connection has exactly one.
const (
	HealthRevoked           Health = "revoked"            // an administrator (or the CLI) revoked it
	HealthReconsentRequired Health = "reconsent_required" // the grant is dead; the user must connect again
	HealthRefreshFailing    Health = "refresh_failing"    // the last refresh failed (tokens kept, retried)
	HealthExpired           Health = "expired"            // the access token has expired; refreshed on next use when possible
	HealthExpiringSoon      Health = "expiring_soon"      // expires within ExpiringSoonWindow
	HealthActive            Health = "active"
)

// HealthStates lists every state in display order.
var HealthStates = []Health{HealthActive, HealthExpiringSoon, HealthExpired, HealthRefreshFailing, HealthReconsentRequired, HealthRevoked}

// Failing reports whether h needs somebody to act (or will fail the next request).
func (h Health) Failing() bool {
	return h == HealthRefreshFailing || h == HealthReconsentRequired || h == HealthRevoked
}

// Classify returns the health of c at now. It reads metadata only (never tokens), so it works on
// ListConnections rows.
func Classify(c *store.Connection, now time.Time) Health {
	switch {
	case c.Status == store.StatusRevoked:
		return HealthRevoked
	case c.Status != store.StatusActive:
		return HealthReconsentRequired
	case c.LastError != nil:
		return HealthRefreshFailing
	case !c.HasAccessToken:
		return HealthReconsentRequired
	case !c.Expiry.IsZero() && !now.Before(c.Expiry):
		return HealthExpired
	case !c.Expiry.IsZero() && c.Expiry.Sub(now) <= ExpiringSoonWindow:
		return HealthExpiringSoon
	}
	return HealthActive
}

// ErrNotShared is returned by SharedConnectURL for an upstream in user-oauth mode.
var ErrNotShared = errors.New("the upstream does not use a shared connection (authMode is not shared-oauth)")

// ErrUnknownUpstream is returned for an upstream id the gateway does not serve.
var ErrUnknownUpstream = errors.New("no upstream with this id is configured")

// SharedConnectURL mints a shared-mode browser ticket for admin (a namespaced subject) and
// returns the consent link the admin's browser follows: the same consent → upstream OAuth →
// callback flow users go through, storing the grant in the upstream's shared slot.
func (m *Manager) SharedConnectURL(r *http.Request, upstreamID, admin string) (string, error) {
	up, ok := m.Upstream(upstreamID)
	if !ok {
		return "", ErrUnknownUpstream
	}
	if up.Mode != store.ModeShared {
		return "", ErrNotShared
	}
	state := mcpwire.StateAuthenticating
	if c, err := m.store.GetConnection(r.Context(), Key(up, "")); err == nil && c.Status != store.StatusActive {
		state = mcpwire.StateReconsentRequired
	}
	t := m.signer.New(Ticket{Subject: subject.Shared.String(), Mode: string(store.ModeShared), UpstreamID: up.ID,
		OperationID: firstOperation(up), State: state, Actor: admin})
	t.ElicitationID = t.ID
	q := url.Values{"browserTicket": {m.signer.Sign(t)}, "operationId": {t.OperationID}}
	return m.urls.Gateway(r, "/auth/connections/"+url.PathEscape(up.ID)+"/connect") + "?" + q.Encode(), nil
}

// firstOperation is the route a shared ticket names: the first of the upstream's operationIds.
func firstOperation(up *Upstream) string {
	if ops := up.OperationIDList(); len(ops) > 0 {
		return ops[0]
	}
	return ""
}

// RevokeResult says what a revoke did.
type RevokeResult struct {
	// Revoked is false when the connection was already revoked (nothing changed).
	Revoked bool
	// UpstreamRevocation is "revoked", "not_supported" (the AS has no revocation endpoint),
	// "skipped" (no token to revoke, or the tokens could not be read) or "failed: <code>".
	UpstreamRevocation string
	// ConnectedBy is who had connected it.
	ConnectedBy string
}

// RevokeConnection revokes the connection at key on behalf of actor: the tokens are wiped and the
// row kept with status revoked (compare-and-swap, retried when a refresh wins the race), the
// cached credential dropped, the refresh token revoked at the authorization server when it offers
// RFC 7009 (best effort, bounded), and an audit event records the actor, the connection and who
// had connected it. The next request of that user (every user, for a shared slot) is asked to
// connect again — admin_connect_required in shared mode.
func (m *Manager) RevokeConnection(ctx context.Context, r *http.Request, key store.ConnectionKey, actor, requestID string) (RevokeResult, error) {
	return m.revoke(ctx, r, key, actor, requestID, revocation{auditReason: "admin_revoke", errorCode: "revoked_by_admin",
		message: "revoked by " + subject.Subject(actor).Display(), withConnectedBy: true})
}

// revocation says why a connection is revoked, for its last error and the audit event.
type revocation struct {
	auditReason, errorCode, message string
	// withConnectedBy names who had connected it in the audit event (an administrator's revoke).
	withConnectedBy bool
}

// revoke is RevokeConnection and Disconnect: RFC 7009 at the authorization server first while the
// tokens are readable (best effort, bounded), then the tokens wiped and the row kept as revoked
// (compare-and-swap, retried when a refresh wins the race), the cached credential dropped and an
// audit event recorded. Revoking twice is not an error (Revoked is false); a connection that never
// existed is store.ErrNotFound.
func (m *Manager) revoke(ctx context.Context, r *http.Request, key store.ConnectionKey, actor, requestID string, why revocation) (RevokeResult, error) {
	res := RevokeResult{UpstreamRevocation: "skipped"}
	up, known := m.Upstream(key.UpstreamID)
	if full, err := m.store.GetConnection(ctx, key); err == nil && known && full.Status == store.StatusActive && !full.RefreshToken.IsZero() {
		res.UpstreamRevocation = m.revokeAtAS(ctx, r, up, full)
	}
	for attempt := 0; ; attempt++ {
		c, err := m.connectionMeta(ctx, key)
		if err != nil {
			return res, err
		}
		res.ConnectedBy = c.ConnectedBy
		if why.withConnectedBy && key.Mode == store.ModeShared {
			if actor, _ := m.SharedConnectedBy(ctx, key.UpstreamID); actor != "" {
				res.ConnectedBy = actor
			}
		}
		if c.Status == store.StatusRevoked && !c.HasAccessToken && !c.HasRefreshToken {
			m.Invalidate(key)
			return res, nil
		}
		c.Status, c.AccessToken, c.RefreshToken, c.Expiry = store.StatusRevoked, "", "", time.Time{}
		c.LastError = &store.LastError{Code: why.errorCode, Message: why.message, At: m.now()}
		err = m.store.PutConnection(ctx, c)
		if errors.Is(err, store.ErrConflict) && attempt < 20 {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("revoking the connection: %w", err)
		}
		break
	}
	res.Revoked = true
	m.Invalidate(key)
	details := map[string]any{"mode": string(key.Mode), "upstreamRevocation": res.UpstreamRevocation}
	if why.withConnectedBy {
		details["connectedBy"] = res.ConnectedBy
	}
	ev := audit.Event{Event: audit.UpstreamConnectionRevoked, Outcome: audit.OutcomeSuccess, ReasonCode: why.auditReason,
		SubjectID: key.Subject, Actor: actor, UpstreamID: key.UpstreamID, RequestID: requestID, Details: details}
	if known {
		ev.AuthProfileID = up.AuthProfileID()
	}
	m.audit.Record(ctx, ev)
	return res, nil
}

// SharedConnectedBy returns which administrator connected the shared slot of upstreamID, and when.
// The browser flow stores a shared connection under the shared subject; the administrator who
// started the latest completed connect is the actor of its connect-started audit event (the
// ticket's actor). Empty when the audit log does not say (retention removed it, or the CLI).
func (m *Manager) SharedConnectedBy(ctx context.Context, upstreamID string) (actor string, at time.Time) {
	est, err := m.store.QueryAudit(ctx, store.AuditQuery{UpstreamID: upstreamID, Subject: subject.Shared.String(),
		Event: audit.UpstreamConnectionEstablished, Limit: 1})
	if err != nil || len(est) == 0 {
		return "", time.Time{}
	}
	started, err := m.store.QueryAudit(ctx, store.AuditQuery{UpstreamID: upstreamID, Subject: subject.Shared.String(),
		Event: audit.UpstreamConnectStarted, BeforeID: est[0].ID, Limit: 1})
	if err != nil || len(started) == 0 {
		return "", est[0].Time
	}
	return started[0].Actor, est[0].Time
}

// connectionMeta reads a connection's metadata without decrypting it, so a connection whose key
// was lost can still be revoked.
func (m *Manager) connectionMeta(ctx context.Context, key store.ConnectionKey) (*store.Connection, error) {
	list, err := m.store.ListConnections(ctx, store.ConnectionFilter{UpstreamID: key.UpstreamID, Subject: key.Subject})
	if err != nil {
		return nil, fmt.Errorf("reading the connection: %w", err)
	}
	for i := range list {
		if list[i].Mode == key.Mode {
			return &list[i], nil
		}
	}
	return nil, store.ErrNotFound
}

// revokeAtAS revokes conn's refresh token at its authorization server (RFC 7009), bounded.
func (m *Manager) revokeAtAS(ctx context.Context, r *http.Request, up *Upstream, conn *store.Connection) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revokeTimeout)
	defer cancel()
	d, err := m.engine.Discover(ctx, up.Upstream, up.Challenge().ResourceMetadata)
	if err != nil || d.AS.Issuer != conn.Issuer {
		return "skipped"
	}
	if d.AS.RevocationEndpoint == "" {
		return "not_supported"
	}
	ep := m.Endpoints(r)
	err = m.engine.Revoke(ctx, up.Upstream, upstream.RevokeRequest{Endpoint: d.AS.RevocationEndpoint, ClientID: conn.ClientID,
		ClientSecret: m.clientSecret(ctx, up, conn, ep), AuthMethod: conn.AuthMethod, Token: conn.RefreshToken, TokenTypeHint: "refresh_token"})
	if err != nil {
		m.log.Warn("revoking the refresh token at the authorization server failed; the connection is revoked locally",
			"upstreamServerId", up.ID, "error", err)
		return "failed: " + upstream.CodeOf(err)
	}
	return "revoked"
}

// OperationIDList lists the routes that use up, sorted.
func (u *Upstream) OperationIDList() []string {
	out := make([]string, 0, len(u.OperationIDs))
	for op := range u.OperationIDs {
		out = append(out, op)
	}
	slices.Sort(out)
	return out
}
