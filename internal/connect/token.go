package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/failpoint"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/tracing"
	"github.com/mcpgate/mcpgate/internal/upstream"
	"github.com/mcpgate/mcpgate/internal/vault"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Token is a usable upstream credential, as cached in memory.
type Token struct {
	// Authorization is the header value to send ("Bearer …").
	Authorization vault.Secret
	Expiry        time.Time // zero: unknown (refreshed when the upstream answers 401)
	Version       int64     // the connection row version it came from
	Scopes        []string
	HasRefresh    bool
	// Issued is when the token was stored (the row's UpdatedAt): with Expiry it gives the lifetime.
	Issued time.Time
	// read is when the row was read; a cached token is re-checked against the store after
	// CacheMaxAge, so a revoke on another replica (or by the CLI) takes effect within it.
	read time.Time
}

// CacheMaxAge bounds how long a cached credential is used without re-reading its row. Within it
// the hot path has no database round trip; past it one read per connection and instance (shared
// by concurrent callers) confirms the connection is still active.
const CacheMaxAge = 15 * time.Second

// fresh reports whether t can be used at now without a proactive refresh: it is further than the
// skew from its expiry. The skew is at most a third of the token's lifetime, so a token that lives
// shorter than the skew (30 s tokens exist) is not refreshed again on every request.
func (t *Token) fresh(now time.Time, skew time.Duration) bool {
	if t.Expiry.IsZero() {
		return true
	}
	if life := t.Expiry.Sub(t.Issued); !t.Issued.IsZero() && life > 0 && life/3 < skew {
		skew = life / 3
	}
	return now.Add(skew).Before(t.Expiry)
}

// valid reports whether t has not expired yet (it may be within the refresh skew).
func (t *Token) valid(now time.Time) bool { return t.Expiry.IsZero() || now.Before(t.Expiry) }

// Lookup is the result of finding a caller's connection.
type Lookup struct {
	Key   store.ConnectionKey
	Token *Token // nil when there is no usable credential
	// State is why there is none: authenticating (never connected) or reconsent_required.
	State string
}

// While another instance holds a connection's refresh lease, one goroutine per instance polls
// the row, starting fast (a refresh takes a few milliseconds) and backing off to a bound.
const (
	leasePollMin = 5 * time.Millisecond
	leasePollMax = 250 * time.Millisecond
)

// Errors a caller maps to responses.
var (
	// errReconsent means the grant is dead: the connection was marked reconsent_required.
	errReconsent = errors.New("the upstream grant is no longer valid")
	// errForcedRefreshSkipped means a forced refresh (an upstream 401 for a token that still
	// looked valid) did not run: the token the upstream refused is the connection's current one,
	// and a forced refresh of the connection already ran less than ForcedRefreshInterval ago (on
	// any replica), or the shared connection has no refresh token. Nothing was changed.
	errForcedRefreshSkipped = errors.New("the upstream refused the connection's current, freshly refreshed token")
)

// ForcedRefreshInterval bounds forced refreshes: a refresh triggered by an upstream 401 while the
// token still looked valid runs at most once per this interval per connection, across every
// replica. Each one takes a store lease of this length (forcedLeaseName) that it never releases:
// while it is held, a forced refresh does not run. Without the bound, every request an upstream
// refuses for a reason of its own (one request's parameters, not the grant) would rotate the
// refresh token. Refreshes of expired tokens (and proactive ones) are not forced and not bound.
const ForcedRefreshInterval = 30 * time.Second

// forcedLeaseName is the lease that spaces key's forced refreshes (ForcedRefreshInterval).
func forcedLeaseName(k store.ConnectionKey) string { return "forced-" + leaseName(k) }

// Key returns the connection key for a caller of up: the shared slot in shared mode, else the
// caller's namespaced subject.
func Key(up *Upstream, sub string) store.ConnectionKey {
	if up.Mode == store.ModeShared {
		return store.ConnectionKey{UpstreamID: up.ID, Mode: store.ModeShared, Subject: subject.Shared.String()}
	}
	return store.ConnectionKey{UpstreamID: up.ID, Mode: store.ModeUser, Subject: sub}
}

// leaseName is the store lease of key's refresh. PostgreSQL text cannot hold the NUL bytes of
// cacheKey, so the parts are escaped and joined with slashes.
func leaseName(k store.ConnectionKey) string {
	return "refresh/" + url.PathEscape(k.UpstreamID) + "/" + string(k.Mode) + "/" + url.PathEscape(k.Subject)
}

