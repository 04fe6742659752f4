package connect

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/mcpwire"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// Step-up limits: at most this many authorizations per (subject, upstream, scope set) per window.
const (
	StepUpLimit  = 3
	StepUpWindow = 10 * time.Minute
)

// Error codes of the gateway's own JSON-RPC answers.
const (
	codeUpstreamSetup   = -32002 // upstream OAuth setup failed (no URL: the user cannot fix it)
	codeStepUpLimited   = -32003 // step-up authorization attempts exhausted
	codeUpstreamRefused = -32004 // the upstream refused this request with a fresh token
)

// reasonRefusedFreshToken is the reasonCode of a request the upstream refused (401) with a token
// the gateway had just refreshed (or refreshed less than ForcedRefreshInterval ago).
const reasonRefusedFreshToken = "upstream_refused_fresh_token"

// Hook returns the response hook of the token-exchange policy for one request: it turns an
// upstream's 401 into a refresh-and-replay (when the caller had a token) or a connect-required
// answer, and a 403 insufficient_scope into a step-up connect-required. An upstream challenge is
// never handed to the MCP client as is: the client would start OAuth against the wrong server.
func (m *Manager) Hook(ep upstream.Endpoints, up *Upstream, lk Lookup, sess clientSession) policy.ResponseHook {
	return func(c *policy.Context, r *http.Request, resp *http.Response) (*http.Response, error) {
		if !c.Start.IsZero() {
			telemetry.Default.UpstreamResponse(up.ID, resp.StatusCode, time.Since(c.Start))
		}
		sess.learn(c)
		switch {
		case resp.StatusCode == http.StatusUnauthorized:
		case resp.StatusCode == http.StatusForbidden && isInsufficientScope(resp.Header):
		default:
			m.wrapSession(resp, sess)
			return resp, nil
		}
		ch, _ := upstream.ParseBearerChallenge(resp.Header)
		up.RememberChallenge(ch)
		drain(resp)
		ctx := r.Context()

		if resp.StatusCode == http.StatusForbidden {
			if lk.Token == nil {
				return m.connectRequired(c, r, sess, up, lk.Key, mcpwire.StateAuthenticating, ch.Scopes(), nil)
			}
			return m.stepUp(c, r, sess, up, lk, ch)
		}

		// 401.
		if lk.Token == nil {
			state := lk.State
			if state == "" {
				state = mcpwire.StateAuthenticating
			}
			return m.connectRequired(c, r, sess, up, lk.Key, state, ch.Scopes(), nil)
		}
		// Had a token: it may be stale here (another replica refreshed and the upstream revoked the
		// old access token) or expired without expires_in. Re-read first; refresh only if the row
		// has not moved on; replay once. A token that still looked valid is refreshed at most once
		// per ForcedRefreshInterval (forceRefresh): the upstream may refuse this one request for a
		// reason of its own, and refreshing on every such request would rotate the grant each time.
		var nt *Token
		var err error
		if lk.Token.valid(m.now()) {
			nt, err = m.forceRefresh(ctx, ep, up, lk.Key, lk.Token.Version, c.RequestID)
		} else {
			nt, err = m.Refresh(ctx, ep, up, lk.Key, lk.Token.Version, c.RequestID)
		}
		if errors.Is(err, errReconsent) {
			return m.connectRequired(c, r, sess, up, lk.Key, mcpwire.StateReconsentRequired, ch.Scopes(), nil)
		}
		if errors.Is(err, errForcedRefreshSkipped) {
			return m.refusedFreshToken(c, r, up, refusedSkipped), nil
		}
		if err != nil {
			telemetry.Default.Replay(up.ID, telemetry.ReplayError)
			return nil, err
		}
		resp2, err := c.Replay(ctx, nt.Authorization.Reveal())
		if err != nil {
			telemetry.Default.Replay(up.ID, telemetry.ReplayError)
			return nil, err
		}
		if resp2.StatusCode != http.StatusUnauthorized {
			telemetry.Default.Replay(up.ID, telemetry.ReplaySuccess)
		}
		if resp2.StatusCode == http.StatusUnauthorized {
			telemetry.Default.Replay(up.ID, telemetry.ReplayUnauthorized)
			ch2, _ := upstream.ParseBearerChallenge(resp2.Header)
			up.RememberChallenge(ch2)
			drain(resp2)
			if !nt.valid(m.now()) {
				// The token expired while the request was in flight (a slow upstream, a token
				// that lives shorter than the round trip): that says nothing about the grant.
				return nil, transient("replaying with the refreshed token", errors.New("the token expired in flight"))
			}
			if up.Mode == store.ModeShared {
				// The authorization server has just refreshed the grant, so it is alive: the
				// upstream refused this request, not the grant. One caller's request never wipes
				// the connection every user of the upstream shares (a shared grant is marked for
				// reconsent only when a refresh is refused, token.go refreshFailed).
				return m.refusedFreshToken(c, r, up, refusedReplayed), nil
			}
			// user-oauth: the connection is the caller's own, and the connect-required answer
			// hands them the link that renews it.
			if err := m.markReconsentAt(ctx, up, lk.Key, nt.Version, "upstream_rejected_token", "the upstream refused a freshly refreshed token", c.RequestID); err != nil {
				return nil, err
			}
			return m.connectRequired(c, r, sess, up, lk.Key, mcpwire.StateReconsentRequired, ch2.Scopes(), nil)
		}
		if resp2.StatusCode == http.StatusForbidden && isInsufficientScope(resp2.Header) {
			// The refreshed token works but lacks a scope: the same step-up as a first 403.
			ch2, _ := upstream.ParseBearerChallenge(resp2.Header)
			up.RememberChallenge(ch2)
			drain(resp2)
			return m.stepUp(c, r, sess, up, Lookup{Key: lk.Key, Token: nt}, ch2)
		}
		// The replayed answer is the upstream's like any other: its session id reaches the
		// client only wrapped.
		m.wrapSession(resp2, sess)
		return resp2, nil
	}
}

