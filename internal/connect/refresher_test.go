package connect_test

import (
	"context"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
)

// TestBackgroundRefresherKeepsRecentConnectionsFresh: a connection used on an instance is
// refreshed by that instance's background refresher before it is due, so the next request
// finds a fresh token and makes no token call; an instance that never served the user leaves it
// alone.
func TestBackgroundRefresherKeepsRecentConnectionsFresh(t *testing.T) {
	const ttl = 8 * time.Second
	c := newCluster(t, clusterOptions{instances: 2, hydra: hydra.Options{AccessTokenTTL: ttl}})
	c.connect("alice") // a request on instance 0 only
	before := c.connection("alice")
	calls := c.hydra.TokenCalls("refresh_token")

	if n := c.gws[1].Manager.RefreshRecentForTest(t.Context(), time.Hour); n != 0 {
		t.Fatalf("instance 1 never served alice but started %d refreshes", n)
	}
	if n := c.gws[0].Manager.RefreshRecentForTest(t.Context(), time.Second); n != 0 {
		t.Fatalf("a fresh token was refreshed (%d)", n)
	}
	// Due within the horizon: refreshed now, ahead of any request.
	refreshStarted := time.Now()
	if n := c.gws[0].Manager.RefreshRecentForTest(t.Context(), 10*time.Second); n != 1 {
		t.Fatalf("want 1 background refresh, started %d", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.connection("alice").Version == before.Version {
		if time.Now().After(deadline) {
			t.Fatal("the background refresh did not store a new token")
		}
		<-time.After(10 * time.Millisecond)
	}
	after := c.connection("alice")
	if got := c.hydra.TokenCalls("refresh_token") - calls; got != 1 || after.RefreshToken == before.RefreshToken || after.Expiry.Before(refreshStarted.Add(ttl-2*time.Second)) {
		// Hydra's expires_in is whole seconds, rounded down: a token refreshed within a second of
		// the first may expire a little before it, so the check is against the refresh's own start.
		t.Fatalf("%d token calls; rotated %v; expiry %s → %s (refresh started %s)", got, after.RefreshToken != before.RefreshToken, before.Expiry, after.Expiry, refreshStarted)
	}
	// Both instances now serve the new token without another refresh.
	for i := range c.gws {
		if a := c.call(t.Context(), i, "alice", "whoami"); a.text() != "subject=alice" {
			t.Fatalf("instance %d: %v", i, a)
		}
	}
	if got := c.hydra.TokenCalls("refresh_token") - calls; got != 1 {
		t.Fatalf("%d token calls after the requests, want the background one only", got)
	}
}

func TestBackgroundRefresherStopsWithItsContext(t *testing.T) {
	c := newCluster(t, clusterOptions{instances: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.gws[0].Manager.RunBackgroundRefresh(ctx, time.Millisecond)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunBackgroundRefresh did not return after its context ended")
	}
}
