package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// counter reads a counter of m.
func counter(t *testing.T, m *telemetry.Metrics, name string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			var sum float64
			for _, mt := range f.GetMetric() {
				sum += mt.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type rowDetails struct {
	Count   int    `json:"count"`
	Address string `json:"address"`
	Policy  string `json:"policy"`
}

func rows(t *testing.T, st store.Store, event string) []store.AuditEvent {
	t.Helper()
	evs, err := st.QueryAudit(t.Context(), store.AuditQuery{Event: event, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestRefusalsAreAggregated: 10,000 refusals from a few addresses are a handful of rows, one per
// reason, address (an IPv6 address by its /64) and minute, each with the right count — stored by
// the background writer, not on the request path.
func TestRefusalsAreAggregated(t *testing.T) {
	st := gatewaytest.Store(t, "", nil)
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 5, 0, time.UTC)}
	m := telemetry.New()
	r := &audit.Recorder{Store: st, Now: clk.now, Metrics: m}
	defer r.Close(context.Background())

	addrs := []string{"192.0.2.1", "192.0.2.2", "2001:db8:1:2::1", "2001:db8:1:2:ffff::7"} // the last two: one /64
	want := map[string]int{}
	for i := range 10000 {
		addr := addrs[i%len(addrs)]
		reason := "missing_token"
		if i%5 == 0 {
			reason = "invalid_token"
		}
		r.RecordRefusal(t.Context(), audit.Event{Event: audit.RequestRejected, Outcome: audit.OutcomeDenied, ReasonCode: reason,
			RequestID: fmt.Sprintf("req-%d", i), OperationID: "linear-mcp", Details: map[string]any{"policy": "api-key"}}, addr)
		want[reason+" "+publicKey(addr)]++
	}
	if n := len(rows(t, st, audit.RequestRejected)); n != 0 {
		t.Fatalf("%d rows written on the request path, want 0 before the writer flushes", n)
	}
	r.Flush(t.Context())
	evs := rows(t, st, audit.RequestRejected)
	if len(evs) != len(want) {
		t.Fatalf("%d rows for 10000 refusals, want %d (reason × address)", len(evs), len(want))
	}
	total := 0
	for _, ev := range evs {
		var d rowDetails
		if err := json.Unmarshal(ev.Details, &d); err != nil {
			t.Fatal(err)
		}
		if got := want[ev.ReasonCode+" "+d.Address]; d.Count != got {
			t.Errorf("%s from %s: count %d, want %d", ev.ReasonCode, d.Address, d.Count, got)
		}
		if d.Policy != "api-key" || ev.OperationID != "linear-mcp" || ev.Outcome != audit.OutcomeDenied || ev.RequestID == "" ||
			!ev.Time.Equal(clk.now().Truncate(time.Millisecond)) {
			t.Errorf("row %+v %s", ev, ev.Details)
		}
		total += d.Count
	}
	if total != 10000 {
		t.Errorf("counts add up to %d, want 10000", total)
	}
	if got := counter(t, m, "mcpgate_audit_rows_written_total"); got != float64(len(evs)) {
		t.Errorf("mcpgate_audit_rows_written_total %v, want %d", got, len(evs))
	}

	// The next minute is rows of its own; Close stores them.
	clk.add(time.Minute)
	for range 3 {
		r.RecordRefusal(t.Context(), audit.Event{Event: audit.RequestRejected, Outcome: audit.OutcomeDenied, ReasonCode: "missing_token"}, "192.0.2.1")
	}
	r.Close(t.Context())
	evs = rows(t, st, audit.RequestRejected)
	if len(evs) != len(want)+1 {
		t.Fatalf("%d rows after the next minute, want %d", len(evs), len(want)+1)
	}
	var d rowDetails
	_ = json.Unmarshal(evs[0].Details, &d)
	if d.Count != 3 || d.Address != "192.0.2.1" {
		t.Errorf("next minute's row %s", evs[0].Details)
	}
	// After Close a refusal only logs.
	r.RecordRefusal(t.Context(), audit.Event{Event: audit.RequestRejected, ReasonCode: "missing_token"}, "192.0.2.1")
	r.Flush(t.Context())
	if n := len(rows(t, st, audit.RequestRejected)); n != len(want)+1 {
		t.Errorf("%d rows after Close", n)
	}
}

func publicKey(addr string) string {
	if addr == "2001:db8:1:2::1" || addr == "2001:db8:1:2:ffff::7" {
		return "2001:db8:1:2::/64"
	}
	return addr
}

// TestRefusalsFromManyAddressesAreBounded: a flood from more addresses than MaxAggregates
// costs at most MaxAggregates rows a minute plus one: the rest are counted under "other".
func TestRefusalsFromManyAddressesAreBounded(t *testing.T) {
	st := gatewaytest.Store(t, "", nil)
	r := &audit.Recorder{Store: st, Metrics: telemetry.New(), Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }}
	const n = audit.MaxAggregates + 2500
	for i := range n {
		r.RecordRefusal(t.Context(), audit.Event{Event: audit.RequestRejected, Outcome: audit.OutcomeDenied, ReasonCode: "invalid_token",
			SubjectID: fmt.Sprintf("apikey|u%d", i)}, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	r.Close(t.Context())
	evs, err := st.QueryAudit(t.Context(), store.AuditQuery{Event: audit.RequestRejected, Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != audit.MaxAggregates+1 {
		t.Fatalf("%d rows for %d addresses, want %d", len(evs), n, audit.MaxAggregates+1)
	}
	var other rowDetails
	total := 0
	for _, ev := range evs {
		var d rowDetails
		_ = json.Unmarshal(ev.Details, &d)
		total += d.Count
		if d.Address == audit.OtherAddress {
			other = d
			if ev.Subject != "" {
				t.Errorf("the overflow row carries a subject: %+v", ev)
			}
		}
	}
	if other.Count != n-audit.MaxAggregates || total != n {
		t.Errorf("overflow count %d (want %d), total %d (want %d)", other.Count, n-audit.MaxAggregates, total, n)
	}
}

// TestAcceptedFromManyUsersAreBounded: accepted requests of more users than MaxAggregates cost at
// most MaxAggregates rows a minute plus one, as the token exchange records them (the actor is the
// user too): the rest are counted in one row without subject or actor.
func TestAcceptedFromManyUsersAreBounded(t *testing.T) {
	st := gatewaytest.Store(t, "", nil)
	r := &audit.Recorder{Store: st, Metrics: telemetry.New(), Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }}
	const n = audit.MaxAggregates + 2500
	for i := range n {
		user := fmt.Sprintf("apikey|u%d", i)
		r.RecordAccepted(t.Context(), audit.Event{Event: audit.RequestAccepted, Outcome: audit.OutcomeSuccess, SubjectID: user,
			Actor: user, UpstreamID: "linear", OperationID: "linear", RequestID: fmt.Sprint("rid-", i)})
	}
	r.Close(t.Context())
	evs, err := st.QueryAudit(t.Context(), store.AuditQuery{Event: audit.RequestAccepted, Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != audit.MaxAggregates+1 {
		t.Fatalf("%d rows for %d users, want %d", len(evs), n, audit.MaxAggregates+1)
	}
	total, others := 0, 0
	for _, ev := range evs {
		var d rowDetails
		_ = json.Unmarshal(ev.Details, &d)
		total += d.Count
		if ev.Subject == "" {
			others++
			if ev.Actor != "" || d.Address != "" || d.Count != n-audit.MaxAggregates {
				t.Errorf("the overflow row: %+v %+v, want no actor, no address and count %d", ev, d, n-audit.MaxAggregates)
			}
		}
	}
	if others != 1 || total != n {
		t.Errorf("%d overflow rows (want 1), total %d (want %d)", others, total, n)
	}
}

// TestRetentionDeletesOldRows: RunRetention deletes events older than the retention, at once and
// then every interval, and counts them in mcpgate_audit_rows_deleted_total.
func TestRetentionDeletesOldRows(t *testing.T) {
	st := gatewaytest.Store(t, "", nil)
	now := time.Now()
	for _, age := range []time.Duration{100 * 24 * time.Hour, 91 * 24 * time.Hour, 89 * 24 * time.Hour, time.Hour} {
		if err := st.AppendAudit(t.Context(), &store.AuditEvent{Time: now.Add(-age), Event: "e", Outcome: "success"}); err != nil {
			t.Fatal(err)
		}
	}
	m := telemetry.New()
	r := &audit.Recorder{Store: st, Metrics: m}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.RunRetention(ctx, 90*24*time.Hour, 20*time.Millisecond); close(done) }()
	gatewaytest.Eventually(t, 5*time.Second, "old rows deleted", func() bool { return len(rows(t, st, "e")) == 2 })
	// A row that ages past the retention later goes at the next interval.
	if err := st.AppendAudit(t.Context(), &store.AuditEvent{Time: now.Add(-95 * 24 * time.Hour), Event: "e", Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	gatewaytest.Eventually(t, 5*time.Second, "a later old row deleted", func() bool { return len(rows(t, st, "e")) == 2 })
	cancel()
	<-done
	for _, ev := range rows(t, st, "e") {
		if now.Sub(ev.Time) > 90*24*time.Hour {
			t.Errorf("kept a row from %s", ev.Time)
		}
	}
	if got := counter(t, m, "mcpgate_audit_rows_deleted_total"); got != 3 {
		t.Errorf("mcpgate_audit_rows_deleted_total %v, want 3", got)
	}
	// 0 keeps everything.
	r.RunRetention(t.Context(), 0, time.Millisecond)
}

// blockingStore is the real store with AppendAudit held until release is closed.
// failingStore refuses audit rows while fail is set (a store that is down or full).
type failingStore struct {
	store.Store
	fail atomic.Bool
}

func (s *failingStore) AppendAudit(ctx context.Context, e *store.AuditEvent) error {
	if s.fail.Load() {
		return errors.New("disk full")
	}
	return s.Store.AppendAudit(ctx, e)
}

// TestDroppedRowsAreCounted: rows the store refuses are dropped (the log has the events) and counted
// in mcpgate_audit_rows_dropped_total; rows stored in mcpgate_audit_rows_written_total.
func TestDroppedRowsAreCounted(t *testing.T) {
	st := &failingStore{Store: gatewaytest.Store(t, "", nil)}
	st.fail.Store(true)
	m := telemetry.New()
	r := &audit.Recorder{Store: st, Metrics: m}
	for _, addr := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		r.RecordRefusal(t.Context(), audit.Event{Event: audit.RequestRejected, Outcome: audit.OutcomeDenied, ReasonCode: "missing_token"}, addr)
	}
	r.Flush(t.Context())
	if d, w := counter(t, m, "mcpgate_audit_rows_dropped_total"), counter(t, m, "mcpgate_audit_rows_written_total"); d != 3 || w != 0 {
		t.Fatalf("with the store failing: dropped %v written %v, want 3 and 0", d, w)
	}
	st.fail.Store(false)
	r.RecordAccepted(t.Context(), audit.Event{Event: audit.RequestAccepted, Outcome: audit.OutcomeSuccess, SubjectID: "apikey|a"})
	r.RecordAccepted(t.Context(), audit.Event{Event: audit.RequestAccepted, Outcome: audit.OutcomeSuccess, SubjectID: "apikey|b"})
	r.Close(t.Context())
	if d, w := counter(t, m, "mcpgate_audit_rows_dropped_total"), counter(t, m, "mcpgate_audit_rows_written_total"); d != 3 || w != 2 {
		t.Errorf("after the store recovered: dropped %v written %v, want 3 and 2", d, w)
	}
}
