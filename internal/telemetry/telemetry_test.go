package telemetry

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// allowedLabels are the only label names a metric may have: none can carry a token, a subject
// or a request (docs/architecture.md#never-logged).
// policy is a rate-limit policy's name: configuration, like the upstream id.
var allowedLabels = map[string]bool{"upstream": true, "outcome": true, "state": true, "code": true, "policy": true}

func TestMetricsAreServedWithSafeLabels(t *testing.T) {
	m := New()
	m.Refresh("linear", RefreshSuccess, 120*time.Millisecond)
	m.Refresh("linear", RefreshReused, time.Millisecond)
	m.LeaseWait("linear", 40*time.Millisecond)
	m.Replay("linear", ReplaySuccess)
	m.StepUp("linear", StepUpLimited)
	m.ConnectRequired("linear", "reconsent_required")
	m.UpstreamResponse("linear", 401, 3*time.Millisecond)
	m.UpstreamResponse("linear", 0, time.Millisecond)
	m.AuditRowWritten()
	m.AuditRowWritten()
	m.AuditRowDropped()
	m.AuditRowsDeleted(7)
	m.RateLimited("per-user")
	m.RateUnchecked("per-user", RateUncheckedAllowed)
	m.RateStoreFailed()

	mux := http.NewServeMux()
	Mount(mux.Handle) // Default, as the gateway serves it
	mux.Handle("GET /m", m.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/m")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`mcpgate_upstream_refreshes_total{outcome="success",upstream="linear"} 1`,
		`mcpgate_upstream_refreshes_total{outcome="reused",upstream="linear"} 1`,
		`mcpgate_upstream_refresh_duration_seconds_count{upstream="linear"} 2`,
		`mcpgate_upstream_refresh_lease_wait_seconds_count{upstream="linear"} 1`,
		`mcpgate_upstream_replays_total{outcome="success",upstream="linear"} 1`,
		`mcpgate_upstream_step_ups_total{outcome="limited",upstream="linear"} 1`,
		`mcpgate_connect_required_total{state="reconsent_required",upstream="linear"} 1`,
		`mcpgate_upstream_response_seconds_count{code="4xx",upstream="linear"} 1`,
		`mcpgate_upstream_response_seconds_count{code="other",upstream="linear"} 1`,
		`mcpgate_audit_rows_written_total 2`,
		`mcpgate_audit_rows_dropped_total 1`,
		`mcpgate_audit_rows_deleted_total 7`,
		`mcpgate_ratelimit_refused_total{policy="per-user"} 1`,
		`mcpgate_ratelimit_unchecked_total{outcome="allowed",policy="per-user"} 1`,
		`mcpgate_ratelimit_store_failures_total 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if resp, err := http.Get(srv.URL + MetricsPath); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %v %v", MetricsPath, resp, err)
	} else {
		resp.Body.Close()
	}

	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "mcpgate_") {
			continue // the client library's own (go_info's version, promhttp's cause)
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if !allowedLabels[l.GetName()] {
					t.Errorf("%s has label %q: only %v are allowed", f.GetName(), l.GetName(), allowedLabels)
				}
			}
		}
	}
}

// A route's list answers are read for names once, then once per LearnInterval; names beyond
// MaxListedNames are counted as other; a name never listed is other.
func TestCapabilityLabels(t *testing.T) {
	m := New()
	rc := m.Capabilities("labels-route")
	now := time.Now()
	if !rc.ShouldLearn("tools/call", now) || rc.ShouldLearn("tools/call", now.Add(LearnInterval-time.Second)) || !rc.ShouldLearn("tools/call", now.Add(LearnInterval)) {
		t.Error("ShouldLearn: want the first answer, none within the interval, one after it")
	}
	if !rc.ShouldLearn("prompts/get", now) {
		t.Error("ShouldLearn: each method has its own interval")
	}
	for i := range MaxListedNames + 10 {
		rc.Learn("tools/call", []byte(fmt.Sprintf("tool_%d", i)))
	}
	if got := rc.Label("tools/call", "tool_0"); got != "tool_0" {
		t.Errorf("a listed name: label %q", got)
	}
	if got := rc.Label("tools/call", fmt.Sprintf("tool_%d", MaxListedNames+5)); got != OtherCapability {
		t.Errorf("a name over the bound: label %q, want other", got)
	}
	if got := rc.Label("prompts/get", "tool_0"); got != OtherCapability {
		t.Errorf("a tool's name as a prompt: label %q, want other", got)
	}
	rc.Record(CapabilityCall{Method: "tools/call", Name: "tool_0", Outcome: OutcomeSuccess, Gateway: time.Millisecond, Upstream: 3 * time.Millisecond})
	rc.Record(CapabilityCall{Method: "tools/call", Name: "invented", Outcome: OutcomeApplicationError})
	rows := map[string]CapabilityRow{}
	for _, r := range m.CapabilityTable() {
		rows[r.Capability] = r
	}
	if r := rows["tool_0"]; r.Calls != 1 || r.Outcomes[0] != 1 || r.MeanUpstream != 3*time.Millisecond || r.MeanGateway != time.Millisecond {
		t.Errorf("tool_0 row %+v", r)
	}
	if r := rows[OtherCapability]; r.Calls != 1 || r.Outcomes[1] != 1 {
		t.Errorf("other row %+v", r)
	}
}
