package connect_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
)

// TestStepUpAsksForTheUnionThenStops: the upstream answers 403 insufficient_scope for one tool.
// The gateway asks the user to re-authorize with the union of the granted and the demanded
// scopes (the added one named), keeps the connection, and after StepUpLimit attempts for that
// scope set answers a JSON-RPC error without a link. The browser half (approving the added scope
// in Chromium) is the end-to-end suite's.
func TestStepUpAsksForTheUnionThenStops(t *testing.T) {
	c := newCluster(t, clusterOptions{instances: 1, extraScope: "admin", hydra: hydra.Options{Scopes: []string{"mcp", "admin"}}})
	c.connect("alice")
	granted := c.connection("alice").Scopes

	for i := range connect.StepUpLimit {
		a := c.call(t.Context(), 0, "alice", "admin_report")
		d := a.errorData()
		if d == nil || d["state"] != "reconsent_required" || d["authUrl"] == nil {
			t.Fatalf("attempt %d: want a step-up connect-required, got %v", i+1, a)
		}
		var scopes []string
		for _, s := range d["scopes"].([]any) {
			scopes = append(scopes, s.(string))
		}
		want := slices.Sorted(slices.Values(append(slices.Clone(granted), "admin")))
		want = slices.Compact(want)
		if !slices.Equal(scopes, want) {
			t.Fatalf("attempt %d: scopes %v, want the union %v", i+1, scopes, want)
		}
	}
	a := c.call(t.Context(), 0, "alice", "admin_report")
	e, _ := a.json()["error"].(map[string]any)
	if e == nil || e["code"] != float64(-32003) || strings.Contains(string(a.body), "authUrl") || strings.Contains(string(a.body), "browserTicket") {
		t.Fatalf("after %d step-ups: want error -32003 without a link, got %v", connect.StepUpLimit, a)
	}
	// The connection itself is untouched, and the tools it may use still work.
	if conn := c.connection("alice"); conn.Status != store.StatusActive || conn.AccessToken.IsZero() {
		t.Fatalf("step-up changed the connection: %s", conn.Status)
	}
	if a := c.call(t.Context(), 0, "alice", "whoami"); a.text() != "subject=alice" {
		t.Fatalf("whoami after step-ups: %v", a)
	}
	if got := c.metric(0, `mcpgate_upstream_step_ups_total{outcome="limited",upstream="hydra-up"}`); got < 1 {
		t.Errorf("/metrics counts %v limited step-ups", got)
	}
}
