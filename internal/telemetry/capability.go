package telemetry

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// started is when this process's metrics began counting.
var started = time.Now()

// Started returns when the process's counters began (the setup UI labels its tables with it).
func (m *Metrics) Started() time.Time { return started }

// Capability call outcomes (the outcome of mcp_capability_completed and the outcome label of
// mcpgate_capability_calls_total): Zuplo's seven values.
const (
	OutcomeSuccess          = "success"           // a result
	OutcomeFailure          = "failure"           // the call failed: the upstream unreachable, a timeout, an HTTP error
	OutcomeDenied           = "denied"            // the upstream refused the caller (HTTP 401 or 403)
	OutcomeApplicationError = "application_error" // a JSON-RPC error answer, or a tool result with isError
	OutcomeConnectRequired  = "connect_required"  // the user must connect the upstream first (-32042, input_required)
	OutcomePartial          = "partial"           // the answer stream ended before its result
	OutcomeCancelled        = "cancelled"         // the client went away first
)

// Outcomes lists the seven outcomes in a fixed order (the setup UI's columns).
var Outcomes = []string{OutcomeSuccess, OutcomeApplicationError, OutcomeConnectRequired, OutcomeDenied, OutcomeFailure, OutcomePartial, OutcomeCancelled}

// OtherCapability is the label of a capability the upstream never listed through the route: a
// name a client made up must not become a metric series of its own.
const OtherCapability = "other"

// MaxListedNames bounds the capability names remembered per route and kind (and so the series
// per route): names listed beyond it are counted as OtherCapability.
const MaxListedNames = 500

// CapabilityCall is one finished call of a tool, prompt or resource through a route (the
// RouteCapabilities it is recorded with).
type CapabilityCall struct {
	Method  string // tools/call, prompts/get, resources/read
	Name    string // the tool or prompt name, or the resource URI, as the client sent it
	Outcome string
	// Gateway is the time the gateway spent on the call (policies, token lookup, forwarding);
	// Upstream the time from forwarding the request to the end of the upstream's answer.
	Gateway, Upstream time.Duration
}

// capabilities holds what the per-route, per-capability metrics and the setup UI's table need.
type capabilities struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu     sync.RWMutex
	routes map[string]*RouteCapabilities
}

func newCapabilities() *capabilities {
	return &capabilities{
		routes: map[string]*RouteCapabilities{},
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgate_capability_calls_total",
			Help: "Calls of tools, prompts and resources through MCP routes, by route (operationId), method (tools/call, prompts/get, resources/read), capability (a name the upstream listed through the route, else other) and outcome (success, application_error, connect_required, denied, failure, partial, cancelled).",
		}, []string{"route", "method", "capability", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpgate_capability_duration_seconds",
			Help:    "Time of capability calls, split in the gateway's part and the upstream's (from forwarding to the end of its answer), by route, method and capability.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "method", "capability", "part"}),
	}
}

// RouteCapabilities are one route's capability metrics. A handler gets it once (Capabilities)
// and records every call through it without allocating: the series of a (method, capability) are
// resolved the first time they are used.
type RouteCapabilities struct {
	m     *capabilities
	route string

	mu      sync.RWMutex
	listed  map[string]map[string]string // call method → names the upstream listed (each its own key)
	learnt  map[string]time.Time         // call method → when a list answer was last read
	entries map[capName]*capEntry
}

type capName struct{ method, label string }

// capEntry is one (method, capability) of a route: its series and this process's counters.
type capEntry struct {
	calls               [7]prometheus.Counter // indexed as Outcomes
	gateway, upstream   prometheus.Observer
	outcomes            [7]atomic.Int64
	gatewayN, upstreamN atomic.Int64
}

