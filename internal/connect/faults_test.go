package connect_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// faultTTL is the access-token lifetime of the fault tests: short, so the token expires soon.
const faultTTL = 3 * time.Second

// wantTransient asserts a clear transient failure: 503 problem with Retry-After, never a
// connect-required answer.
func wantTransient(t *testing.T, a answer) {
	t.Helper()
	if a.err != nil || a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
		t.Fatalf("want 503 with Retry-After, got %v (Retry-After %q)", a, a.header.Get("Retry-After"))
	}
	if !strings.Contains(string(a.body), "upstream_credential_unavailable") || strings.Contains(string(a.body), "-32042") {
		t.Fatalf("want a transient credential problem, got %s", a.body)
	}
}

// wantIntact asserts the connection still holds exactly the tokens it had.
func wantIntact(t *testing.T, c *cluster, before *store.Connection) {
	t.Helper()
	after := c.connection("alice")
	if after.Status != store.StatusActive || after.RefreshToken != before.RefreshToken || after.AccessToken != before.AccessToken {
		t.Fatalf("connection changed: status %s, same refresh token %v, same access token %v",
			after.Status, after.RefreshToken == before.RefreshToken, after.AccessToken == before.AccessToken)
	}
}

// TestTokenEndpointFaultsKeepTheConnection: the token endpoint fails while an expired token is
// refreshed (503, a hang past the HTTP timeout, a connection reset). The request fails with a
// transient 503 and Retry-After; the connection keeps its tokens; once the endpoint recovers the
// next call refreshes and succeeds, with the same refresh token (nothing was lost).
func TestTokenEndpointFaultsKeepTheConnection(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(authModeOf(clusterOptions{shared: shared}), func(t *testing.T) { testTokenEndpointFaults(t, shared) })
	}
}

