package setup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// The functions in this file are the admin API. The JSON handlers (api.go) and the setup pages
// (ui.go) both call them, so the UI shows exactly what the API returns.

// Bounds of what one call returns.
const (
	// maxConnections bounds one connections listing (the health view is filtered, not paged).
	maxConnections = 1000
	// DefaultAuditPage is the audit page size; MaxAuditPage the largest a caller may ask for.
	DefaultAuditPage = 50
	MaxAuditPage     = 500
	// viewDiscoveryTimeout bounds the (usually cached) discovery a listing waits for.
	viewDiscoveryTimeout = 5 * time.Second
	// checkTimeout bounds "Check now".
	checkTimeout = 60 * time.Second
)

// RouteView is one MCP route of the configuration.
type RouteView struct {
	Path        string   `json:"path"`
	Methods     []string `json:"methods"`
	OperationID string   `json:"operationId"`
	Summary     string   `json:"summary,omitempty"`
	UpstreamURL string   `json:"upstreamUrl,omitempty"`
	// UpstreamID and AuthMode name the token-exchange upstream; AuthMode is "none" for a route
	// without one (a public upstream, or one using static headers).
	UpstreamID string   `json:"upstreamId,omitempty"`
	AuthMode   string   `json:"authMode"`
	Policies   []string `json:"policies"`
}

// listRoutes returns every MCP route in configuration order.
func (h *Handler) listRoutes() []RouteView {
	out := []RouteView{}
	ups := h.m.Upstreams()
	for _, rc := range h.mcp {
		v := RouteView{Path: rc.Path, Methods: rc.Methods, OperationID: rc.OperationID, Summary: rc.Summary, AuthMode: "none",
			Policies: append(append([]string{}, rc.Inbound...), rc.Outbound...)}
		if rc.Info != nil && rc.Info.UpstreamURL != nil {
			v.UpstreamURL = rc.Info.UpstreamURL.String()
		}
		for _, up := range ups {
			if up.OperationIDs[rc.OperationID] {
				v.UpstreamID, v.AuthMode = up.ID, up.AuthMode()
			}
		}
		out = append(out, v)
	}
	return out
}

// UpstreamStatus is one upstream as the admin sees it.
type UpstreamStatus struct {
	ID           string          `json:"id"`
	DisplayName  string          `json:"displayName"`
	Summary      string          `json:"summary,omitempty"`
	AuthMode     string          `json:"authMode"`
	URL          string          `json:"url"`
	OperationIDs []string        `json:"operationIds"`
	Scopes       []string        `json:"scopes"` // configured; empty: from the challenge or metadata
	Discovery    DiscoveryStatus `json:"discovery"`
	// Shared is the shared connection of a shared-oauth upstream (nil when nobody connected it or
	// in user-oauth mode).
	Shared *ConnectionView `json:"shared,omitempty"`
	// Counts are the user connections by health.
	Counts HealthCounts `json:"counts"`
}

// IsShared reports whether the upstream uses one gateway-wide grant.
func (u UpstreamStatus) IsShared() bool { return u.AuthMode == "shared-oauth" }

// HealthCounts counts connections by health.
type HealthCounts struct {
	Total   int                    `json:"total"`
	ByState map[connect.Health]int `json:"byState"`
}

// Failing is the number of connections somebody must act on.
func (c HealthCounts) Failing() int {
	n := 0
	for s, k := range c.ByState {
		if s.Failing() {
			n += k
		}
	}
	return n
}

// Get returns the count of one state (templates: {{.Counts.Get "active"}}).
func (c HealthCounts) Get(s string) int { return c.ByState[connect.Health(s)] }