func cacheKey(k store.ConnectionKey) string {
	return k.UpstreamID + "\x00" + string(k.Mode) + "\x00" + k.Subject
}

// Lookup finds the credential for key: from memory when fresh (no database round trip), else from
// the store, refreshing first when it is within the skew of expiry. A storage or decrypt failure is
// an error (a transient 503), never "not connected" (docs/architecture.md#failure-classification).
//
// Under a recording span it is traced as "token lookup", and the upstream's id labels the
// calling policy's span too (docs/architecture.md#traces).
func (m *Manager) Lookup(ctx context.Context, ep upstream.Endpoints, up *Upstream, key store.ConnectionKey, requestID string) (Lookup, error) {
	if !tracing.Recording(ctx) {
		return m.lookup(ctx, ep, up, key, requestID)
	}
	id := tracing.AttrUpstreamID.String(up.ID)
	trace.SpanFromContext(ctx).SetAttributes(id)
	ctx, span := tracing.Start(ctx, "token lookup", trace.SpanKindInternal, id, attrAuthMode.String(up.AuthMode()))
	l, err := m.lookup(ctx, ep, up, key, requestID)
	span.SetAttributes(attrConnected.Bool(l.Token != nil))
	tracing.End(span, err)
	return l, err
}

// Span attributes of the token lookup and refresh: never the token, the subject or the lease.
const (
	attrAuthMode  = attribute.Key("mcpgate.auth_mode")
	attrConnected = attribute.Key("mcpgate.connected")
	attrForced    = attribute.Key("mcpgate.refresh.forced")
)

func (m *Manager) lookup(ctx context.Context, ep upstream.Endpoints, up *Upstream, key store.ConnectionKey, requestID string) (Lookup, error) {
	now := m.now()
	if t := m.use(ep, up, key, now).tok.Load(); t != nil {
		recent := now.Sub(t.read) < CacheMaxAge
		if recent && t.fresh(now, m.skew) {
			return Lookup{Key: key, Token: t}, nil
		}
		if recent && t.valid(now) {
			m.refreshAsync(ctx, ep, up, key, t.Version, requestID)
			return Lookup{Key: key, Token: t}, nil
		}
	}
	// Every other caller reads the store (and refreshes an expired token) once per connection in
	// this process: a burst of requests on an expired or uncached token costs one store read and
	// one decryption, not one per request. The read runs detached, like a refresh; each caller
	// stops waiting when its own context ends.
	ch := m.sf.DoChan("lookup\x00"+cacheKey(key), func() (any, error) {
		// A margin over RefreshTimeout: the refresh this lookup may start has its own timeout and
		// answers first.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RefreshTimeout+5*time.Second)
		defer cancel()
		return m.lookupStored(lctx, ep, up, key, requestID)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return Lookup{}, res.Err
		}
		return res.Val.(Lookup), nil
	case <-ctx.Done():
		return Lookup{}, ctx.Err()
	}
}

// lookupStored is Lookup's store path.
func (m *Manager) lookupStored(ctx context.Context, ep upstream.Endpoints, up *Upstream, key store.ConnectionKey, requestID string) (Lookup, error) {
	now := m.now()
	conn, err := m.store.GetConnection(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		m.dropCached(key)
		return Lookup{Key: key, State: "authenticating"}, nil
	}
	if err != nil {
		return Lookup{}, transient("reading the upstream connection", err)
	}
	if conn.Status != store.StatusActive || conn.AccessToken.IsZero() {
		m.dropCached(key)
		return Lookup{Key: key, State: "reconsent_required"}, nil
	}
	t := tokenOf(conn)
	if t.fresh(now, m.skew) {
		m.setCached(key, t)
		return Lookup{Key: key, Token: t}, nil
	}
	m.setCached(key, t)
	if t.valid(now) {
		// Within the skew but not expired: refresh in the background and serve the current token
		// now, so a slow token endpoint never delays requests that do not need to wait.
		m.refreshAsync(ctx, ep, up, key, conn.Version, requestID)
		return Lookup{Key: key, Token: t}, nil
	}
	// Expired: refresh (once per connection across callers and replicas) and wait for it.
	nt, err := m.Refresh(ctx, ep, up, key, conn.Version, requestID)
	switch {
	case err == nil:
		return Lookup{Key: key, Token: nt}, nil
	case errors.Is(err, errReconsent):
		return Lookup{Key: key, State: "reconsent_required"}, nil
	case t.valid(m.now()):
		// A failed proactive refresh serves the request with the still-valid token.
		m.log.Warn("proactive refresh failed; using the current token until it expires",
			"upstreamServerId", up.ID, "requestId", requestID, "error", err)
		return Lookup{Key: key, Token: t}, nil
	default:
		return Lookup{}, err
	}
}

