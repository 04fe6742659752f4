package connect_test

import (
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
)

func refusedSeries(how string) string {
	return `mcpgate_upstream_refused_fresh_token_total{forced_refresh="` + how + `",upstream="hydra-up"}`
}

// One caller cannot wipe a shared grant. On a shared-oauth route, the upstream refuses (401) one
// caller's requests that carry a query parameter, whatever the token. The first such request
// refreshes (the token still looked valid) and replays once; refused again, it gets a JSON-RPC
// error naming the upstream, and the shared connection stays as it is for everyone. Further
// such requests within the forced-refresh interval (30 s; 8 s here), on any replica, do not
// refresh again (the refresh token is not rotated on every call) and get the same error. Every
// refusal is counted on /metrics. Past the interval a forced refresh may run again.
func TestOneCallerCannotWipeASharedGrant(t *testing.T) {
	const interval = 8 * time.Second
	rt := newRefusingTransport("refuse")
	c := newHardeningCluster(t, hardeningOptions{clusterOptions: clusterOptions{instances: 2, shared: true}, transport: rt, forcedInterval: interval})
	c.connect("ops")
	refreshes := c.hydra.TokenCalls("refresh_token")
	replayed0, skipped0 := c.metric(0, refusedSeries("replayed")), c.metric(0, refusedSeries("skipped"))

	forcedAt := time.Now()
	wantRefusedFresh(t, c.hcall(0, "alice", "refuse=1", toolsCall("whoami"), nil))
	if got := c.hydra.TokenCalls("refresh_token") - refreshes; got != 1 {
		t.Fatalf("%d refreshes for the first refused request, want 1 (refresh and replay once)", got)
	}
	after := c.connection("ops")
	if after.Status != store.StatusActive || after.AccessToken.IsZero() || after.RefreshToken.IsZero() {
		t.Fatalf("the shared connection after one caller's refused request: status %s", after.Status)
	}
	// Everyone else (and alice's other requests) keep working, on every replica.
	for i := range c.gws {
		for _, user := range []string{"bob", "alice"} {
			if a := c.call(t.Context(), i, user, "whoami"); a.text() != "subject=ops" {
				t.Fatalf("%s on instance %d after alice's refused request: %v", user, i, a)
			}
		}
	}

	// More refused requests within the interval, on both replicas: no refresh, no rotation.
	for i := range 6 {
		wantRefusedFresh(t, c.hcall(i%2, "alice", "refuse=1", toolsCall("whoami"), nil))
	}
	if got := c.hydra.TokenCalls("refresh_token") - refreshes; got != 1 {
		t.Errorf("%d refreshes after 7 refused requests within %s, want 1", got, interval)
	}
	if now := c.connection("ops"); now.RefreshToken != after.RefreshToken || now.Status != store.StatusActive {
		t.Error("the shared refresh token was rotated again (or the connection changed) by refused requests within the interval")
	}
	if got := c.metric(0, refusedSeries("replayed")) - replayed0; got != 1 {
		t.Errorf("/metrics counts %v refused-after-replay requests, want 1", got)
	}
	if got := c.metric(1, refusedSeries("skipped")) - skipped0; got != 6 {
		t.Errorf("/metrics counts %v refused requests without a refresh, want 6", got)
	}
	if n := c.audits("ops", audit.UpstreamReconsentRequired); n != 0 {
		t.Errorf("%d reconsent_required audit events for the shared connection", n)
	}
	if a := c.call(t.Context(), 1, "bob", "whoami"); a.text() != "subject=ops" {
		t.Fatalf("bob after the refused requests: %v", a)
	}
	if time.Since(forcedAt) > interval {
		t.Fatalf("the refused requests took %s, longer than the interval under test", time.Since(forcedAt))
	}

	// Past the interval one forced refresh may run again.
	<-time.After(time.Until(forcedAt.Add(interval + 100*time.Millisecond)))
	wantRefusedFresh(t, c.hcall(1, "alice", "refuse=1", toolsCall("whoami"), nil))
	wantRefusedFresh(t, c.hcall(0, "alice", "refuse=1", toolsCall("whoami"), nil))
	if got := c.hydra.TokenCalls("refresh_token") - refreshes; got != 2 {
		t.Errorf("%d refreshes after the interval passed, want 2", got)
	}
	if a := c.call(t.Context(), 0, "bob", "whoami"); a.text() != "subject=ops" {
		t.Fatalf("bob at the end: %v", a)
	}
}

