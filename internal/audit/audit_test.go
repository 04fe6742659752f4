package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
)

// memAudit is an in-memory store.Audit for these tests.
type memAudit struct {
	mu     sync.Mutex
	events []store.AuditEvent
	added  chan struct{}
}

func (m *memAudit) AppendAudit(_ context.Context, e *store.AuditEvent) error {
	m.mu.Lock()
	m.events = append(m.events, *e)
	m.mu.Unlock()
	m.added <- struct{}{}
	return nil
}
func (m *memAudit) QueryAudit(context.Context, store.AuditQuery) ([]store.AuditEvent, error) {
	return nil, nil
}
func (m *memAudit) DeleteAuditBefore(context.Context, time.Time) (int, error) { return 0, nil }

func TestRecordWritesLogAndStore(t *testing.T) {
	var buf bytes.Buffer
	st := &memAudit{added: make(chan struct{}, 10)}
	r := &Recorder{Log: slog.New(slog.NewJSONHandler(&buf, nil)), Store: st}
	e := Event{Event: RequestRejected, Outcome: OutcomeDenied, ReasonCode: "expired", SubjectID: "apikey|a", UpstreamID: "linear",
		AuthProfileID: "linear:user-oauth", RequestID: "rid", Details: map[string]any{"status": 401}}
	r.Record(context.Background(), e)
	<-st.added
	if len(st.events) != 1 || st.events[0].ReasonCode != "expired" || st.events[0].RequestID != "rid" {
		t.Fatalf("stored %+v", st.events)
	}
	var details map[string]any
	_ = json.Unmarshal(st.events[0].Details, &details)
	if details["authProfileId"] != "linear:user-oauth" || details["status"] != float64(401) {
		t.Errorf("details %v", details)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"event":"mcp_request_rejected"`) || !strings.Contains(lines[0], `"upstreamServerId":"linear"`) {
		t.Errorf("log %s", buf.String())
	}
}

func TestNilRecorderIsANoop(t *testing.T) {
	var r *Recorder
	r.Record(context.Background(), Event{Event: RequestAccepted})
	r.RecordAccepted(context.Background(), Event{Event: RequestAccepted})
	r.RecordRefusal(context.Background(), Event{Event: RequestRejected}, "192.0.2.1")
}

// Accepted requests are never a row each: 50 of one kind in a window are one row with their count,
// the first's request id and time; another subject is another row; nothing reaches the store
// before the window ends or Close; after Close events only log.
func TestAcceptedRequestsAreAggregated(t *testing.T) {
	var buf bytes.Buffer
	st := &memAudit{added: make(chan struct{}, 100)}
	now := time.Date(2026, 12, 3, 10, 0, 5, 0, time.UTC)
	r := &Recorder{Store: st, Now: func() time.Time { return now }, Log: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for i := range 50 {
		r.RecordAccepted(context.Background(), Event{Event: RequestAccepted, Outcome: OutcomeSuccess, SubjectID: "apikey|alice",
			UpstreamID: "linear", OperationID: "linear", RequestID: fmt.Sprint("rid-", i)})
	}
	r.RecordAccepted(context.Background(), Event{Event: RequestAccepted, Outcome: OutcomeSuccess, SubjectID: "apikey|bob",
		UpstreamID: "linear", OperationID: "linear", RequestID: "rid-bob"})
	if n := len(st.added); n != 0 {
		t.Fatalf("%d rows stored before the window ended", n)
	}
	r.Close(context.Background())
	if len(st.events) != 2 {
		t.Fatalf("stored %d rows for 51 accepted requests of two subjects, want 2: %+v", len(st.events), st.events)
	}
	bySubject := map[string]store.AuditEvent{}
	for _, e := range st.events {
		bySubject[e.Subject] = e
	}
	alice := bySubject["apikey|alice"]
	var d map[string]any
	_ = json.Unmarshal(alice.Details, &d)
	if alice.RequestID != "rid-0" || !alice.Time.Equal(now) || d["count"] != float64(50) || d["address"] != nil {
		t.Errorf("alice's row: %+v details %v, want the first request id, its time and count 50, no address", alice, d)
	}
	if b := bySubject["apikey|bob"]; b.RequestID != "rid-bob" {
		t.Errorf("bob's row: %+v", b)
	}
	if got := strings.Count(buf.String(), `"level":"DEBUG"`); got != 51 {
		t.Errorf("%d debug log lines for 51 accepted requests", got)
	}
	r.RecordAccepted(context.Background(), Event{Event: RequestAccepted}) // after Close: no panic, not stored
	if len(st.events) != 2 {
		t.Fatalf("stored %d rows after Close", len(st.events))
	}
}
