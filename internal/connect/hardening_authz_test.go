package connect_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
)

// Authorization attempts are capped per person and upstream. The upstream demands the scope
// "admin" for admin_report (403 insufficient_scope) but does not advertise it, so the gateway's
// client at Hydra may not ask for it: every step-up ends at Hydra with invalid_scope, and the
// upstream keeps demanding. A person is sent to Hydra at most connect.AuthorizationLimit times in
// connect.AuthorizationWindow, the first connect included, whichever replica they use: the request
// past the cap gets -32003 without a link, and a link still open is refused at Approve instead of
// going to Hydra a fourth time.
func TestAuthorizationAttemptsCappedPerPersonAndUpstream(t *testing.T) {
	c := newHardeningCluster(t, hardeningOptions{
		clusterOptions:  clusterOptions{instances: 2, extraScope: "admin", hydra: hydra.Options{Scopes: []string{"mcp"}}},
		advertiseScopes: []string{"mcp"},
	})
	c.connect("alice") // authorization request 1 (instance 0)
	sentToHydra := 1

	stepUpLink := func(i int, user string) string {
		t.Helper()
		a := c.call(t.Context(), i, user, "admin_report")
		d := a.errorData()
		if d == nil || d["state"] != "reconsent_required" || d["authUrl"] == nil {
			t.Fatalf("instance %d after %d authorization requests: want a step-up link, got %v", i, sentToHydra, a)
		}
		return d["authUrl"].(string)
	}
	// approve opens a link, approves it and follows the browser to Hydra and back.
	approve := func(link string) *http.Response {
		t.Helper()
		b := newBrowser(t)
		resp, page := b.decide(link, "approve")
		if resp.StatusCode != http.StatusFound {
			return resp
		}
		sentToHydra++
		back := c.hydra.AuthorizeHeadless(t, resp.Header.Get("Location"), "alice")
		if back.Query().Get("error") != "invalid_scope" {
			t.Fatalf("Hydra granted the step-up (%s); the test needs a scope it refuses\n%s", back.Query().Encode(), page)
		}
		if r, _ := b.get(back.String()); r.StatusCode == http.StatusOK {
			t.Fatal("the callback of a refused step-up connected")
		}
		return resp
	}

	// Every approval goes through instance 0: in tests each instance has its own URL, hence its
	// own redirect URI and its own client at Hydra (replicas behind one public URL share one).
	approve(stepUpLink(0, "alice")) // request 2
	l3, extra := stepUpLink(0, "alice"), stepUpLink(0, "alice")
	approve(l3) // request 3
	if sentToHydra != connect.AuthorizationLimit {
		t.Fatalf("sent to Hydra %d times so far", sentToHydra)
	}

	// The cap is reached. Instance 1 has neither sent anyone to Hydra nor handed out a step-up
	// link: it knows of the three requests only from the shared store. On both replicas the next
	// 403 gets the step-up error without a link.
	for _, i := range []int{1, 0} {
		a := c.call(t.Context(), i, "alice", "admin_report")
		e, _ := a.json()["error"].(map[string]any)
		if e == nil || e["code"] != float64(-32003) || strings.Contains(string(a.body), "authUrl") || strings.Contains(string(a.body), "browserTicket") {
			t.Fatalf("instance %d after %d authorization requests: want -32003 without a link, got %v", i, sentToHydra, a)
		}
		if d := a.errorData(); d["reasonCode"] != "step_up_limited" {
			t.Errorf("instance %d: reasonCode %v", i, d["reasonCode"])
		}
	}
	// A link handed out before the cap no longer sends the browser to Hydra.
	if resp := approve(extra); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("approving a fourth authorization: %d, want 429", resp.StatusCode)
	}
	if sentToHydra != connect.AuthorizationLimit {
		t.Fatalf("sent to Hydra %d times, want %d", sentToHydra, connect.AuthorizationLimit)
	}
	// The connection is untouched, and the tools it may use still work.
	if conn := c.connection("alice"); conn.Status != store.StatusActive || conn.AccessToken.IsZero() {
		t.Fatalf("the cap changed the connection: %s", conn.Status)
	}
	for i := range c.gws {
		if a := c.call(t.Context(), i, "alice", "whoami"); a.text() != "subject=alice" {
			t.Fatalf("whoami on instance %d: %v", i, a)
		}
	}
	// Another person is not affected by alice's count.
	c.connect("bob")
	stepUpLink(0, "bob")
}