// Capabilities returns the capability metrics of route (its operationId).
func (m *Metrics) Capabilities(route string) *RouteCapabilities {
	c := m.caps
	c.mu.RLock()
	rc := c.routes[route]
	c.mu.RUnlock()
	if rc != nil {
		return rc
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rc = c.routes[route]; rc == nil {
		rc = &RouteCapabilities{m: c, route: route, listed: map[string]map[string]string{}, learnt: map[string]time.Time{}, entries: map[capName]*capEntry{}}
		c.routes[route] = rc
	}
	return rc
}

// Route returns the route's operationId.
func (rc *RouteCapabilities) Route() string { return rc.route }

// LearnListed remembers names the upstream listed through the route for callMethod (bounded by
// MaxListedNames per route and method).
func (rc *RouteCapabilities) LearnListed(callMethod string, names []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	set := rc.listed[callMethod]
	if set == nil {
		set = map[string]string{}
		rc.listed[callMethod] = set
	}
	for _, n := range names {
		if len(set) >= MaxListedNames {
			return
		}
		if _, ok := set[n]; !ok {
			n = strings.Clone(n)
			set[n] = n
		}
	}
}

// LearnInterval is how often a route's list answers are read for names: reading one costs a
// scan of the whole answer (about a microsecond per tool), and lists rarely change.
const LearnInterval = time.Minute

// ShouldLearn reports whether the list answer of callMethod now should be read for names: the
// first one, then one per LearnInterval.
func (rc *RouteCapabilities) ShouldLearn(callMethod string, now time.Time) bool {
	rc.mu.RLock()
	last, seen := rc.learnt[callMethod]
	rc.mu.RUnlock()
	if seen && now.Sub(last) < LearnInterval {
		return false
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if last, seen := rc.learnt[callMethod]; seen && now.Sub(last) < LearnInterval {
		return false
	}
	rc.learnt[callMethod] = now
	return true
}

// Learn remembers one name the upstream listed through the route for callMethod; a name already
// known costs a read lock and no allocation (name is copied only when it is new).
func (rc *RouteCapabilities) Learn(callMethod string, name []byte) {
	rc.mu.RLock()
	set := rc.listed[callMethod]
	_, known := set[string(name)]
	full := len(set) >= MaxListedNames
	rc.mu.RUnlock()
	if known || full {
		return
	}
	rc.LearnListed(callMethod, []string{string(name)})
}

// Label is the metric label of a called name: the name when the upstream listed it through the
// route, else OtherCapability. The label returned is the listed name's own copy, never name
// itself, which may share a request's memory.
func (rc *RouteCapabilities) Label(method, name string) string {
	rc.mu.RLock()
	label, listed := rc.listed[method][name]
	rc.mu.RUnlock()
	if !listed {
		return OtherCapability
	}
	return label
}

// Record counts one finished capability call of the route.
func (rc *RouteCapabilities) Record(c CapabilityCall) {
	e := rc.entry(c.Method, rc.Label(c.Method, c.Name))
	i := slices.Index(Outcomes, c.Outcome)
	if i < 0 {
		return
	}
	e.calls[i].Inc()
	e.gateway.Observe(c.Gateway.Seconds())
	e.upstream.Observe(c.Upstream.Seconds())
	e.outcomes[i].Add(1)
	e.gatewayN.Add(int64(c.Gateway))
	e.upstreamN.Add(int64(c.Upstream))
}

func (rc *RouteCapabilities) entry(method, label string) *capEntry {
	k := capName{method, label}
	rc.mu.RLock()
	e := rc.entries[k]
	rc.mu.RUnlock()
	if e != nil {
		return e
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if e = rc.entries[k]; e == nil {
		e = &capEntry{
			gateway:  rc.m.duration.WithLabelValues(rc.route, method, label, "gateway"),
			upstream: rc.m.duration.WithLabelValues(rc.route, method, label, "upstream"),
		}
		for i, o := range Outcomes {
			e.calls[i] = rc.m.calls.WithLabelValues(rc.route, method, label, o)
		}
		rc.entries[k] = e
	}
	return e
}

// CapabilityRow is one line of the per-route, per-capability table of this process's calls.
type CapabilityRow struct {
	Route, Method, Capability string
	Calls                     int64
	// Outcomes counts the calls by outcome, in the order of Outcomes.
	Outcomes [7]int64
	// MeanGateway and MeanUpstream are the mean times of the gateway's and the upstream's part.
	MeanGateway, MeanUpstream time.Duration
}

// CapabilityTable returns this process's counters since start, by route, method and capability,
// sorted by route, method, then most calls first.
func (m *Metrics) CapabilityTable() []CapabilityRow {
	var rows []CapabilityRow
	m.caps.mu.RLock()
	routes := make([]*RouteCapabilities, 0, len(m.caps.routes))
	for _, rc := range m.caps.routes {
		routes = append(routes, rc)
	}
	m.caps.mu.RUnlock()
	for _, rc := range routes {
		rc.mu.RLock()
		for k, e := range rc.entries {
			r := CapabilityRow{Route: rc.route, Method: k.method, Capability: k.label}
			for i := range e.outcomes {
				r.Outcomes[i] = e.outcomes[i].Load()
				r.Calls += r.Outcomes[i]
			}
			if r.Calls > 0 {
				r.MeanGateway = time.Duration(e.gatewayN.Load() / r.Calls)
				r.MeanUpstream = time.Duration(e.upstreamN.Load() / r.Calls)
			}
			rows = append(rows, r)
		}
		rc.mu.RUnlock()
	}
	slices.SortFunc(rows, func(a, b CapabilityRow) int {
		if c := strings.Compare(a.Route, b.Route); c != 0 {
			return c
		}
		if c := strings.Compare(a.Method, b.Method); c != 0 {
			return c
		}
		if a.Calls != b.Calls {
			if a.Calls > b.Calls {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Capability, b.Capability)
	})
	return rows
}