// DiscoveryStatus is the outcome of the upstream's OAuth discovery, step by step.
type DiscoveryStatus struct {
	OK        bool      `json:"ok"`
	CheckedAt time.Time `json:"checkedAt,omitzero"`
	// PRMURL is where the protected-resource metadata was found; Resource the canonical resource.
	PRMURL   string `json:"protectedResourceMetadataUrl,omitempty"`
	Resource string `json:"resource,omitempty"`
	// Issuer and ASMetadataURL name the authorization server used.
	Issuer          string   `json:"issuer,omitempty"`
	ASMetadataURL   string   `json:"authorizationServerMetadataUrl,omitempty"`
	PKCEMethods     []string `json:"pkceMethods,omitempty"`
	PKCES256        bool     `json:"pkceS256"`
	ScopesSupported []string `json:"scopesSupported,omitempty"`
	RevocationURL   string   `json:"revocationEndpoint,omitempty"`
	// Registration is how the gateway gets its client id there: manual, cimd or dcr, and the id
	// (empty until a DCR registration happened).
	RegistrationMethod string `json:"registrationMethod,omitempty"`
	ClientID           string `json:"clientId,omitempty"`
	// Error is why discovery failed.
	Error *ErrorView           `json:"error,omitempty"`
	Trace []upstream.TraceStep `json:"trace"`
	// Steps and Ready are the setup check of `mcpgate check` (upstream.CheckReport): each step's
	// result, and whether none failed. Problem is the first failed step after discovery (no
	// registration mode available, say); a discovery failure is Error.
	Steps   []upstream.CheckStep `json:"steps"`
	Ready   bool                 `json:"ready"`
	Problem *ErrorView           `json:"problem,omitempty"`
}

// ErrorView is an error as the troubleshooting table names it: bucket, code, reason.
type ErrorView struct {
	Bucket     string `json:"bucket"`
	Code       string `json:"code"`
	Reason     string `json:"reason"`
	HTTPStatus int    `json:"httpStatus,omitempty"`
	URL        string `json:"url,omitempty"`
}

// ConnectionView is one stored connection without its tokens.
type ConnectionView struct {
	UpstreamID      string         `json:"upstreamId"`
	Mode            store.Mode     `json:"mode"`
	Subject         string         `json:"subject"`
	User            string         `json:"user"` // the part of the subject a person recognises
	Health          connect.Health `json:"health"`
	Status          store.Status   `json:"status"`
	Scopes          []string       `json:"scopes"`
	ExpiresAt       time.Time      `json:"expiresAt,omitzero"`
	LastRefreshAt   time.Time      `json:"lastRefreshAt,omitzero"`
	HasRefreshToken bool           `json:"hasRefreshToken"`
	Issuer          string         `json:"issuer,omitempty"`
	ClientID        string         `json:"clientId,omitempty"`
	ConnectedBy     string         `json:"connectedBy,omitempty"`
	ConnectedAt     time.Time      `json:"connectedAt,omitzero"`
	UpdatedAt       time.Time      `json:"updatedAt,omitzero"`
	LastError       *LastErrorView `json:"lastError,omitempty"`
}

