package connect_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/testutil/pgtest"
)

// Refresh storm (BENCHMARKS.md "Refresh storm"): 1,000 concurrent requests for one user's
// expired token, spread over 3 gateway instances on one database, in front of a real Hydra with
// strict refresh-token rotation. It must cost exactly one token-endpoint call; the latency of
// the 1,000 callers is reported relative to one plain refresh round trip (x/oauth2 against the
// same Hydra, through the same counting proxy).
//
// The credential layer (Manager.Lookup, which every proxied request calls first) is measured by
// default; MCPGATE_STORM_HTTP=1 also measures whole tools/call requests through the gateways,
// which then include the upstream's token introspection at Hydra for every call.
const (
	stormCalls  = 1000
	stormRounds = 3
)

func TestRefreshStorm(t *testing.T) {
	c := newCluster(t, clusterOptions{instances: 3, hydra: hydra.Options{AccessTokenTTL: 3 * time.Second, DSN: pgtestDSN(t)}})
	c.connect("alice")
	rtt := plainRefreshRTT(t, c.hydra)

	// Round 0 is the first refresh of each process (cold: discovery documents fetched, client
	// registration read); it is reported apart from the warm rounds.
	var cold, lookups []time.Duration
	for round := 0; round <= stormRounds; round++ {
		c.waitExpired("alice")
		calls := c.hydra.TokenCalls("refresh_token")
		d := c.lookupStorm(t, stormCalls, "alice")
		if round == 0 {
			cold = d
		} else {
			lookups = append(lookups, d...)
		}
		if got := c.hydra.TokenCalls("refresh_token") - calls; got != 1 {
			t.Fatalf("round %d: %d concurrent lookups on 3 instances made %d token-endpoint calls, want 1", round, stormCalls, got)
		}
		if e := c.hydra.TokenErrors("refresh_token"); e != 0 {
			t.Fatalf("round %d: %d refresh errors at Hydra", round, e)
		}
	}
	report(t, "lookup, cold", cold, rtt)
	report(t, "lookup, warm", lookups, rtt)

	if os.Getenv("MCPGATE_STORM_HTTP") != "1" {
		return
	}
	// 1,000 whole calls must finish well within the new token's lifetime, or they would see the
	// next expiry too: a longer lifetime, on a cluster of its own.
	c = newCluster(t, clusterOptions{instances: 3, hydra: hydra.Options{AccessTokenTTL: 20 * time.Second, DSN: pgtestDSN(t)}})
	c.connect("alice")
	var calls []time.Duration
	for round := 0; round <= 2; round++ {
		c.waitExpired("alice")
		before := c.hydra.TokenCalls("refresh_token")
		began := time.Now()
		answers, took := c.timedStorm(stormCalls, "alice")
		for i, a := range answers {
			if a.text() != "subject=alice" {
				t.Fatalf("round %d call %d: %v", round, i, a)
			}
		}
		if got := c.hydra.TokenCalls("refresh_token") - before; got != 1 {
			t.Fatalf("round %d: %d tools/calls made %d token-endpoint calls in %s, want 1", round, stormCalls, got, time.Since(began))
		}
		if round > 0 {
			calls = append(calls, took...)
		}
	}
	report(t, "tools/call, warm", calls, rtt)
	// Baseline: the same storm on a fresh token (no refresh), so the refresh's own share of the
	// whole-call latency shows.
	before := c.hydra.TokenCalls("refresh_token")
	answers, base := c.timedStorm(stormCalls, "alice")
	for i, a := range answers {
		if a.text() != "subject=alice" {
			t.Fatalf("baseline call %d: %v", i, a)
		}
	}
	if got := c.hydra.TokenCalls("refresh_token") - before; got != 0 {
		t.Errorf("baseline: %d refreshes", got)
	}
	report(t, "tools/call, fresh token, no refresh", base, rtt)
}

// pgtestDSN is a PostgreSQL database for Hydra when PostgreSQL is installed (Hydra on SQLite
// serialises every request, which would measure Hydra's gate, not the gateway), else "".
func pgtestDSN(t *testing.T) string {
	if !pgtest.Available() {
		return ""
	}
	return pgtest.NewDatabase(t)
}

// lookupStorm runs n concurrent Manager.Lookup calls for user, round-robin over the instances,
// released together, and returns each one's latency. Every one must get a usable token.
func (c *cluster) lookupStorm(t *testing.T, n int, user string) []time.Duration {
	type target struct {
		m  *connect.Manager
		up *connect.Upstream
		r  *http.Request
	}
	targets := make([]target, len(c.gws))
	for i, in := range c.gws {
		up, ok := in.Manager.Upstream("hydra-up")
		if !ok {
			t.Fatal("upstream not registered")
		}
		targets[i] = target{m: in.Manager, up: up, r: httptest.NewRequest("GET", in.URL+"/mcp/up", nil)}
	}
	key := c.key(user)
	out := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tg := targets[i%len(targets)]
			<-start
			began := time.Now()
			lk, err := tg.m.Lookup(context.Background(), tg.m.Endpoints(tg.r), tg.up, key, "storm")
			out[i] = time.Since(began)
			if err == nil && lk.Token == nil {
				err = errNoToken
			}
			errs[i] = err
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("lookup %d: %v", i, err)
		}
	}
	return out
}

// timedStorm is storm with each call's latency.
func (c *cluster) timedStorm(n int, user string) ([]answer, []time.Duration) {
	out := make([]answer, n)
	took := make([]time.Duration, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			began := time.Now()
			out[i] = c.call(context.Background(), i%len(c.gws), user, "whoami")
			took[i] = time.Since(began)
		}()
	}
	close(start)
	wg.Wait()
	return out, took
}

// plainRefreshRTT is the median of a few plain refresh_token grants with x/oauth2 (its own
// client and grant, so the measured connection is untouched).
func plainRefreshRTT(t *testing.T, h *hydra.Server) time.Duration {
	const redirect = "http://127.0.0.1:1/cb"
	cl := h.CreateClient(t, hydra.ClientSpec{RedirectURIs: []string{redirect}})
	cfg := h.OAuth2Config(cl, redirect, "mcp", "offline_access")
	verifier := oauth2.GenerateVerifier()
	back := h.AuthorizeHeadless(t, cfg.AuthCodeURL("plain-rtt-state", oauth2.S256ChallengeOption(verifier)), "rtt")
	tok, err := cfg.Exchange(t.Context(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	var d []time.Duration
	rt := tok.RefreshToken
	for range 9 {
		began := time.Now()
		tok, err := cfg.TokenSource(t.Context(), &oauth2.Token{RefreshToken: rt}).Token()
		if err != nil {
			t.Fatal(err)
		}
		d = append(d, time.Since(began))
		rt = tok.RefreshToken
	}
	slices.Sort(d)
	return d[len(d)/2]
}

func report(t *testing.T, what string, d []time.Duration, rtt time.Duration) {
	slices.Sort(d)
	p := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	t.Logf("refresh storm (%s): %d requests; plain refresh RTT %s; p50 %s (%.1f× RTT), p99 %s (%.1f× RTT), max %s",
		what, len(d), rtt.Round(10*time.Microsecond), p(0.50).Round(10*time.Microsecond), float64(p(0.50))/float64(rtt),
		p(0.99).Round(10*time.Microsecond), float64(p(0.99))/float64(rtt), d[len(d)-1].Round(10*time.Microsecond))
}

var errNoToken = errors.New("no usable token")