func tokenOf(c *store.Connection) *Token {
	return &Token{Authorization: vault.Secret("Bearer " + c.AccessToken.Reveal()), Expiry: c.Expiry, Version: c.Version,
		Scopes: c.Scopes, HasRefresh: !c.RefreshToken.IsZero(), Issued: c.UpdatedAt, read: time.Now()}
}

// Invalidate drops the cached credential for key (after a new connection, a revoke).
func (m *Manager) Invalidate(key store.ConnectionKey) { m.dropCached(key) }

// Refresh refreshes the connection at key, unless it changed since staleVersion (then the newer
// token is used). Every caller in the process shares one attempt per connection (singleflight),
// instances share it through a lease row, and the attempt runs detached from the caller's context
// with its own timeout, so one caller giving up cannot cancel it for the others.
func (m *Manager) Refresh(ctx context.Context, ep upstream.Endpoints, up *Upstream, key store.ConnectionKey, staleVersion int64, requestID string) (*Token, error) {
	return m.refreshWait(ctx, ep, up, key, staleVersion, false, requestID)
}

// forceRefresh is Refresh after an upstream 401 for a token that still looked valid: the same
// shared attempt, except that it does not run (errForcedRefreshSkipped) when the refused token
// is the stored one and a forced refresh of the connection ran less than ForcedRefreshInterval
// ago, or, in shared mode, when the connection has no refresh token. A newer stored token
// (another replica refreshed) is used as always.
func (m *Manager) forceRefresh(ctx context.Context, ep upstream.Endpoints, up *Upstream, key store.ConnectionKey, staleVersion int64, requestID string) (*Token, error) {
	return m.refreshWait(ctx, ep, up, key, staleVersion, true, requestID)
}

func (m *Manager) refreshWait(ctx context.Context, ep upstream.Endpoints, up *Upstream, key store.ConnectionKey, staleVersion int64, forced bool, requestID string) (*Token, error) {
	// Forced refreshes share their own attempt: a caller whose token has expired must not be
	// handed a forced attempt's "skipped".
	sfKey := cacheKey(key)
	if forced {
		sfKey = "forced\x00" + sfKey
	}
	ch := m.sf.DoChan(sfKey, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RefreshTimeout)
		defer cancel()
		return m.refresh(rctx, ep, up, key, staleVersion, forced, requestID)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*Token), nil
	case <-ctx.Done():
		// The caller stopped waiting (its own deadline, or the lookup's): the refresh goes on
		// detached; this request gets a transient answer (503 with Retry-After), never a 500.
		return nil, transient("waiting for the connection's refresh", ctx.Err())
	}
}

// refreshAsync starts (or joins) the connection's refresh without waiting for it.
func (m *Manager) refreshAsync(ctx context.Context, ep upstream.Endpoints, up *Upstream, key store.ConnectionKey, staleVersion int64, requestID string) {
	if m.refreshFailedRecently(key) {
		// The current token is still valid and the last attempt failed moments ago: every
		// request in the skew window would otherwise retry against an authorization server
		// that is already struggling.
		return
	}
	m.sf.DoChan(cacheKey(key), func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RefreshTimeout)
		defer cancel()
		t, err := m.refresh(rctx, ep, up, key, staleVersion, false, requestID)
		if err != nil && !errors.Is(err, errReconsent) {
			m.log.Warn("background refresh failed; the current token is used until it expires",
				"upstreamServerId", up.ID, "requestId", requestID, "error", err)
		}
		return t, err
	})
}

