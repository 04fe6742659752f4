// Package audit records security-relevant events (a request refused, a connection established,
// a refresh that failed, a revoke) to the structured log and to the store. Events never carry
// tokens, codes, verifiers, secrets, tickets or full redirect URIs.
package audit

import (
	"context"
	"encoding/json"
	"log/slog"
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

// Recorder writes events to the log and, when it has one, the store. A store failure is logged,
// never returned: auditing must not fail the request it describes.
type Recorder struct {
	Log   *slog.Logger
	Store store.Audit
	Now   func() time.Time
}

// Record writes e.
func (r *Recorder) Record(ctx context.Context, e Event) {
	if r == nil {
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
	if r.Log != nil {
		r.Log.Info("audit", attrs...)
	}
	if r.Store == nil {
		return
	}
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
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	se := &store.AuditEvent{Time: now(), Event: e.Event, Outcome: e.Outcome, ReasonCode: e.ReasonCode, UpstreamID: e.UpstreamID,
		OperationID: e.OperationID, Subject: e.SubjectID, Actor: e.Actor, RequestID: e.RequestID, Details: raw}
	if err := r.Store.AppendAudit(context.WithoutCancel(ctx), se); err != nil && r.Log != nil {
		r.Log.Error("writing audit event", "event", e.Event, "error", err)
	}
}
