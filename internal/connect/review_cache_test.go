// Regression guards from the security review of the connection cache, replicas, refresh and
// step-up: a revoke reaches every process, concurrent 401s refresh once, a replayed 403 becomes a
// step-up. Driven through whole gateways in front of gatewaytest.FakeUpstream; names end in
// _Review.
package connect_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// reviewAlice is the connection of the test user alice to upstream alpha.
var reviewAlice = store.ConnectionKey{UpstreamID: "alpha", Mode: store.ModeUser, Subject: gatewaytest.TestNamespace + "|alice"}

// reviewRevokeInStore revokes a connection the way `mcpgate connections revoke` (or another
// replica's admin revoke) does: a compare-and-swap write to the shared store, with no access to
// this process's memory.
func reviewRevokeInStore(t *testing.T, st store.Store, key store.ConnectionKey) {
	t.Helper()
	c, err := st.GetConnection(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	c.Status, c.AccessToken, c.RefreshToken = store.StatusRevoked, "", ""
	if err := st.PutConnection(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

// FIXED FINDING (regression guard): a connection revoked by the CLI (or by an admin on another replica) keeps being used by
// a running gateway: the in-memory token cache is only invalidated in the process that revoked, and
// a fresh cached token is served without reading the store. The upstream keeps receiving the
// revoked user's token for the token's remaining lifetime (forever for a token without
// expires_in). The test polls for 40 s, so a fix that bounds the staleness (a short cache max-age)
// passes too; every forward of the revoked token meanwhile is logged.
func TestRevokedConnectionNotServedFromCache_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	e.Connect("/mcp/alpha", "alice")
	if resp, body := e.ToolsCall(e.Gateway, "/mcp/alpha", "alice", nil); resp.StatusCode != 200 || !strings.Contains(body, `"result"`) {
		t.Fatalf("tools/call after connecting: HTTP %d %s", resp.StatusCode, body)
	}
	reviewRevokeInStore(t, e.Gateway.Store, reviewAlice)
	reviewWaitConnectRequired(t, e, e.Gateway)
}

// The same through a second replica: an admin revoke on replica A is not seen by replica B.
func TestRevokeOnOneReplicaSeenByAnother_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	b := e.Replica()
	e.Connect("/mcp/alpha", "alice")
	if resp, _ := e.ToolsCall(b, "/mcp/alpha", "alice", nil); resp.StatusCode != 200 {
		t.Fatalf("replica B: HTTP %d", resp.StatusCode)
	}
	reviewRevokeInStore(t, e.Gateway.Store, reviewAlice)
	reviewWaitConnectRequired(t, e, b)
}

// reviewWaitConnectRequired polls alice's tools/call on gw until it is answered with
// connect-required, for at most 40 s, logging each forward of the revoked token.
func reviewWaitConnectRequired(t *testing.T, e *gatewaytest.FakeUpstreamEnv, gw *gatewaytest.Gateway) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	forwarded := 0
	for {
		before := e.Up.Requests()
		_, body := e.ToolsCall(gw, "/mcp/alpha", "alice", nil)
		if e.Up.Requests() > before && e.Up.LastHeaders().Get("Authorization") != "" {
			forwarded++
		}
		if strings.Contains(body, "-32042") {
			t.Logf("revoke took effect after %d forwards of the revoked token", forwarded)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("40 s after revoke the gateway still forwards the revoked token (%d forwards; last answer %s)", forwarded, body)
		}
		<-time.After(500 * time.Millisecond)
	}
}

// Fifty concurrent calls whose stored token the upstream suddenly refuses: one refresh at the
// token endpoint, every call replayed with the new token and answered, no call asked to
// reconnect (run with -race: the hook, replay and manager share state across requests).
func TestConcurrent401sRefreshOnce_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	e.Connect("/mcp/alpha", "alice")
	e.Up.SetAnswer(func(w http.ResponseWriter, r *http.Request, token string) bool {
		if token == "at-1" {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}
		return false
	})
	const n = 50
	var wg sync.WaitGroup
	bodies := make([]string, n)
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			resp, body := e.ToolsCall(e.Gateway, "/mcp/alpha", "alice", nil)
			codes[i], bodies[i] = resp.StatusCode, body
		})
	}
	wg.Wait()
	for i := range n {
		if codes[i] != 200 || !strings.Contains(bodies[i], `"result"`) {
			t.Errorf("call %d: HTTP %d %s", i, codes[i], bodies[i])
		}
	}
	if tokens := e.Up.TokensIssued(); tokens != 2 {
		t.Errorf("token endpoint called %d times, want 2 (the code exchange and one refresh)", tokens)
	}
}

// FIXED FINDING (regression guard): after a refresh-and-replay (upstream 401 on a stored token), the replayed response is
// handed to the MCP client without the MCP proxy's challenge stripping: a replayed 403 keeps the
// upstream's WWW-Authenticate (modifyResponse copies the replayed response into the original
// *http.Response, so fromUpstream no longer recognises it; the replay's context is the client
// request's, not the call's). The upstream's insufficient_scope challenge reaches the client,
// which would start OAuth against the upstream's authorization server; it should have become a
// step-up connect-required.
func TestReplayed403ChallengeNotPassedThrough_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	e.Connect("/mcp/alpha", "alice")
	e.Up.SetAnswer(func(w http.ResponseWriter, r *http.Request, token string) bool {
		switch token {
		case "at-1": // the stored token is no longer accepted (revoked upstream, no expires_in…)
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return true
		case "at-2": // the refreshed token lacks a scope this tool needs
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="mcp admin", resource_metadata="`+e.Up.URL+`/.well-known/oauth-protected-resource/mcp/alpha"`)
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		return false
	})
	resp, body := e.ToolsCall(e.Gateway, "/mcp/alpha", "alice", nil)
	if v := resp.Header.Get("WWW-Authenticate"); v != "" {
		t.Errorf("the upstream's challenge reached the MCP client after a replay: %q", v)
	}
	if !strings.Contains(body, "-32042") {
		t.Errorf("replayed 403 insufficient_scope: want a step-up connect-required, got HTTP %d %s", resp.StatusCode, body)
	}
}
