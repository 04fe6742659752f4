// Package audit records security-relevant events (a request refused, a connection established,
// a refresh that failed, a revoke) to the structured log and to the store. Events never carry
// tokens, codes, verifiers, secrets, tickets or full redirect URIs.
package audit

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
)

// Event names (Zuplo's mcp_ snake_case vocabulary where it has one).
const (
	RequestAccepted               = "mcp_request_accepted"
	RequestRejected               = "mcp_request_rejected"
	UpstreamConnectStarted        = "mcp_auth_upstream_connect_started"
	ConsentApproved               = "mcp_auth_consent_approved"
	ConsentDenied                 = "mcp_auth_consent_denied"
	UpstreamConnectionEstablished = "mcp_auth_upstream_connection_established"
	UpstreamConnectionFailed      = "mcp_auth_upstream_connection_failed"
	UpstreamTokenRefreshed        = "mcp_auth_upstream_token_refreshed"
	UpstreamRefreshFailed         = "mcp_auth_upstream_refresh_failed"
	UpstreamReconsentRequired     = "mcp_auth_upstream_reconsent_required"
	UpstreamConnectionRevoked     = "mcp_auth_upstream_connection_revoked"
	ConnectRequired               = "mcp_auth_connect_required"

	// Sign-in (the gateway as the MCP clients' authorization server).
	BrowserLogin            = "mcp_auth_browser_login"
	ClientRegistered        = "mcp_auth_client_registered"
	DownstreamTokenIssued   = "mcp_auth_downstream_token_issued"
	DownstreamTokenRefresh  = "mcp_auth_downstream_token_refreshed"
	DownstreamTokenRevoked  = "mcp_auth_downstream_token_revoked"
	DownstreamTokenValidate = "mcp_auth_downstream_token_validated" // counted in /metrics, never a row per request
)

// Outcomes.
const (
	OutcomeSuccess         = "success"
	OutcomeFailure         = "failure"
	OutcomeDenied          = "denied"
	OutcomeConnectRequired = "connect_required"
)

// Event is one audit entry.
type Event struct {
	Event         string
	Outcome       string
	ReasonCode    string
	SubjectID     string
	Actor         string // who acted, when not the subject (an admin revoking, say)
	UpstreamID    string
	OperationID   string
	AuthProfileID string
	RequestID     string
	// Details are extra non-secret facts (scopes, status codes, the shared credential's owner).
	Details map[string]any
}

// asyncQueue bounds the events waiting for the store in RecordAsync.
const asyncQueue = 4096

// Recorder writes events to the log and, when it has one, the store. A store failure is logged,
// never returned: auditing must not fail the request it describes.
type Recorder struct {
	Log   *slog.Logger
	Store store.Audit
	Now   func() time.Time

	once    sync.Once
	queue   chan queued
	done    chan struct{} // closed when the writer has drained the queue after Close
	dropped atomic.Int64
	mu      sync.RWMutex // guards closed against RecordAsync's send
	closed  bool
}

// RecordAsync is Record for per-request events on the hot path (mcp_request_accepted): the log line
// is written now, the store row by a background writer, so no request waits for the database. When
// the writer falls behind by more than asyncQueue events, further rows are dropped and counted (the
// log line is still written).
func (r *Recorder) RecordAsync(ctx context.Context, e Event) {
	if r == nil {
		return
	}
	r.log(e)
	if r.Store == nil {
		return
	}
	r.once.Do(func() {
		r.queue = make(chan queued, asyncQueue)
		r.done = make(chan struct{})
		go r.drain()
	})
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return
	}
	select {
	case r.queue <- queued{e: e, at: r.clock()()}:
	default:
		if n := r.dropped.Add(1); r.Log != nil && (n == 1 || n%1000 == 0) {
			r.Log.Warn("audit store writer is behind; dropped per-request audit rows (the log has them)", "dropped", n)
		}
	}
}

// Close stops the background writer after it has stored what is queued, or when ctx ends (the
// log already has every event). Later RecordAsync calls only log.
func (r *Recorder) Close(ctx context.Context) {
	if r == nil {
		return
	}
	r.once.Do(func() {}) // no writer started yet: none will be
	r.mu.Lock()
	if r.closed || r.queue == nil {
		r.closed = true
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.queue)
	r.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
	}
}

func (r *Recorder) drain() {
	defer close(r.done)
	for q := range r.queue {
		// The row (details JSON) is built here, off the request path.
		se := r.row(q.e)
		se.Time = q.at
		if err := r.Store.AppendAudit(context.Background(), se); err != nil && r.Log != nil {
			r.Log.Error("writing audit event", "event", se.Event, "error", err)
		}
	}
}

// Record writes e to the log and the store before returning.
func (r *Recorder) Record(ctx context.Context, e Event) {
	if r == nil {
		return
	}
	r.log(e)
	if r.Store == nil {
		return
	}
	if err := r.Store.AppendAudit(context.WithoutCancel(ctx), r.row(e)); err != nil && r.Log != nil {
		r.Log.Error("writing audit event", "event", e.Event, "error", err)
	}
}

func (r *Recorder) log(e Event) {
	if r.Log == nil {
		return
	}
	attrs := []any{"event", e.Event, "outcome", e.Outcome}
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, k, v)
		}
	}
	add("reasonCode", e.ReasonCode)
	add("subjectId", e.SubjectID)
	add("actor", e.Actor)
	add("upstreamServerId", e.UpstreamID)
	add("operationId", e.OperationID)
	add("authProfileId", e.AuthProfileID)
	add("requestId", e.RequestID)
	for k, v := range e.Details {
		attrs = append(attrs, k, v)
	}
	r.Log.Info("audit", attrs...)
}

// queued is an event waiting for the background writer, with the time it happened.
type queued struct {
	e  Event
	at time.Time
}

func (r *Recorder) clock() func() time.Time {
	if r.Now != nil {
		return r.Now
	}
	return time.Now
}

func (r *Recorder) row(e Event) *store.AuditEvent {
	details := map[string]any{}
	for k, v := range e.Details {
		details[k] = v
	}
	if e.AuthProfileID != "" {
		details["authProfileId"] = e.AuthProfileID
	}
	var raw json.RawMessage
	if len(details) > 0 {
		raw, _ = json.Marshal(details)
	}
	return &store.AuditEvent{Time: r.clock()(), Event: e.Event, Outcome: e.Outcome, ReasonCode: e.ReasonCode, UpstreamID: e.UpstreamID,
		OperationID: e.OperationID, Subject: e.SubjectID, Actor: e.Actor, RequestID: e.RequestID, Details: raw}
}
