// Package telemetry holds mcpgate's Prometheus metrics: what happens to upstream connections
// (refresh outcomes, lease waits, replays after an upstream 401, step-ups, connect-required
// answers), how long upstreams take, and rate limits (refusals, the store's failures). It is
// process-wide, like the state it describes: several gateway instances in one process (tests) add
// to the same series.
//
// Labels are bounded and never secret: the upstream id or a policy's name (configuration), an
// outcome or state from a fixed list, a status class. Never a token, subject, user, request id, code or URL
// (docs/architecture.md#never-logged).
package telemetry

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Refresh outcomes (the outcome label of mcpgate_upstream_refreshes_total).
const (
	RefreshSuccess   = "success"   // this instance refreshed and stored a new token
	RefreshReused    = "reused"    // another caller or instance had already refreshed: its token was used
	RefreshTransient = "transient" // 5xx, timeout, network, storage: tokens kept, retried later
	RefreshDead      = "reconsent" // the grant is dead: the connection is now reconsent_required
	RefreshSetup     = "setup"     // invalid_client and other operator problems
)

// Replay outcomes (mcpgate_upstream_replays_total): what the one replay after an upstream 401 got.
const (
	ReplaySuccess      = "success"
	ReplayUnauthorized = "unauthorized" // still 401: reconsent_required (or transient when the token expired in flight)
	ReplayError        = "error"        // the refresh or the replay failed
)

// Step-up outcomes (mcpgate_upstream_step_ups_total).
const (
	StepUpAsked   = "asked"   // the user is asked to grant the union of scopes
	StepUpLimited = "limited" // the per-scope-set limit was reached: an error without a link
)

// Metrics is the set of mcpgate metrics and the registry that serves them.
type Metrics struct {
	reg *prometheus.Registry

	refreshes        *prometheus.CounterVec
	refreshDuration  *prometheus.HistogramVec
	leaseWaits       *prometheus.HistogramVec
	replays          *prometheus.CounterVec
	stepUps          *prometheus.CounterVec
	connectRequired  *prometheus.CounterVec
	upstreamDuration *prometheus.HistogramVec
	signIn           *prometheus.CounterVec
	auditWritten     prometheus.Counter
	auditDropped     prometheus.Counter
	auditDeleted     prometheus.Counter
	caps             *capabilities
	rateRefused      *prometheus.CounterVec
	rateUnchecked    *prometheus.CounterVec
	rateStoreFailed  prometheus.Counter
}

// Outcomes of a request whose rate limit could not be checked (mcpgate_ratelimit_unchecked_total).
const (
	RateUncheckedAllowed = "allowed" // the default: the request goes on (throwOnFailure false)
	RateUncheckedRefused = "refused" // throwOnFailure: 503
)

// Default is the process's metrics, served at /metrics.
var Default = New()

