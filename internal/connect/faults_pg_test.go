package connect_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/testutil/pgtest"
)

// TestPostgresRestartUnderLoad: PostgreSQL goes away and comes back while two instances serve a
// steady load. Requests with a cached credential keep succeeding throughout; a request that needs
// the store meanwhile gets 503 with Retry-After (never a connect-required answer or a hang); once
// PostgreSQL is back the same request reads the store again, without restarting the gateway, and
// the stored connection is exactly what it was.
func TestPostgresRestartUnderLoad(t *testing.T) {
	c := newCluster(t, clusterOptions{instances: 2, postgres: true})
	c.connect("alice")
	ctx := context.Background()
	for i := range c.gws {
		if a := c.call(ctx, i, "alice", "whoami"); a.text() != "subject=alice" {
			t.Fatalf("instance %d before the restart: %v", i, a)
		}
	}
	before := c.connection("alice")

	var ok, failed atomic.Int64
	var firstFailure atomic.Pointer[answer]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				a := c.call(ctx, w%len(c.gws), "alice", "whoami")
				if a.text() == "subject=alice" {
					ok.Add(1)
				} else {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, &a)
				}
			}
		}()
	}

	pgtest.Stop(t)
	down := time.Now()
	// bob has no cached credential: his request needs the store, which is gone.
	b := c.call(ctx, 0, "bob", "whoami")
	if b.err != nil || b.status != http.StatusServiceUnavailable || b.header.Get("Retry-After") == "" {
		t.Errorf("a request that needs the store while PostgreSQL is down: %v (Retry-After %q), want 503 with Retry-After", b, b.header.Get("Retry-After"))
	}
	servedDuringOutage := ok.Load()
	pgtest.Start(t)
	outage := time.Since(down)

	// The store is back: bob's request is answered from it (he is not connected), on both instances.
	for i := range c.gws {
		var a answer
		// The pool reconnects on its own schedule.
		gatewaytest.Eventually(t, 20*time.Second, "instance answers from the store again", func() bool {
			a = c.call(ctx, i, "bob", "whoami")
			return a.errorData() != nil
		})
		if d := a.errorData(); d["state"] != "authenticating" {
			t.Fatalf("instance %d after PostgreSQL came back: %v", i, a)
		}
	}
	close(stop)
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Errorf("%d of %d cached-credential calls failed across the restart; first: %v", f, f+ok.Load(), firstFailure.Load())
	}
	if servedDuringOutage == 0 || ok.Load() <= servedDuringOutage {
		t.Errorf("load did not run across the outage (%d before/during, %d in all)", servedDuringOutage, ok.Load())
	}
	after := c.connection("alice")
	if after.Status != store.StatusActive || after.Version != before.Version || after.AccessToken != before.AccessToken {
		t.Errorf("the connection changed across the restart: %+v → %+v", before, after)
	}
	t.Logf("PostgreSQL was down %s; %d cached-credential calls succeeded, %d failed", outage.Round(time.Millisecond), ok.Load(), failed.Load())
}