// How a request refused with a fresh token came to be answered (the forced_refresh label of
// mcpgate_upstream_refused_fresh_token_total).
const (
	refusedReplayed = "replayed" // refreshed, replayed once, refused again
	refusedSkipped  = "skipped"  // a forced refresh ran less than ForcedRefreshInterval ago: no refresh, no replay
)

// refusedFreshToken answers a request the upstream refused (401) although its token is fresh:
// just refreshed and replayed, or the connection's current token with a forced refresh less than
// ForcedRefreshInterval ago (so not refreshed again). The connection is kept as it is
// (the authorization server vouches for the grant); the caller gets a JSON-RPC error naming the
// upstream, and the refusal is counted and logged.
func (m *Manager) refusedFreshToken(c *policy.Context, r *http.Request, up *Upstream, how string) *http.Response {
	refusedFreshTokens.WithLabelValues(up.ID, how).Inc()
	m.log.Warn("the upstream refused a request with a fresh token; the connection is kept",
		"upstreamServerId", up.ID, "authMode", up.AuthMode(), "forcedRefresh", how, "requestId", c.RequestID)
	env, _ := mcpwire.Peek(c.RequestBody())
	msg := up.DisplayName + " refused this request with a fresh token (HTTP 401, although the gateway refreshed its token for " + up.DisplayName + " moments ago). " +
		"The connection to " + up.DisplayName + " is kept and other requests still work; this request is not authorized by " +
		up.DisplayName + " as sent. If it keeps happening, ask an administrator to check " + up.DisplayName + "."
	return mcpwire.ErrorResponse(env, r.Header.Get("Accept"), codeUpstreamRefused, msg,
		map[string]any{"upstreamServerId": up.ID, "reasonCode": reasonRefusedFreshToken, "requestId": c.RequestID})
}

func isInsufficientScope(h http.Header) bool {
	ch, ok := upstream.ParseBearerChallenge(h)
	return ok && ch.Error == "insufficient_scope"
}

func drain(resp *http.Response) {
	if resp.Body != nil {
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		_ = resp.Body.Close()
	}
}

// stepUp asks the user to re-authorize with the union of granted and challenged scopes. It stops
// (an error without a link) once the person was sent to the upstream's authorization server
// AuthorizationLimit times within AuthorizationWindow, the first connect included (counted in the
// shared store: every replica sees it, limits.go), and after StepUpLimit step-up links per scope
// set per window in this process.
func (m *Manager) stepUp(c *policy.Context, r *http.Request, sess clientSession, up *Upstream, lk Lookup, ch upstream.BearerChallenge) (*http.Response, error) {
	union := unionScopes(lk.Token.Scopes, ch.Scopes())
	var added []string
	for _, s := range union {
		if !slices.Contains(lk.Token.Scopes, s) {
			added = append(added, s)
		}
	}
	exhausted := false
	if up.Mode == store.ModeUser {
		n, _ := m.recentAuthorizations(r.Context(), lk.Key)
		exhausted = n >= AuthorizationLimit
	}
	if exhausted || !m.allowStepUp(lk.Key, union) {
		telemetry.Default.StepUp(up.ID, telemetry.StepUpLimited)
		env, _ := mcpwire.Peek(c.RequestBody())
		msg := up.DisplayName + " keeps asking for more permissions (" + strings.Join(added, ", ") +
			") than were granted; the gateway stopped asking after " + strconv.Itoa(AuthorizationLimit) + " authorization attempts in 10 minutes. Ask an administrator to check the scopes configured for " + up.DisplayName + "."
		m.audit.Record(r.Context(), audit.Event{Event: audit.ConnectRequired, Outcome: audit.OutcomeDenied, ReasonCode: "step_up_limited",
			SubjectID: lk.Key.Subject, UpstreamID: up.ID, OperationID: c.Route.OperationID, AuthProfileID: up.AuthProfileID(), RequestID: c.RequestID})
		return mcpwire.ErrorResponse(env, r.Header.Get("Accept"), codeStepUpLimited, msg,
			map[string]any{"upstreamServerId": up.ID, "reasonCode": "step_up_limited", "requestedScopes": union}), nil
	}
	telemetry.Default.StepUp(up.ID, telemetry.StepUpAsked)
	return m.connectRequired(c, r, sess, up, lk.Key, mcpwire.StateReconsentRequired, union, added)
}