// LastErrorView is the last failure recorded on a connection.
type LastErrorView struct {
	Code    string    `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

func (h *Handler) connectionView(c *store.Connection, now time.Time) ConnectionView {
	v := ConnectionView{UpstreamID: c.UpstreamID, Mode: c.Mode, Subject: c.Subject, User: subject.Subject(c.Subject).Display(),
		Health: connect.Classify(c, now), Status: c.Status, Scopes: c.Scopes, ExpiresAt: c.Expiry, LastRefreshAt: c.LastRefreshAt,
		HasRefreshToken: c.HasRefreshToken, Issuer: c.Issuer, ClientID: c.ClientID, ConnectedBy: c.ConnectedBy,
		ConnectedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	if v.Scopes == nil {
		v.Scopes = []string{}
	}
	if c.Mode == store.ModeShared {
		v.User = "shared (every user)"
	}
	if c.LastError != nil {
		v.LastError = &LastErrorView{Code: c.LastError.Code, Message: c.LastError.Message, At: c.LastError.At}
	}
	return v
}

// listUpstreams returns every upstream, sorted by display name, with discovery (cached unless
// it was never run) and connection health.
func (h *Handler) listUpstreams(ctx context.Context, r *http.Request) ([]UpstreamStatus, error) {
	ups := h.m.Upstreams()
	sort.Slice(ups, func(i, j int) bool {
		if ups[i].DisplayName != ups[j].DisplayName {
			return ups[i].DisplayName < ups[j].DisplayName
		}
		return ups[i].ID < ups[j].ID
	})
	conns, err := h.store.ListConnections(ctx, store.ConnectionFilter{})
	if err != nil {
		return nil, unavailable("listing connections", err)
	}
	out := make([]UpstreamStatus, len(ups))
	var wg sync.WaitGroup
	for i, up := range ups {
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(ctx, viewDiscoveryTimeout)
			defer cancel()
			d, derr := h.m.Engine().Discover(dctx, up.Upstream, up.Challenge().ResourceMetadata)
			out[i] = h.upstreamStatus(ctx, r, up, d, derr)
		})
	}
	wg.Wait()
	now := h.now()
	for i := range out {
		out[i].Counts = HealthCounts{ByState: map[connect.Health]int{}}
		for j := range conns {
			c := &conns[j]
			if c.UpstreamID != out[i].ID {
				continue
			}
			if c.Mode == store.ModeShared {
				v := h.connectionView(c, now)
				h.sharedConnectedBy(ctx, &v)
				out[i].Shared = &v
				continue
			}
			out[i].Counts.Total++
			out[i].Counts.ByState[connect.Classify(c, now)]++
		}
	}
	return out, nil
}

// getUpstream returns one upstream's status.
func (h *Handler) getUpstream(ctx context.Context, r *http.Request, id string) (UpstreamStatus, error) {
	all, err := h.listUpstreams(ctx, r)
	if err != nil {
		return UpstreamStatus{}, err
	}
	for _, u := range all {
		if u.ID == id {
			return u, nil
		}
	}
	return UpstreamStatus{}, unknownUpstream(id)
}

// check reruns discovery for one upstream without the cache and returns its status. It is the
// setup check `mcpgate check` runs too (upstream.(*Engine).Check): discovery, S256, the
// registration mode that would be used, scopes; nothing is registered.
func (h *Handler) check(ctx context.Context, r *http.Request, id string, admin string) (UpstreamStatus, error) {
	up, ok := h.m.Upstream(id)
	if !ok {
		return UpstreamStatus{}, unknownUpstream(id)
	}
	dctx, cancel := detached(ctx, checkTimeout)
	defer cancel()
	rep := h.m.Engine().Check(dctx, up.Upstream, up.Challenge().ResourceMetadata, h.m.Endpoints(r))
	outcome, code := audit.OutcomeSuccess, ""
	if !rep.OK {
		outcome, code = audit.OutcomeFailure, rep.Problem.Code
	}
	h.audit.Record(ctx, audit.Event{Event: EventDiscoveryChecked, Outcome: outcome, ReasonCode: code, Actor: admin,
		UpstreamID: id, AuthProfileID: up.AuthProfileID(), RequestID: requestID(ctx)})
	return h.getUpstream(ctx, r, id)
}

// EventDiscoveryChecked is the audit event of "Check now".
const EventDiscoveryChecked = "mcp_admin_discovery_checked"

// upstreamStatus builds an upstream's status from a discovery result, assessed as the setup
// check assesses it (upstream.(*Engine).Assess).
func (h *Handler) upstreamStatus(ctx context.Context, r *http.Request, up *connect.Upstream, d *upstream.Discovery, derr error) UpstreamStatus {
	s := UpstreamStatus{ID: up.ID, DisplayName: up.DisplayName, Summary: up.Summary, AuthMode: up.AuthMode(), URL: up.URL,
		OperationIDs: up.OperationIDList(), Scopes: up.Scopes}
	if s.Scopes == nil {
		s.Scopes = []string{}
	}
	rep := h.m.Engine().Assess(ctx, up.Upstream, d, derr, h.m.Endpoints(r))
	ds := DiscoveryStatus{Trace: []upstream.TraceStep{}, Steps: rep.Steps, Ready: rep.OK}
	if d != nil {
		ds.CheckedAt = d.FetchedAt
		ds.Trace = append(ds.Trace, d.Trace...)
	}
	if derr != nil {
		var ue *upstream.Error
		ev := &ErrorView{Bucket: string(upstream.BucketUpstreamResponse), Code: upstream.CodeOf(derr), Reason: "see the gateway log"}
		if errors.As(derr, &ue) {
			ev = &ErrorView{Bucket: string(ue.Bucket), Code: ue.Code, Reason: ue.Reason, HTTPStatus: ue.HTTPStatus, URL: ue.URL}
			if len(ds.Trace) == 0 {
				ds.Trace = append(ds.Trace, ue.Trace...)
			}
		}
		ds.Error = ev
		if ds.CheckedAt.IsZero() {
			ds.CheckedAt = h.now()
		}
		s.Discovery = ds
		return s
	}
	ds.OK = true
	ds.PRMURL, ds.Resource = d.PRMURL, d.Resource
	ds.Issuer, ds.ASMetadataURL = d.AS.Issuer, d.AS.MetadataURL
	ds.PKCEMethods = d.AS.CodeChallengeMethodsSupported
	for _, m := range ds.PKCEMethods {
		if m == "S256" {
			ds.PKCES256 = true
		}
	}
	ds.ScopesSupported, ds.RevocationURL = d.AS.ScopesSupported, d.AS.RevocationEndpoint
	ds.RegistrationMethod, ds.ClientID = registrationText(rep), rep.Registration.ClientID
	if p := rep.Problem; p != nil {
		ds.Problem = &ErrorView{Bucket: string(p.Bucket), Code: p.Code, Reason: p.Message, HTTPStatus: p.HTTPStatus, URL: p.URL}
	}
	s.Discovery = ds
	return s
}

// registrationText says how the gateway identifies itself at the upstream's AS, as the setup
// check planned it (nothing is registered to find out).
func registrationText(rep *upstream.CheckReport) string {
	p := rep.Registration
	switch {
	case p.Mode == upstream.ModeManual:
		return "manual"
	case p.Mode == upstream.ModeCIMD:
		return "client ID metadata document"
	case p.Registered:
		return "dynamic client registration"
	case p.Available:
		return "dynamic client registration (not registered yet: happens on the first connect)"
	case p.RegistrationEndpoint == "" && !p.CIMDSupported:
		return "dynamic client registration (the authorization server has no registration endpoint)"
	}
	return "none available (see the error below)"
}

// sharedConnectedBy fills who connected a shared slot (connect.Manager.SharedConnectedBy).
func (h *Handler) sharedConnectedBy(ctx context.Context, v *ConnectionView) {
	if v.ConnectedBy != "" && v.ConnectedBy != subject.Shared.String() {
		return
	}
	actor, at := h.m.SharedConnectedBy(ctx, v.UpstreamID)
	if actor != "" {
		v.ConnectedBy = actor
	}
	if !at.IsZero() {
		v.ConnectedAt = at
	}
}

// ConnectionQuery selects connections.
type ConnectionQuery struct {
	UpstreamID string `json:"upstreamId,omitempty"`
	// State is a health state, or "failing" (refresh failing, reconsent required, revoked).
	State string `json:"state,omitempty"`
	// User matches subjects containing it (case-insensitive).
	User string `json:"user,omitempty"`
	// Shared includes shared connections (default: user connections only).
	Shared bool `json:"shared,omitempty"`
}

// StateFailing is the ConnectionQuery state that selects every failing connection.
const StateFailing = "failing"

func connectionQueryOf(q url.Values) (ConnectionQuery, error) {
	cq := ConnectionQuery{UpstreamID: q.Get("upstream"), State: q.Get("state"), User: strings.TrimSpace(q.Get("user")), Shared: q.Get("shared") == "true"}
	if cq.State != "" && cq.State != StateFailing && !validHealth(cq.State) {
		return cq, badRequest(fmt.Sprintf("state must be one of %s or failing, got %q", healthList(), cq.State))
	}
	return cq, nil
}

func validHealth(s string) bool {
	for _, h := range connect.HealthStates {
		if string(h) == s {
			return true
		}
	}
	return false
}

func healthList() string {
	var s []string
	for _, h := range connect.HealthStates {
		s = append(s, string(h))
	}
	return strings.Join(s, ", ")
}

// ConnectionList is the health view: matching connections and counts per upstream.
type ConnectionList struct {
	Query       ConnectionQuery         `json:"query"`
	Connections []ConnectionView        `json:"connections"`
	Truncated   bool                    `json:"truncated"`
	Counts      map[string]HealthCounts `json:"countsByUpstream"` // every user connection, before the state and user filters
}

// listConnections returns the connections matching q (worst health first, then user).
func (h *Handler) listConnections(ctx context.Context, q ConnectionQuery) (ConnectionList, error) {
	if q.UpstreamID != "" {
		if _, ok := h.m.Upstream(q.UpstreamID); !ok {
			return ConnectionList{}, unknownUpstream(q.UpstreamID)
		}
	}
	all, err := h.store.ListConnections(ctx, store.ConnectionFilter{UpstreamID: q.UpstreamID})
	if err != nil {
		return ConnectionList{}, unavailable("listing connections", err)
	}
	now := h.now()
	out := ConnectionList{Query: q, Connections: []ConnectionView{}, Counts: map[string]HealthCounts{}}
	for _, up := range h.m.Upstreams() {
		if q.UpstreamID == "" || up.ID == q.UpstreamID {
			out.Counts[up.ID] = HealthCounts{ByState: map[connect.Health]int{}}
		}
	}
	user := strings.ToLower(q.User)
	for i := range all {
		c := &all[i]
		v := h.connectionView(c, now)
		if c.Mode == store.ModeUser {
			hc, ok := out.Counts[c.UpstreamID]
			if !ok {
				hc = HealthCounts{ByState: map[connect.Health]int{}}
			}
			hc.Total++
			hc.ByState[v.Health]++
			out.Counts[c.UpstreamID] = hc
		} else if !q.Shared {
			continue
		}
		switch {
		case q.State == StateFailing && !v.Health.Failing():
			continue
		case q.State != "" && q.State != StateFailing && string(v.Health) != q.State:
			continue
		case user != "" && !strings.Contains(strings.ToLower(c.Subject), user):
			continue
		}
		if c.Mode == store.ModeShared {
			h.sharedConnectedBy(ctx, &v)
		}
		if len(out.Connections) == maxConnections {
			out.Truncated = true
			continue
		}
		out.Connections = append(out.Connections, v)
	}
	rank := map[connect.Health]int{}
	for i, s := range connect.HealthStates {
		rank[s] = len(connect.HealthStates) - i
	}
	sort.SliceStable(out.Connections, func(i, j int) bool {
		a, b := out.Connections[i], out.Connections[j]
		if rank[a.Health] != rank[b.Health] {
			return rank[a.Health] > rank[b.Health]
		}
		if a.UpstreamID != b.UpstreamID {
			return a.UpstreamID < b.UpstreamID
		}
		return a.Subject < b.Subject
	})
	return out, nil
}

// RevokeRequest names one connection to revoke.
type RevokeRequest struct {
	UpstreamID string `json:"upstreamId"`
	Subject    string `json:"subject"` // empty with Shared
	Shared     bool   `json:"shared"`
}

// RevokeResponse says what a revoke did.
type RevokeResponse struct {
	UpstreamID         string `json:"upstreamId"`
	Subject            string `json:"subject"`
	Revoked            bool   `json:"revoked"` // false: it was already revoked
	UpstreamRevocation string `json:"upstreamRevocation"`
	ConnectedBy        string `json:"connectedBy,omitempty"`
}

func (rr RevokeRequest) key() (store.ConnectionKey, error) {
	if rr.UpstreamID == "" {
		return store.ConnectionKey{}, badRequest("upstreamId is required")
	}
	if rr.Shared || rr.Subject == subject.Shared.String() {
		return store.ConnectionKey{UpstreamID: rr.UpstreamID, Mode: store.ModeShared, Subject: subject.Shared.String()}, nil
	}
	if rr.Subject == "" {
		return store.ConnectionKey{}, badRequest("subject is required (or shared: true)")
	}
	return store.ConnectionKey{UpstreamID: rr.UpstreamID, Mode: store.ModeUser, Subject: rr.Subject}, nil
}

// revoke revokes one connection on behalf of admin.
func (h *Handler) revoke(ctx context.Context, r *http.Request, rr RevokeRequest, admin string) (RevokeResponse, error) {
	key, err := rr.key()
	if err != nil {
		return RevokeResponse{}, err
	}
	if _, ok := h.m.Upstream(key.UpstreamID); !ok {
		return RevokeResponse{}, unknownUpstream(key.UpstreamID)
	}
	rctx, cancel := detached(ctx, checkTimeout)
	defer cancel()
	res, err := h.m.RevokeConnection(rctx, r, key, admin, requestID(ctx))
	if errors.Is(err, store.ErrNotFound) {
		return RevokeResponse{}, problem.New(http.StatusNotFound, "No such connection.", err).WithReason("connection_not_found")
	}
	if err != nil {
		return RevokeResponse{}, unavailable("revoking the connection", err)
	}
	return RevokeResponse{UpstreamID: key.UpstreamID, Subject: key.Subject, Revoked: res.Revoked,
		UpstreamRevocation: res.UpstreamRevocation, ConnectedBy: res.ConnectedBy}, nil
}

// RevokeAllResponse counts what revoke-all did.
type RevokeAllResponse struct {
	Query   ConnectionQuery `json:"query"`
	Revoked int             `json:"revoked"`
	Failed  int             `json:"failed"`
}

// revokeAll revokes every user connection of one upstream matching q (the shared one only when
// q.Shared). An upstream is required: "revoke everything everywhere" is not one click.
func (h *Handler) revokeAll(ctx context.Context, r *http.Request, q ConnectionQuery, admin string) (RevokeAllResponse, error) {
	if q.UpstreamID == "" {
		return RevokeAllResponse{}, badRequest("upstream is required for revoke-all")
	}
	list, err := h.listConnections(ctx, q)
	if err != nil {
		return RevokeAllResponse{}, err
	}
	out := RevokeAllResponse{Query: q}
	for _, c := range list.Connections {
		if c.Health == connect.HealthRevoked {
			continue
		}
		res, err := h.revoke(ctx, r, RevokeRequest{UpstreamID: c.UpstreamID, Subject: c.Subject, Shared: c.Mode == store.ModeShared}, admin)
		switch {
		case err != nil:
			out.Failed++
			h.log.Error("revoking a connection failed", "upstreamServerId", c.UpstreamID, "error", err)
		case res.Revoked:
			out.Revoked++
		}
	}
	return out, nil
}

// AuditQuery selects audit events.
type AuditQuery struct {
	User       string    `json:"user,omitempty"` // exact namespaced subject, or "shared"
	UpstreamID string    `json:"upstream,omitempty"`
	Event      string    `json:"event,omitempty"`
	Outcome    string    `json:"outcome,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	Until      time.Time `json:"until,omitzero"`
	Before     int64     `json:"before,omitempty"`
	Limit      int       `json:"limit"`
}

