package authcommon_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/policy/apikey"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/testutil/authtest"
)

// scrape reads one unlabelled counter from the process's /metrics.
func scrape(t *testing.T, name string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	telemetry.Default.Handler().ServeHTTP(rec, httptest.NewRequest("GET", telemetry.MetricsPath, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no %s:\n%s", name, body)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAnonymousTrafficCannotGrowTheAuditLog: 10,000 refused requests (no key, a made-up key) from
// a few addresses through a real gateway and SQLite store become a handful of audit rows — one per
// reason, address (IPv6 by its /64) and minute — whose counts add up to every refusal, and
// /metrics counts the rows written.
func TestAnonymousTrafficCannotGrowTheAuditLog(t *testing.T) {
	g := authtest.New(t, authtest.Options{Export: apikey.Export, Options: `{}`})
	writtenBefore := scrape(t, "mcpgate_audit_rows_written_total")

	remotes := []string{"192.0.2.10:1111", "198.51.100.20:2222", "[2001:db8:5:6::1]:3333", "[2001:db8:5:6::2]:4444"}
	want := map[string]int{}
	const n = 10000
	for i := range n {
		req := httptest.NewRequest(http.MethodPost, "/mcp/test", bytes.NewReader([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = remotes[i%len(remotes)]
		reason := "missing_token"
		if i%3 == 0 {
			req.Header.Set("Authorization", "Bearer mcpg_made-up-"+strconv.Itoa(i%7))
			reason = "invalid_token"
		}
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("request %d: status %d", i, rec.Code)
		}
		addr := strings.TrimSuffix(strings.TrimPrefix(req.RemoteAddr[:strings.LastIndexByte(req.RemoteAddr, ':')], "["), "]")
		if strings.HasPrefix(addr, "2001:db8:5:6:") {
			addr = "2001:db8:5:6::/64"
		}
		want[reason+" "+addr]++
	}

	evs := g.Rejections(t) // flushes the aggregates
	// Three addresses × two reasons, twice if the run crossed a minute boundary.
	if len(evs) < len(want) || len(evs) > 2*len(want) {
		t.Fatalf("%d audit rows for %d refused requests, want %d to %d", len(evs), n, len(want), 2*len(want))
	}
	got := map[string]int{}
	for _, ev := range evs {
		var d struct {
			Count   int    `json:"count"`
			Address string `json:"address"`
			Policy  string `json:"policy"`
		}
		if err := json.Unmarshal(ev.Details, &d); err != nil {
			t.Fatal(err)
		}
		if d.Policy != "auth" || ev.OperationID != "test-mcp" || ev.RequestID == "" {
			t.Errorf("row %+v %s", ev, ev.Details)
		}
		if strings.Contains(string(ev.Details), "mcpg_") {
			t.Errorf("a row carries a key: %s", ev.Details)
		}
		got[ev.ReasonCode+" "+d.Address] += d.Count
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: counted %d, want %d", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("rows for %v, want %v", got, want)
	}
	if written := scrape(t, "mcpgate_audit_rows_written_total") - writtenBefore; written != float64(len(evs)) {
		t.Errorf("mcpgate_audit_rows_written_total grew by %v, want %d", written, len(evs))
	}
	scrape(t, "mcpgate_audit_rows_dropped_total") // served
}