func (m *Manager) refresh(ctx context.Context, ep upstream.Endpoints, up *Upstream, key store.ConnectionKey, staleVersion int64, forced bool, requestID string) (t *Token, err error) {
	start := time.Now()
	reused := false
	ctx, span := tracing.Start(ctx, "token refresh", trace.SpanKindInternal, tracing.AttrUpstreamID.String(up.ID), attrForced.Bool(forced))
	defer func() { tracing.End(span, err) }()
	defer func() {
		if errors.Is(err, errForcedRefreshSkipped) {
			return // no refresh was attempted
		}
		outcome := refreshOutcome(reused, err)
		if outcome == telemetry.RefreshTransient || outcome == telemetry.RefreshSetup {
			m.noteRefreshFailure(key)
		}
		telemetry.Default.Refresh(up.ID, outcome, time.Since(start))
	}()

	lease := leaseName(key)
	// One holder per attempt, not per process: a forced refresh and an ordinary one of the same
	// connection in one process (different singleflight keys) must not both hold the lease, or
	// both would spend the same refresh token and a rotating server would revoke the grant.
	holder := m.holder + "/" + randomToken(6)
	// Take the lease; while another instance holds it, watch the row: when it moves past
	// staleVersion the other instance has refreshed and its token is used.
	var waitedSince, waitedUntil time.Time // the lease wait, when another instance held it
	defer func() {
		if !waitedSince.IsZero() {
			if waitedUntil.IsZero() {
				waitedUntil = time.Now()
			}
			telemetry.Default.LeaseWait(up.ID, waitedUntil.Sub(waitedSince))
		}
	}()
	for wait := leasePollMin; ; wait = min(wait*2, leasePollMax) {
		err := m.store.TryAcquireLease(ctx, lease, holder, LeaseTTL)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrLeaseHeld) {
			return nil, transient("taking the refresh lease", err)
		}
		if waitedSince.IsZero() {
			waitedSince = time.Now()
		}
		if t, done, err := m.refreshedElsewhere(ctx, key, staleVersion); err != nil || done {
			reused = t != nil
			return t, err
		}
		select {
		case <-ctx.Done():
			return nil, transient("waiting for another instance's refresh", ctx.Err())
		case <-time.After(wait):
		}
	}
	if !waitedSince.IsZero() {
		waitedUntil = time.Now()
	}
	defer func() { _ = m.store.ReleaseLease(context.WithoutCancel(ctx), lease, holder) }()

	// Re-read under the lease: another instance may have refreshed between our read and the lease.
	if t, done, err := m.refreshedElsewhere(ctx, key, staleVersion); err != nil || done {
		reused = t != nil
		return t, err
	}
	conn, err := m.store.GetConnection(ctx, key)
	if err != nil {
		return nil, transient("reading the upstream connection", err)
	}
	if forced && conn.Version == staleVersion && conn.Status == store.StatusActive && tokenOf(conn).valid(m.now()) {
		// The upstream refused the connection's current token, which has not expired.
		if conn.RefreshToken.IsZero() {
			if key.Mode == store.ModeShared {
				// One request's 401 says nothing about the grant: a shared grant is never wiped for it.
				return nil, errForcedRefreshSkipped
			}
		} else if !m.mayForceRefresh(ctx, key, conn) {
			return nil, errForcedRefreshSkipped
		}
	}
	if conn.RefreshToken.IsZero() {
		return nil, m.markReconsent(ctx, up, conn, "no_refresh_token", "the connection has no refresh token", requestID)
	}
	// A grant is refreshed only where it was issued
	// (docs/architecture.md#refreshed-only-where-issued): when discovery now names another issuer
	// or resource (the rewritePattern changed), the user reconnects instead of the refresh token
	// going somewhere new. A discovery failure does not block the refresh: the connection remembers
	// everything it needs.
	if d, err := m.engine.Discover(ctx, up.Upstream, up.Challenge().ResourceMetadata); err == nil {
		g := m.grantOf(ctx, up, conn, ep)
		if !g.Matches(d) {
			return nil, m.markReconsent(ctx, up, conn, "issuer_or_resource_changed",
				"the upstream's authorization server or resource changed since the connection was made", requestID)
		}
	}
	failpoint.Hit(failpoint.RefreshAfterLease)
	tok, err := m.engine.Refresh(ctx, up.Upstream, m.grantOf(ctx, up, conn, ep))
	if err != nil {
		t, err = m.refreshFailed(ctx, up, key, conn, err, requestID)
		reused = t != nil
		return t, err
	}
	failpoint.Hit(failpoint.RefreshAfterToken)
	for attempt := 0; ; attempt++ {
		conn.AccessToken = tok.AccessToken
		if !tok.RefreshToken.IsZero() {
			conn.RefreshToken = tok.RefreshToken
		}
		conn.Expiry = tok.Expiry
		if len(tok.Scopes) > 0 {
			conn.Scopes = tok.Scopes
		}
		conn.LastRefreshAt = m.now()
		conn.LastError = nil
		err = m.store.PutConnection(ctx, conn)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrConflict) && attempt < 8 && ctx.Err() == nil {
			// The new refresh token exists only in memory now: a storage hiccup (a database
			// failover) must not lose it, so the write is retried while the refresh's time lasts.
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
			}
			continue
		}
		if !errors.Is(err, store.ErrConflict) || attempt >= 8 {
			// The upstream rotated the refresh token; losing this write would lose the grant, so
			// it is retried above and reported loudly here.
			m.log.Error("storing a refreshed token failed", "upstreamServerId", up.ID, "requestId", requestID, "error", err)
			return nil, transient("storing the refreshed token", err)
		}
		// Someone else wrote the row (a rekey, an admin revoke): re-read and apply ours on top
		// unless it was revoked.
		fresh, gerr := m.store.GetConnection(ctx, key)
		if gerr != nil {
			return nil, transient("re-reading the upstream connection", gerr)
		}
		if fresh.Status != store.StatusActive {
			return nil, errReconsent
		}
		conn = fresh
	}
	t = tokenOf(conn)
	m.setCached(key, t)
	m.audit.Record(ctx, audit.Event{Event: audit.UpstreamTokenRefreshed, Outcome: audit.OutcomeSuccess, SubjectID: key.Subject,
		UpstreamID: up.ID, AuthProfileID: up.AuthProfileID(), RequestID: requestID})
	return t, nil
}

