// Package audit records security-relevant events (a request refused, a connection established,
// a refresh that failed, a revoke) to the structured log and to the store. Events never carry
// tokens, codes, verifiers, secrets, tickets or full redirect URIs.
package audit

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/telemetry"
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

// Aggregation (RecordRefusal, RecordAccepted).
const (
	// AggregateWindow is the time one aggregate row covers: refusals of one kind from one address,
	// or accepted requests of one kind, in one window of this length are one row.
	AggregateWindow = time.Minute
	// MaxAggregates bounds the aggregates held at once (one per kind and address). Events beyond
	// it are counted together (address OtherAddress, no subject, no details), so a flood from many
	// addresses or many subjects costs at most this many rows a window, plus one per kind.
	MaxAggregates = 1000
	// OtherAddress is the address of the aggregate that counts refusals from addresses beyond
	// MaxAggregates.
	OtherAddress = "other"
	// aggregateFlushEvery is how often the writer stores the aggregates of windows that have ended.
	aggregateFlushEvery = 10 * time.Second
)

// RetentionInterval is how often RunRetention deletes expired audit rows.
const RetentionInterval = time.Hour

// Recorder writes events to the log and, when it has one, the store. A store failure is logged,
// never returned: auditing must not fail the request it describes.
type Recorder struct {
	Log   *slog.Logger
	Store store.Audit
	Now   func() time.Time
	// URLs finds the client address of a refused request (ClientAddr: X-Forwarded-For only from
	// trusted proxies); nil: the direct peer.
	URLs *publicurl.URLs
	// Metrics counts rows written, dropped and deleted; nil: telemetry.Default.
	Metrics *telemetry.Metrics

	once sync.Once
	// flushes are Flush's requests to the writer: it stores every aggregate and closes the channel.
	flushes chan chan struct{}
	done    chan struct{} // closed when the writer has stored the aggregates after Close
	mu      sync.RWMutex  // guards closed against the sends on flushes and new aggregates
	closed  bool

	aggMu sync.Mutex
	agg   map[aggKey]*aggregate
}

// RecordRefusal records a refused request (an unauthenticated caller, a failed admin sign-in)
// without letting anonymous traffic grow the database: the log line is written at debug level, and
// the store gets one row per kind of refusal (event, outcome, reason, subject, operation, upstream,
// details), address (ClientAddr, an IPv6 address by its /64) and AggregateWindow, with details
// {"count": n, "address": "…", "lastAt": "…"} added, the time and request id of the first. The
// background writer stores a window's rows once it has ended (and everything at Flush and Close).
func (r *Recorder) RecordRefusal(ctx context.Context, e Event, addr string) {
	if r == nil {
		return
	}
	addr = publicurl.AddrKey(addr)
	r.log(slog.LevelDebug, e, "address", addr)
	r.count(e, addr)
}

// RecordAccepted records a request a policy accepted (mcp_request_accepted) on the hot path: the
// log line is at debug level (the access log already has the request), and the store gets one row
// per kind of event (event, outcome, subject, operation, upstream, …) and AggregateWindow with
// {"count": n, "lastAt": "…"} in its details — the time and request id of the first — never a row
// per request. Beyond MaxAggregates at once, the requests of further users are counted in one row
// per kind without subject or actor. A database row per request would make the store's write budget the gateway's
// request budget, on PostgreSQL shared by every replica.
func (r *Recorder) RecordAccepted(ctx context.Context, e Event) {
	if r == nil {
		return
	}
	r.log(slog.LevelDebug, e)
	r.count(e, "")
}

// count adds e to its aggregate (addr "": not counted per address).
func (r *Recorder) count(e Event, addr string) {
	if r.Store == nil {
		return
	}
	r.start()
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return
	}
	now := r.clock()()
	k := aggKey{event: e.Event, outcome: e.Outcome, reason: e.ReasonCode, subject: e.SubjectID, actor: e.Actor,
		upstream: e.UpstreamID, operation: e.OperationID, profile: e.AuthProfileID, addr: addr,
		window: now.Truncate(AggregateWindow).UnixNano()}
	if len(e.Details) > 0 {
		b, _ := json.Marshal(e.Details) // map keys sorted: the same details give the same key
		k.details = string(b)
	}
	r.aggMu.Lock()
	defer r.aggMu.Unlock()
	if r.agg == nil {
		r.agg = map[aggKey]*aggregate{}
	}
	if a, ok := r.agg[k]; ok {
		a.count++
		a.last = now
		return
	}
	if len(r.agg) >= MaxAggregates {
		// Too many addresses or users at once: count this one with the others of its kind.
		// Subject, actor and details are left out, so the overflow is bounded by the
		// configuration (the actor too: the token exchange records the caller as the actor, one
		// per user).
		k.subject, k.actor, k.details = "", "", ""
		if k.addr != "" { // a refusal's
			k.addr = OtherAddress
		}
		if a, ok := r.agg[k]; ok {
			a.count++
			a.last = now
			return
		}
		e.SubjectID, e.Actor, e.Details = "", "", nil
	}
	// The aggregate outlives the request: its id is copied, as it shares memory with the gateway's
	// per-request state and would keep the whole request alive until the window is written
	// (bench TestCachedConnectionHeap).
	e.RequestID = strings.Clone(e.RequestID)
	r.agg[k] = &aggregate{first: e, at: now, last: now, count: 1, addr: k.addr}
}