func auditQueryOf(q url.Values) (AuditQuery, error) {
	aq := AuditQuery{User: strings.TrimSpace(q.Get("user")), UpstreamID: q.Get("upstream"), Event: q.Get("event"), Outcome: q.Get("outcome"), Limit: DefaultAuditPage}
	var errs []string
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"since", &aq.Since}, {"until", &aq.Until}} {
		if v := strings.TrimSpace(q.Get(f.name)); v != "" {
			t, err := parseTime(v)
			if err != nil {
				errs = append(errs, f.name+": "+err.Error())
			}
			*f.dst = t
		}
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			errs = append(errs, "before: must be an event id")
		}
		aq.Before = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxAuditPage {
			errs = append(errs, fmt.Sprintf("limit: must be 1 to %d", MaxAuditPage))
		}
		aq.Limit = n
	}
	if len(errs) > 0 {
		return aq, badRequest(strings.Join(errs, "; "))
	}
	return aq, nil
}

// parseTime accepts RFC 3339, or the value of an <input type="datetime-local"> / a date (UTC).
func parseTime(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not a time (use 2006-01-02T15:04 UTC or RFC 3339)")
}

// AuditEventView is one audit event.
type AuditEventView struct {
	ID          int64          `json:"id"`
	Time        time.Time      `json:"time"`
	Event       string         `json:"event"`
	Outcome     string         `json:"outcome"`
	ReasonCode  string         `json:"reasonCode,omitempty"`
	UpstreamID  string         `json:"upstreamId,omitempty"`
	OperationID string         `json:"operationId,omitempty"`
	Subject     string         `json:"subject,omitempty"`
	Actor       string         `json:"actor,omitempty"`
	RequestID   string         `json:"requestId,omitempty"`
	Details     map[string]any `json:"details,omitempty"`
}