// mayForceRefresh takes key's forced-refresh lease for the interval (never released): false when
// a forced refresh of key ran within it, on any replica. When the store cannot say, the stored
// connection's LastRefreshAt stands in: no forced refresh within the interval after any refresh.
func (m *Manager) mayForceRefresh(ctx context.Context, key store.ConnectionKey, conn *store.Connection) bool {
	err := m.store.TryAcquireLease(ctx, forcedLeaseName(key), m.holder+"/forced/"+randomToken(8), m.forcedRefreshInterval())
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrLeaseHeld):
		return false
	default:
		return conn.LastRefreshAt.IsZero() || m.now().Sub(conn.LastRefreshAt) >= m.forcedRefreshInterval()
	}
}

func (m *Manager) forcedRefreshInterval() time.Duration {
	if m.forcedInterval > 0 {
		return m.forcedInterval
	}
	return ForcedRefreshInterval
}

// refreshOutcome is the telemetry outcome of one refresh.
func refreshOutcome(reused bool, err error) string {
	switch {
	case err == nil && reused:
		return telemetry.RefreshReused
	case err == nil:
		return telemetry.RefreshSuccess
	case errors.Is(err, errReconsent):
		return telemetry.RefreshDead
	case problem.From(err).Status == http.StatusBadGateway:
		return telemetry.RefreshSetup
	default:
		return telemetry.RefreshTransient
	}
}

// refreshedElsewhere re-reads the row: done is true when it changed since staleVersion and holds a
// usable token (or was revoked meanwhile).
func (m *Manager) refreshedElsewhere(ctx context.Context, key store.ConnectionKey, staleVersion int64) (*Token, bool, error) {
	conn, err := m.store.GetConnection(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, true, errReconsent
	}
	if err != nil {
		return nil, true, transient("reading the upstream connection", err)
	}
	if conn.Version == staleVersion {
		return nil, false, nil
	}
	if conn.Status != store.StatusActive || conn.AccessToken.IsZero() {
		return nil, true, errReconsent
	}
	t := tokenOf(conn)
	if !t.valid(m.now()) {
		return nil, false, nil
	}
	m.setCached(key, t)
	return t, true, nil
}

// refreshFailed classifies a failed refresh (docs/architecture.md#failure-classification). A dead
// grant means reconsent only when the stored refresh token is still the one that was sent: when it
// changed, another refresh won the race and its token is used (or, if that one is already unusable,
// the failure is transient: the next attempt sends the new refresh token).
func (m *Manager) refreshFailed(ctx context.Context, up *Upstream, key store.ConnectionKey, conn *store.Connection, err error, requestID string) (*Token, error) {
	code := upstream.CodeOf(err)
	failed := func() {
		m.audit.Record(ctx, audit.Event{Event: audit.UpstreamRefreshFailed, Outcome: audit.OutcomeFailure, ReasonCode: code,
			SubjectID: key.Subject, UpstreamID: up.ID, AuthProfileID: up.AuthProfileID(), RequestID: requestID})
	}
	switch {
	case upstream.IsGrantDead(err):
		cur, gerr := m.store.GetConnection(ctx, key)
		if gerr != nil {
			return nil, transient("re-reading the upstream connection", gerr)
		}
		if cur.Status != store.StatusActive {
			return nil, errReconsent
		}
		if cur.RefreshToken != conn.RefreshToken {
			if t := tokenOf(cur); t.valid(m.now()) {
				m.setCached(key, t)
				return t, nil
			}
			return nil, transient("refreshing the upstream token", err)
		}
		failed()
		return nil, m.markReconsent(ctx, up, cur, code, "the upstream refused the refresh token", requestID)
	case upstream.IsClientRejected(err):
		failed()
		m.recordError(ctx, conn, code, "the upstream's authorization server rejected the gateway's client")
		return nil, setupError(up, err)
	default:
		failed()
		m.recordError(ctx, conn, code, "refreshing the token failed; will retry")
		return nil, transient("refreshing the upstream token", err)
	}
}