func (m *Manager) allowStepUp(key store.ConnectionKey, scopes []string) bool {
	k := cacheKey(key) + "\x00" + strings.Join(scopes, " ")
	now := m.now()
	m.stepMu.Lock()
	defer m.stepMu.Unlock()
	var recent []time.Time
	for _, t := range m.steps[k] {
		if now.Sub(t) < StepUpWindow {
			recent = append(recent, t)
		}
	}
	if len(recent) >= StepUpLimit {
		m.steps[k] = recent
		return false
	}
	m.steps[k] = append(recent, now)
	return true
}

func unionScopes(a, b []string) []string {
	set := map[string]bool{}
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if s != "" && !set[s] {
			set[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// connectRequired answers the request with a connect-required for key: in shared mode with nobody
// connected, admin_connect_required (no link: an administrator must act). Discovery runs first
// (cached), so a broken upstream gets a named "upstream OAuth setup" error instead of a link that
// cannot work (docs/architecture.md#errors-three-buckets).
func (m *Manager) connectRequired(c *policy.Context, r *http.Request, sess clientSession, up *Upstream, key store.ConnectionKey, state string, scopes, added []string) (*http.Response, error) {
	ctx := r.Context()
	env, err := mcpwire.Peek(c.RequestBody())
	if err != nil {
		env = mcpwire.Envelope{} // not JSON-RPC: answered as a notification (428 problem)
	}
	cr := mcpwire.ConnectRequired{
		State: state, UpstreamServerID: up.ID, AuthProfileID: up.AuthProfileID(), NextAction: "redirect",
	}
	if c.Route != nil {
		cr.OperationID = c.Route.OperationID
	}
	auditEvent := audit.Event{Event: audit.ConnectRequired, Outcome: audit.OutcomeConnectRequired, ReasonCode: state,
		SubjectID: key.Subject, UpstreamID: up.ID, OperationID: cr.OperationID, AuthProfileID: up.AuthProfileID(), RequestID: c.RequestID}
	if c.User != nil {
		auditEvent.Actor = c.User.Subject()
	}

	if up.Mode == store.ModeShared {
		cr.State = mcpwire.StateAdminConnectRequired
		cr.NextAction = ""
		cr.Message = "An administrator must connect " + up.DisplayName + " before this service is available."
		auditEvent.ReasonCode = cr.State
		m.audit.Record(ctx, auditEvent)
		telemetry.Default.ConnectRequired(up.ID, cr.State)
		return m.connectRequiredAnswer(c, r, env, sess, up, cr), nil
	}

	if _, err := m.engine.Discover(ctx, up.Upstream, up.Challenge().ResourceMetadata); err != nil {
		var ue *upstream.Error
		reason, bucket := "discovery failed", upstream.BucketOAuthSetup
		if errors.As(err, &ue) {
			reason, bucket = ue.Reason, ue.Bucket
		}
		msg := "Upstream OAuth setup for " + up.DisplayName + " failed: " + reason
		m.log.Error("upstream OAuth discovery failed", "upstreamServerId", up.ID, "requestId", c.RequestID, "error", err)
		auditEvent.Outcome, auditEvent.ReasonCode = audit.OutcomeFailure, upstream.CodeOf(err)
		m.audit.Record(ctx, auditEvent)
		return mcpwire.ErrorResponse(env, r.Header.Get("Accept"), codeUpstreamSetup, msg,
			map[string]any{"bucket": string(bucket), "reasonCode": upstream.CodeOf(err), "upstreamServerId": up.ID, "requestId": c.RequestID}), nil
	}

	t := m.signer.New(Ticket{Subject: key.Subject, Mode: string(key.Mode), UpstreamID: up.ID, OperationID: cr.OperationID,
		State: state, Scopes: scopes, Added: added})
	t.ElicitationID = t.ID
	cr.ElicitationID = t.ID
	q := url.Values{"browserTicket": {m.signer.Sign(t)}, "operationId": {cr.OperationID}}
	cr.AuthURL = m.urls.Gateway(r, "/auth/connections/"+url.PathEscape(up.ID)+"/connect") + "?" + q.Encode()
	if state == mcpwire.StateReconsentRequired {
		cr.Message = up.DisplayName + " authorization must be renewed."
	} else {
		cr.Message = "Connect " + up.DisplayName + " to continue."
	}
	cr.Scopes = scopes
	m.audit.Record(ctx, auditEvent)
	telemetry.Default.ConnectRequired(up.ID, state)
	return m.connectRequiredAnswer(c, r, env, sess, up, cr), nil
}