// DetailText renders the details as "k=v" pairs, sorted.
func (e AuditEventView) DetailText() string {
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, e.Details[k]))
	}
	return strings.Join(parts, " · ")
}

// AuditPage is one page of audit events, newest first.
type AuditPage struct {
	Query  AuditQuery       `json:"query"`
	Events []AuditEventView `json:"events"`
	// NextBefore is the before= of the next (older) page; 0 when this is the last.
	NextBefore int64 `json:"nextBefore,omitempty"`
}

// queryAudit returns one page of audit events.
func (h *Handler) queryAudit(ctx context.Context, q AuditQuery) (AuditPage, error) {
	if q.Limit <= 0 {
		q.Limit = DefaultAuditPage
	}
	evs, err := h.store.QueryAudit(ctx, store.AuditQuery{Subject: q.User, UpstreamID: q.UpstreamID, Event: q.Event, Outcome: q.Outcome,
		Since: q.Since, Until: q.Until, BeforeID: q.Before, Limit: q.Limit + 1})
	if err != nil {
		return AuditPage{}, unavailable("reading the audit log", err)
	}
	out := AuditPage{Query: q, Events: []AuditEventView{}}
	if len(evs) > q.Limit {
		evs = evs[:q.Limit]
		out.NextBefore = evs[len(evs)-1].ID
	}
	for _, e := range evs {
		v := AuditEventView{ID: e.ID, Time: e.Time, Event: e.Event, Outcome: e.Outcome, ReasonCode: e.ReasonCode, UpstreamID: e.UpstreamID,
			OperationID: e.OperationID, Subject: e.Subject, Actor: e.Actor, RequestID: e.RequestID}
		if len(e.Details) > 0 {
			_ = json.Unmarshal(e.Details, &v.Details)
		}
		out.Events = append(out.Events, v)
	}
	return out, nil
}

func unknownUpstream(id string) *problem.Error {
	return problem.New(http.StatusNotFound, fmt.Sprintf("No upstream with id %q is configured.", id), nil).WithReason("unknown_upstream")
}

func badRequest(msg string) *problem.Error {
	return problem.New(http.StatusBadRequest, msg, nil).WithReason("invalid_request")
}

func unavailable(doing string, err error) *problem.Error {
	return problem.New(http.StatusServiceUnavailable, "The gateway's store is unavailable; try again shortly.", fmt.Errorf("%s: %w", doing, err)).
		WithReason("store_unavailable").WithHeader("Retry-After", "5")
}