// recordError stores the last error on the connection, best effort (tokens untouched).
func (m *Manager) recordError(ctx context.Context, conn *store.Connection, code, msg string) {
	c := *conn
	c.LastError = &store.LastError{Code: code, Message: msg, At: m.now()}
	if err := m.store.PutConnection(ctx, &c); err == nil {
		*conn = c
	}
}

// markReconsent wipes the tokens of a dead grant and keeps the row and its history.
func (m *Manager) markReconsent(ctx context.Context, up *Upstream, conn *store.Connection, code, msg, requestID string) error {
	c := *conn
	c.Status = store.StatusReconsentRequired
	c.AccessToken, c.RefreshToken = "", ""
	c.LastError = &store.LastError{Code: code, Message: msg, At: m.now()}
	if err := m.store.PutConnection(ctx, &c); err != nil {
		// A conflict means the row changed since it was read (another instance refreshed or
		// marked it): nothing is marked or audited twice; the next attempt decides again.
		return transient("marking the connection for reconsent", err)
	}
	m.dropCached(conn.ConnectionKey)
	m.audit.Record(ctx, audit.Event{Event: audit.UpstreamReconsentRequired, Outcome: audit.OutcomeFailure, ReasonCode: code,
		SubjectID: conn.Subject, UpstreamID: up.ID, AuthProfileID: up.AuthProfileID(), RequestID: requestID})
	return errReconsent
}

// MarkReconsent marks the connection at key reconsent_required (an upstream that still answers
// 401 after a refresh).
func (m *Manager) MarkReconsent(ctx context.Context, up *Upstream, key store.ConnectionKey, code, msg, requestID string) error {
	conn, err := m.store.GetConnection(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return transient("reading the upstream connection", err)
	}
	if err := m.markReconsent(ctx, up, conn, code, msg, requestID); !errors.Is(err, errReconsent) {
		return err
	}
	return nil
}

// markReconsentAt marks the connection at key reconsent_required if it still holds the token of
// version (the one the upstream refused). When the row moved on (another instance refreshed, an
// earlier request already marked it), the refused token proves nothing about the current grant:
// the answer is transient, or the reconsent already recorded.
func (m *Manager) markReconsentAt(ctx context.Context, up *Upstream, key store.ConnectionKey, version int64, code, msg, requestID string) error {
	conn, err := m.store.GetConnection(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return transient("reading the upstream connection", err)
	}
	switch {
	case conn.Status != store.StatusActive:
		return nil
	case conn.Version != version:
		m.dropCached(key)
		return transient("replaying with the refreshed token", errors.New("the connection changed while the request was in flight"))
	}
	if err := m.markReconsent(ctx, up, conn, code, msg, requestID); !errors.Is(err, errReconsent) {
		return err
	}
	return nil
}

// transient is a 503 with Retry-After: the request may succeed later; nothing was lost.
func transient(doing string, err error) *problem.Error {
	return problem.New(http.StatusServiceUnavailable, "The gateway could not reach its credential for this upstream right now. Retry shortly.",
		fmt.Errorf("%s: %w", doing, err)).WithReason("upstream_credential_unavailable").WithHeader("Retry-After", strconv.Itoa(RetryAfterSeconds))
}

// setupError is an "upstream OAuth setup" failure, named for the operator.
func setupError(up *Upstream, err error) *problem.Error {
	return problem.New(http.StatusBadGateway, fmt.Sprintf("Upstream OAuth setup for %s failed: %s", up.DisplayName, safeReason(err)), err).
		WithReason(upstream.CodeOf(err))
}

// safeReason is the client-safe text of an upstream error.
func safeReason(err error) string {
	var ue *upstream.Error
	if errors.As(err, &ue) {
		return ue.Reason
	}
	return "see the gateway log"
}
