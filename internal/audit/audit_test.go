package audit

import (
	"bytes"
	"context"
	"encoding/json"
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
	r.RecordAsync(context.Background(), Event{Event: RequestAccepted, Outcome: OutcomeSuccess, RequestID: "rid2"})
	<-st.added
	<-st.added
	if len(st.events) != 2 || st.events[0].ReasonCode != "expired" || st.events[1].RequestID != "rid2" {
		t.Fatalf("stored %+v", st.events)
	}
	var details map[string]any
	_ = json.Unmarshal(st.events[0].Details, &details)
	if details["authProfileId"] != "linear:user-oauth" || details["status"] != float64(401) {
		t.Errorf("details %v", details)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"event":"mcp_request_rejected"`) || !strings.Contains(lines[0], `"upstreamServerId":"linear"`) {
		t.Errorf("log %s", buf.String())
	}
}

func TestNilRecorderIsANoop(t *testing.T) {
	var r *Recorder
	r.Record(context.Background(), Event{Event: RequestAccepted})
	r.RecordAsync(context.Background(), Event{Event: RequestAccepted})
}

func TestCloseStoresQueuedEventsThenOnlyLogs(t *testing.T) {
	st := &memAudit{added: make(chan struct{}, 100)}
	r := &Recorder{Store: st}
	for range 50 {
		r.RecordAsync(context.Background(), Event{Event: RequestAccepted})
	}
	r.Close(context.Background())
	if n := len(st.added); n != 50 {
		t.Fatalf("stored %d of 50 queued events before Close returned", n)
	}
	r.RecordAsync(context.Background(), Event{Event: RequestAccepted}) // after Close: no panic, not stored
	if n := len(st.added); n != 50 {
		t.Fatalf("stored %d after Close", n)
	}
}