// ClientAddr is the address RecordRefusal should count r's refusal against (see publicurl.URLs.ClientAddr).
func (r *Recorder) ClientAddr(req *http.Request) string {
	if r == nil {
		return (*publicurl.URLs)(nil).ClientAddr(req)
	}
	return r.URLs.ClientAddr(req)
}

// Flush stores the events aggregated so far, whatever their window, and waits until the writer has
// stored them, or until ctx ends.
func (r *Recorder) Flush(ctx context.Context) {
	if r == nil || r.Store == nil {
		return
	}
	r.start()
	ch := make(chan struct{})
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return
	}
	select {
	case r.flushes <- ch:
	case <-ctx.Done():
		r.mu.RUnlock()
		return
	}
	r.mu.RUnlock()
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// Close stops the background writer after it has stored what is aggregated, or when ctx ends (the
// log already has every event). Later RecordRefusal and RecordAccepted calls only log.
func (r *Recorder) Close(ctx context.Context) {
	if r == nil {
		return
	}
	r.once.Do(func() {}) // no writer started yet: none will be
	r.mu.Lock()
	if r.closed || r.flushes == nil {
		r.closed = true
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.flushes)
	r.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
	}
}

// RunRetention deletes the audit events older than keep now and then every interval, until ctx
// ends. keep <= 0 keeps events forever (it returns at once).
func (r *Recorder) RunRetention(ctx context.Context, keep, interval time.Duration) {
	if r == nil || r.Store == nil || keep <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := r.Store.DeleteAuditBefore(ctx, r.clock()().Add(-keep))
		switch {
		case err != nil && ctx.Err() == nil && r.Log != nil:
			r.Log.Warn("deleting expired audit events", "error", err)
		case err == nil:
			r.metrics().AuditRowsDeleted(n)
			if n > 0 && r.Log != nil {
				r.Log.Debug("deleted expired audit events", "rows", n, "retention", keep.String())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Recorder) start() {
	r.once.Do(func() {
		r.flushes = make(chan chan struct{})
		r.done = make(chan struct{})
		go r.drain()
	})
}

// drain is the background writer: it stores the aggregates of ended windows every
// aggregateFlushEvery, and every aggregate on Flush and Close.
func (r *Recorder) drain() {
	defer close(r.done)
	tick := time.NewTicker(aggregateFlushEvery)
	defer tick.Stop()
	for {
		select {
		case ch, ok := <-r.flushes:
			r.flushAggregates(true)
			if !ok {
				return
			}
			close(ch)
		case <-tick.C:
			r.flushAggregates(false)
		}
	}
}

// flushAggregates stores the aggregates whose window has ended (all: every one).
func (r *Recorder) flushAggregates(all bool) {
	now := r.clock()()
	r.aggMu.Lock()
	var due []*aggregate
	for k, a := range r.agg {
		if all || !now.Before(time.Unix(0, k.window).Add(AggregateWindow)) {
			due = append(due, a)
			delete(r.agg, k)
		}
	}
	r.aggMu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, a := range due {
		e := a.first
		d := make(map[string]any, len(e.Details)+3)
		for k, v := range e.Details {
			d[k] = v
		}
		d["count"] = a.count
		if a.addr != "" {
			d["address"] = a.addr
		}
		d["lastAt"] = a.last.UTC().Format(time.RFC3339Nano)
		e.Details = d
		se := r.row(e)
		se.Time = a.at
		r.append(se)
	}
}

func (r *Recorder) append(se *store.AuditEvent) {
	if err := r.Store.AppendAudit(context.Background(), se); err != nil {
		r.metrics().AuditRowDropped()
		if r.Log != nil {
			r.Log.Error("writing audit event", "event", se.Event, "error", err)
		}
		return
	}
	r.metrics().AuditRowWritten()
}

func (r *Recorder) metrics() *telemetry.Metrics {
	if r.Metrics != nil {
		return r.Metrics
	}
	return telemetry.Default
}

// aggKey is one kind of event (from one address, for refusals) in one window.
type aggKey struct {
	event, outcome, reason, subject, actor, upstream, operation, profile, details, addr string
	window                                                                              int64 // window start, Unix nanoseconds
}

// aggregate counts the events of one aggKey.
type aggregate struct {
	first    Event // the first refusal: its request id and details go in the row
	at, last time.Time
	count    int
	addr     string
}

// Record writes e to the log and the store before returning.
func (r *Recorder) Record(ctx context.Context, e Event) {
	if r == nil {
		return
	}
	r.log(slog.LevelInfo, e)
	if r.Store == nil {
		return
	}
	if err := r.Store.AppendAudit(context.WithoutCancel(ctx), r.row(e)); err != nil {
		r.metrics().AuditRowDropped()
		if r.Log != nil {
			r.Log.Error("writing audit event", "event", e.Event, "error", err)
		}
		return
	}
	r.metrics().AuditRowWritten()
}

func (r *Recorder) log(level slog.Level, e Event, extra ...any) {
	if r.Log == nil || !r.Log.Enabled(context.Background(), level) {
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
	attrs = append(attrs, extra...)
	r.Log.Log(context.Background(), level, "audit", attrs...)
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