// user-oauth keeps asking the caller to reconnect when the upstream refuses a request right after
// a refresh and replay (the connection is theirs alone, and the answer carries the link that
// renews it), but forced refreshes are limited the same way: an upstream that refuses the
// caller's fresh token again within 30 s gets no second refresh, and the caller an error
// instead of a wiped connection.
func TestUserOAuthForcedRefreshAtMostEvery30s(t *testing.T) {
	rt := newRefusingTransport("refuse")
	c := newHardeningCluster(t, hardeningOptions{clusterOptions: clusterOptions{instances: 2}, transport: rt})
	c.connect("alice")
	refreshes := c.hydra.TokenCalls("refresh_token")

	// The upstream refuses the stored token once: refresh, replay, answered.
	rt.next.Store(1)
	if a := c.call(t.Context(), 0, "alice", "whoami"); a.text() != "subject=alice" {
		t.Fatalf("after one refused request: %v", a)
	}
	if got := c.hydra.TokenCalls("refresh_token") - refreshes; got != 1 {
		t.Fatalf("%d refreshes, want 1", got)
	}
	rotated := c.connection("alice").RefreshToken

	// Again, on the other replica, within 30 s: the refused token is the one just refreshed. No
	// second refresh; an error; the connection kept.
	rt.next.Store(1)
	wantRefusedFresh(t, c.call(t.Context(), 1, "alice", "whoami"))
	if got := c.hydra.TokenCalls("refresh_token") - refreshes; got != 1 {
		t.Errorf("%d refreshes within the interval, want 1", got)
	}
	if conn := c.connection("alice"); conn.Status != store.StatusActive || conn.RefreshToken != rotated {
		t.Fatalf("connection after a refused fresh token: status %s, rotated again %v", conn.Status, conn.RefreshToken != rotated)
	}
	if a := c.call(t.Context(), 1, "alice", "whoami"); a.text() != "subject=alice" {
		t.Fatalf("alice's next request: %v", a)
	}
}

// user-oauth, first refusal with a refresh and a replay that is refused again: as before, the
// caller is asked to reconnect (reconsent_required, with a link), and the connection is marked.
func TestUserOAuthReplayed401StillAsksToReconnect(t *testing.T) {
	rt := newRefusingTransport("refuse")
	c := newHardeningCluster(t, hardeningOptions{clusterOptions: clusterOptions{instances: 1}, transport: rt})
	c.connect("alice")
	a := c.hcall(0, "alice", "refuse=1", toolsCall("whoami"), nil)
	if d := a.errorData(); d == nil || d["state"] != "reconsent_required" || d["authUrl"] == nil {
		t.Fatalf("user-oauth, refused after refresh and replay: want connect-required reconsent_required, got %v", a)
	}
	if conn := c.connection("alice"); conn.Status != store.StatusReconsentRequired {
		t.Fatalf("connection status %s", conn.Status)
	}
}

// The bound is on forced refreshes only: a token the upstream refuses right after an ordinary
// refresh (its predecessor expired) is still refreshed and the request replayed, as when the
// authorization server revoked the new access token at once.
func TestForcedRefreshRightAfterAnOrdinaryRefresh(t *testing.T) {
	rt := newRefusingTransport("")
	c := newHardeningCluster(t, hardeningOptions{clusterOptions: clusterOptions{instances: 1, hydra: hydra.Options{AccessTokenTTL: faultTTL}}, transport: rt})
	c.connect("alice")
	c.waitExpired("alice")
	refreshes := c.hydra.TokenCalls("refresh_token")
	if a := c.call(t.Context(), 0, "alice", "whoami"); a.text() != "subject=alice" {
		t.Fatalf("after expiry: %v", a)
	}
	if got := c.hydra.TokenCalls("refresh_token") - refreshes; got != 1 {
		t.Fatalf("%d refreshes of the expired token, want 1", got)
	}
	rt.next.Store(1)
	if a := c.call(t.Context(), 0, "alice", "whoami"); a.text() != "subject=alice" {
		t.Fatalf("the upstream refused the just-refreshed token once: %v", a)
	}
	if got := c.hydra.TokenCalls("refresh_token") - refreshes; got != 2 {
		t.Fatalf("%d refreshes, want 2 (the expiry, then one forced)", got)
	}
}