func testTokenEndpointFaults(t *testing.T, shared bool) {
	release := make(chan struct{})
	defer close(release)
	faults := []struct {
		name      string
		intercept hydra.TokenInterceptor
	}{
		{"503", func(w http.ResponseWriter, _ *http.Request, _ string) bool {
			w.Header().Set("Retry-After", "3")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"temporarily_unavailable"}`))
			return true
		}},
		{"hang", func(_ http.ResponseWriter, r *http.Request, _ string) bool {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return true
		}},
		{"reset", func(http.ResponseWriter, *http.Request, string) bool {
			panic(http.ErrAbortHandler) // the proxy drops the connection without an answer
		}},
	}
	c := newCluster(t, clusterOptions{instances: 2, hydra: hydra.Options{AccessTokenTTL: faultTTL}, httpTimeout: 1500 * time.Millisecond, shared: shared})
	c.connect("alice")
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			before := c.waitExpired("alice")
			calls := c.hydra.TokenCalls("refresh_token")
			c.hydra.SetTokenInterceptor(func(w http.ResponseWriter, r *http.Request, grant string) bool {
				return grant == "refresh_token" && f.intercept(w, r, grant)
			})
			for i := range c.gws {
				wantTransient(t, c.call(context.Background(), i, "alice", "whoami"))
			}
			if c.hydra.TokenCalls("refresh_token") == calls {
				t.Fatal("no refresh was attempted")
			}
			if c.metric(0, `mcpgate_upstream_refreshes_total{outcome="transient",upstream="hydra-up"}`) == 0 {
				t.Error("/metrics counts no transient refresh failure")
			}
			wantIntact(t, c, before)
			if n := c.audits("alice", audit.UpstreamReconsentRequired); n != 0 {
				t.Fatalf("%d reconsent audit events", n)
			}

			c.hydra.SetTokenInterceptor(nil)
			if a := c.call(context.Background(), 1, "alice", "whoami"); a.text() != "subject=alice" {
				t.Fatalf("after the fault: %v", a)
			}
			if after := c.connection("alice"); after.Status != store.StatusActive || after.LastError != nil {
				t.Fatalf("after recovery: status %s, last error %+v", after.Status, after.LastError)
			}
		})
	}
}

// TestFailedProactiveRefreshServesTheValidToken: within the refresh skew the token is still
// valid; a token endpoint answering 503 must not fail the request, which is served with the
// current token, and must not touch the connection.
func TestFailedProactiveRefreshServesTheValidToken(t *testing.T) {
	const ttl = 9 * time.Second // refreshed in its last third: a 3 s window to call in
	c := newCluster(t, clusterOptions{instances: 1, hydra: hydra.Options{AccessTokenTTL: ttl}})
	c.connect("alice")
	before := c.connection("alice")
	transientBefore := c.metric(0, `mcpgate_upstream_refreshes_total{outcome="transient",upstream="hydra-up"}`)
	c.hydra.SetTokenInterceptor(func(w http.ResponseWriter, _ *http.Request, grant string) bool {
		if grant != "refresh_token" {
			return false
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	<-time.After(time.Until(before.Expiry.Add(-ttl / 6))) // inside the skew, well before expiry
	if time.Now().After(before.Expiry.Add(-time.Second)) {
		t.Skip("the machine is too slow to call inside the window")
	}
	if a := c.call(context.Background(), 0, "alice", "whoami"); a.text() != "subject=alice" {
		t.Fatalf("within the skew with a failing token endpoint: %v", a)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.hydra.TokenCalls("refresh_token") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no proactive refresh was attempted")
		}
		<-time.After(20 * time.Millisecond)
	}
	after := c.connection("alice")
	if after.Status != store.StatusActive || after.AccessToken != before.AccessToken || after.RefreshToken != before.RefreshToken {
		t.Fatal("a failed proactive refresh changed the connection's tokens")
	}
	// Once the failure is known, more requests in the window are served without hammering the
	// failing token endpoint again (ProactiveRetryBackoff).
	for c.metric(0, `mcpgate_upstream_refreshes_total{outcome="transient",upstream="hydra-up"}`) == transientBefore {
		if time.Now().After(deadline) {
			t.Fatal("the failed proactive refresh was not counted")
		}
		<-time.After(20 * time.Millisecond)
	}
	calls := c.hydra.TokenCalls("refresh_token")
	for range 5 {
		if a := c.call(context.Background(), 0, "alice", "whoami"); a.text() != "subject=alice" {
			t.Fatalf("within the skew after a failed refresh: %v", a)
		}
	}
	if got := c.hydra.TokenCalls("refresh_token") - calls; got != 0 && time.Now().Before(before.Expiry) {
		t.Fatalf("%d more token calls within the back-off", got)
	}
}

// TestKilledLeaseHolder: a gateway process holding the refresh lease is killed with SIGKILL while
// another instance waits for the refresh. Once the lease expires the waiting instance refreshes
// itself: the waiting request succeeds, Hydra sees one refresh, nothing is lost. The lease holder
// is this test binary re-executed (helper role "hold-lease") on the same SQLite file.
func TestKilledLeaseHolder(t *testing.T) {
	const leaseTTL = 3 * time.Second
	c := newCluster(t, clusterOptions{instances: 2, hydra: hydra.Options{AccessTokenTTL: faultTTL}})
	c.connect("alice")
	before := c.waitExpired("alice")
	calls := c.hydra.TokenCalls("refresh_token")

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MCPGATE_CONNECT_HELPER=hold-lease", "MCPGATE_HELPER_DB="+c.dbPath,
		"MCPGATE_HELPER_KEY="+c.ringKey, "MCPGATE_HELPER_LEASE="+connect.LeaseName(c.key("alice")),
		"MCPGATE_HELPER_TTL="+leaseTTL.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "held" {
		t.Fatalf("helper: %q %v", line, err)
	}
	held := time.Now()

	// Both instances wait for the lease: the refresh is in another process's hands.
	var wg sync.WaitGroup
	answers := make([]answer, 2*len(c.gws))
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = c.call(context.Background(), i%len(c.gws), "alice", "whoami")
		}()
	}
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	wg.Wait()
	for i, a := range answers {
		if a.text() != "subject=alice" {
			t.Fatalf("call %d after the lease holder died: %v", i, a)
		}
	}
	if waited := time.Since(held); waited < leaseTTL-500*time.Millisecond {
		t.Errorf("the calls finished %s after the lease was taken: they did not wait for the lease to expire", waited)
	}
	if got := c.hydra.TokenCalls("refresh_token") - calls; got != 1 {
		t.Errorf("Hydra saw %d refreshes, want 1", got)
	}
	after := c.connection("alice")
	if after.Status != store.StatusActive || after.RefreshToken == before.RefreshToken {
		t.Fatalf("after the takeover: status %s, refresh token rotated %v", after.Status, after.RefreshToken != before.RefreshToken)
	}
}

// TestRevokedGrantAsksForReconsentOnce: the user revokes the grant at the authorization server.
// Concurrent calls on every instance get connect-required with reconsent_required; the
// connection is marked once (tokens wiped, row kept) with one audit event.
func TestRevokedGrantAsksForReconsentOnce(t *testing.T) {
	c := newCluster(t, clusterOptions{instances: 3, hydra: hydra.Options{}})
	c.connect("alice")
	c.hydra.RevokeConsent(t, "alice")

	answers := c.storm(30, "alice")
	for i, a := range answers {
		d := a.errorData()
		if a.err != nil || a.status != 200 || d == nil || d["state"] != "reconsent_required" {
			t.Fatalf("call %d: want connect-required reconsent_required, got %v", i, a)
		}
	}
	conn := c.connection("alice")
	if conn.Status != store.StatusReconsentRequired || !conn.AccessToken.IsZero() || !conn.RefreshToken.IsZero() {
		t.Fatalf("connection: status %s, tokens wiped %v", conn.Status, conn.AccessToken.IsZero() && conn.RefreshToken.IsZero())
	}
	if n := c.audits("alice", audit.UpstreamReconsentRequired); n != 1 {
		t.Fatalf("%d reconsent_required audit events, want 1", n)
	}
	if c.hydra.TokenErrors("refresh_token") != 1 {
		t.Errorf("Hydra refused %d refreshes, want 1 (the dead grant is not retried)", c.hydra.TokenErrors("refresh_token"))
	}
}

// runHelper runs one helper role in a re-executed test binary.
func runHelper(role string) error {
	switch role {
	case "hold-lease":
		// An instance that took the refresh lease and is stuck in its token call.
		ring, err := vault.ParseRing(os.Getenv("MCPGATE_HELPER_KEY"))
		if err != nil {
			return err
		}
		st, err := sqlite.Open(context.Background(), os.Getenv("MCPGATE_HELPER_DB"), sqlstore.Options{Ring: ring})
		if err != nil {
			return err
		}
		ttl, err := time.ParseDuration(os.Getenv("MCPGATE_HELPER_TTL"))
		if err != nil {
			return err
		}
		if err := st.TryAcquireLease(context.Background(), os.Getenv("MCPGATE_HELPER_LEASE"), "helper-"+fmt.Sprint(os.Getpid()), ttl); err != nil {
			return err
		}
		fmt.Println("held")
		select {} // until SIGKILL
	}
	return fmt.Errorf("unknown helper role %q", role)
}