// New returns a fresh set of metrics on its own registry, with the Go and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), caps: newCapabilities()}
	m.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpgate_upstream_refreshes_total",
		Help: "Upstream token refresh attempts by outcome: success, reused (another caller or instance refreshed first), transient, reconsent, setup.",
	}, []string{"upstream", "outcome"})
	m.refreshDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mcpgate_upstream_refresh_duration_seconds",
		Help:    "Time one refresh took, lease wait and token request included.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
	}, []string{"upstream"})
	m.leaseWaits = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mcpgate_upstream_refresh_lease_wait_seconds",
		Help:    "Time a refresh waited because another instance held the connection's refresh lease (observed only when it had to wait).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30},
	}, []string{"upstream"})
	m.replays = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpgate_upstream_replays_total",
		Help: "Requests replayed once with a refreshed token after an upstream 401, by outcome: success, unauthorized, error.",
	}, []string{"upstream", "outcome"})
	m.stepUps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpgate_upstream_step_ups_total",
		Help: "Upstream 403 insufficient_scope answers turned into a step-up, by outcome: asked, limited.",
	}, []string{"upstream", "outcome"})
	m.connectRequired = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpgate_connect_required_total",
		Help: "Connect-required answers sent to MCP clients, by state (authenticating, reconsent_required, admin_connect_required).",
	}, []string{"upstream", "state"})
	m.upstreamDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mcpgate_upstream_response_seconds",
		Help:    "Time from the gateway receiving a request to the upstream's response headers (policies and any refresh wait included), by status class.",
		Buckets: prometheus.DefBuckets,
	}, []string{"upstream", "code"})
	m.signIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpgate_signin_events_total",
		Help: "Sign-in events of the gateway's authorization server for MCP clients, by event (browser_login, client_registered, token_issued, token_validated, token_refreshed, token_revoked, consent_approved, consent_denied) and outcome.",
	}, []string{"event", "outcome"})
	m.auditWritten = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mcpgate_audit_rows_written_total",
		Help: "Audit rows stored (one row per event, or per refused-request aggregate: event, reason, address and minute).",
	})
	m.auditDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mcpgate_audit_rows_dropped_total",
		Help: "Audit rows not stored: the background writer was behind, or the store failed (the log still has the event).",
	})
	m.auditDeleted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mcpgate_audit_rows_deleted_total",
		Help: "Audit rows deleted by retention (--audit-retention).",
	})
	m.rateRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpgate_ratelimit_refused_total",
		Help: "Requests answered 429 by a rate-limit-inbound policy.",
	}, []string{"policy"})
	m.rateUnchecked = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpgate_ratelimit_unchecked_total",
		Help: "Requests whose rate limit could not be checked (the rate-limit store was unavailable), by outcome: allowed, refused (throwOnFailure).",
	}, []string{"policy", "outcome"})
	m.rateStoreFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mcpgate_ratelimit_store_failures_total",
		Help: "Failed calls to the rate-limit store (MCPGATE_REDIS_URL): each is followed by a 1 s pause in which the store is not asked.",
	})
	m.reg.MustRegister(m.rateRefused, m.rateUnchecked, m.rateStoreFailed, m.auditWritten, m.auditDropped, m.auditDeleted, m.signIn, m.refreshes, m.refreshDuration, m.leaseWaits, m.replays, m.stepUps, m.connectRequired, m.upstreamDuration,
		m.caps.calls, m.caps.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SignIn counts one sign-in event (see mcpgate_signin_events_total).
func (m *Metrics) SignIn(event, outcome string) { m.signIn.WithLabelValues(event, outcome).Inc() }

// RateLimited counts one request a rate-limit-inbound policy answered 429.
func (m *Metrics) RateLimited(policy string) { m.rateRefused.WithLabelValues(policy).Inc() }

// RateUnchecked counts one request whose rate limit could not be checked, by outcome.
func (m *Metrics) RateUnchecked(policy, outcome string) {
	m.rateUnchecked.WithLabelValues(policy, outcome).Inc()
}

// RateStoreFailed counts one failed call to the rate-limit store.
func (m *Metrics) RateStoreFailed() { m.rateStoreFailed.Inc() }

// AuditRowWritten counts one stored audit row.
func (m *Metrics) AuditRowWritten() { m.auditWritten.Inc() }

// AuditRowDropped counts one audit row that was not stored.
func (m *Metrics) AuditRowDropped() { m.auditDropped.Inc() }

// AuditRowsDeleted counts audit rows retention deleted.
func (m *Metrics) AuditRowsDeleted(n int) {
	if n > 0 {
		m.auditDeleted.Add(float64(n))
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is for tests that gather values.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Refresh counts one refresh attempt of upstream that ended in outcome after d.
func (m *Metrics) Refresh(upstream, outcome string, d time.Duration) {
	m.refreshes.WithLabelValues(upstream, outcome).Inc()
	m.refreshDuration.WithLabelValues(upstream).Observe(d.Seconds())
}

// LeaseWait records how long a refresh waited for another instance's lease.
func (m *Metrics) LeaseWait(upstream string, d time.Duration) {
	m.leaseWaits.WithLabelValues(upstream).Observe(d.Seconds())
}

// Replay counts one replay after an upstream 401.
func (m *Metrics) Replay(upstream, outcome string) {
	m.replays.WithLabelValues(upstream, outcome).Inc()
}

// StepUp counts one step-up decision.
func (m *Metrics) StepUp(upstream, outcome string) {
	m.stepUps.WithLabelValues(upstream, outcome).Inc()
}

// ConnectRequired counts one connect-required answer in state.
func (m *Metrics) ConnectRequired(upstream, state string) {
	m.connectRequired.WithLabelValues(upstream, state).Inc()
}

// UpstreamResponse records an upstream answer with status after d.
func (m *Metrics) UpstreamResponse(upstream string, status int, d time.Duration) {
	m.upstreamDuration.WithLabelValues(upstream, statusClass(status)).Observe(d.Seconds())
}

func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return statusClasses[status/100-1]
}

// statusClasses are statusClass's answers, built once: no string is made per response.
var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// MetricsPath is where the gateway serves Default.
const MetricsPath = "/metrics"

// Mount registers GET /metrics (Default) with a gateway's endpoint registry (gateway.Services.Register).
func Mount(register func(pattern string, h http.Handler)) {
	register("GET "+MetricsPath, Default.Handler())
}
