package connect_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) {
	if helperMain() {
		return
	}
	os.Exit(pgtest.Main(m))
}

// Rotation race parameters: short real token lifetimes, a few expiries, bounded for CI.
const (
	raceTokenTTL = 10 * time.Second
	raceCalls    = 500
	raceExpiries = 3
)

func TestRotationRaceSQLite(t *testing.T) {
	testRotationRace(t, clusterOptions{instances: 3})
}

func TestRotationRacePostgres(t *testing.T) {
	testRotationRace(t, clusterOptions{instances: 3, postgres: true})
}

// TestRotationRaceSharedPostgres is the same race for a shared-oauth upstream: one grant, connected
// by an administrator, refreshed once per expiry for every user's calls.
func TestRotationRaceSharedPostgres(t *testing.T) {
	testRotationRace(t, clusterOptions{instances: 3, postgres: true, shared: true})
}

// testRotationRace: Hydra rotates refresh tokens strictly (reusing one is invalid_grant and kills
// the grant). Several gateway instances on one database serve 500 concurrent calls of one user
// each time the token has expired: every call must succeed with the user's own token, Hydra must
// see exactly one refresh per expiry and no failed one, and the connection must survive.
func testRotationRace(t *testing.T, o clusterOptions) {
	// Hydra on PostgreSQL: on SQLite its proxy passes one request at a time, and the upstream's
	// token introspection of 500 calls would then measure Hydra, not the gateway.
	o.hydra = hydra.Options{AccessTokenTTL: raceTokenTTL, DSN: pgtest.NewDatabase(t)}
	c := newCluster(t, o)
	c.connect("alice")
	c.hydra.ResetTokenCalls()
	refreshes, expiries := 0, 0
	const (
		succeeded = `mcpgate_upstream_refreshes_total{outcome="success",upstream="hydra-up"}`
		failed    = `mcpgate_upstream_refreshes_total{outcome="transient",upstream="hydra-up"}`
		dead      = `mcpgate_upstream_refreshes_total{outcome="reconsent",upstream="hydra-up"}`
	)
	succeededBefore, failedBefore, deadBefore := c.metric(0, succeeded), c.metric(0, failed), c.metric(0, dead)

	for round := 1; round <= raceExpiries; round++ {
		before := c.waitExpired("alice")
		began := time.Now()
		answers := c.storm(raceCalls, "alice")
		for i, a := range answers {
			if a.err != nil || a.status != 200 || a.text() != "subject=alice" {
				t.Fatalf("round %d: call %d (instance %d): %v", round, i, i%len(c.gws), a)
			}
		}
		took := time.Since(began)
		t.Logf("round %d: %d calls in %s", round, raceCalls, took.Round(time.Millisecond))
		// One refresh per expiry: the round's expired token is refreshed once. Only when the round
		// outlasted the new token's own refresh point (2/3 of its lifetime, a slow machine) may
		// later generations be refreshed too, once each.
		want := 1 + int(took/(raceTokenTTL*2/3))
		got := c.hydra.TokenCalls("refresh_token") - refreshes
		refreshes += got
		if got < 1 || got > want || (took < raceTokenTTL*2/3 && got != 1) {
			t.Fatalf("round %d: Hydra saw %d refresh requests, want 1 per expiry (at most %d in %s)", round, got, want, took)
		}
		expiries += got
		if e := c.hydra.TokenErrors("refresh_token"); e != 0 {
			t.Fatalf("round %d: %d refresh requests failed at Hydra (invalid_grant from a reused refresh token?)", round, e)
		}
		after := c.connection("alice")
		if after.Status != store.StatusActive || after.RefreshToken.IsZero() || after.RefreshToken == before.RefreshToken {
			t.Fatalf("round %d: connection %s, refresh token rotated: %v", round, after.Status, after.RefreshToken != before.RefreshToken)
		}
		if !after.Expiry.After(before.Expiry) {
			t.Fatalf("round %d: expiry did not move: %s → %s", round, before.Expiry, after.Expiry)
		}
	}
	// The metrics are process-wide: every instance serves the same counts.
	if got := c.metric(len(c.gws)-1, succeeded) - succeededBefore; got != float64(expiries) {
		t.Errorf("/metrics counts %v successful refreshes, want %d", got, expiries)
	}
	if f, d := c.metric(0, failed)-failedBefore, c.metric(0, dead)-deadBefore; f != 0 || d != 0 {
		t.Errorf("/metrics counts %v transient and %v dead refreshes, want none", f, d)
	}
	if n := c.audits("alice", audit.UpstreamTokenRefreshed); n != expiries {
		t.Errorf("%d refresh audit events, want %d", n, expiries)
	}
	if n := c.audits("alice", audit.UpstreamReconsentRequired) + c.audits("alice", audit.UpstreamRefreshFailed); n != 0 {
		t.Errorf("%d refresh failure or reconsent audit events, want none", n)
	}
}

// storm sends n concurrent tools/call requests of user, spread round-robin over the instances,
// released together.
func (c *cluster) storm(n int, user string) []answer {
	out := make([]answer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = c.call(context.Background(), i%len(c.gws), user, "whoami")
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// helperMain runs a re-executed test binary's helper role, if the environment names one.
func helperMain() bool {
	role := os.Getenv("MCPGATE_CONNECT_HELPER")
	if role == "" {
		return false
	}
	if err := runHelper(role); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	os.Exit(0)
	return true
}
