package review_test

import (
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"context"
	"github.com/mcpgate/mcpgate/internal/config"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/store"
)

// revokeInStore revokes a connection the way `mcpgate connections revoke` (or another replica's
// admin revoke) does: a compare-and-swap write to the shared store, with no access to this
// process's memory.
func revokeInStore(t *testing.T, st store.Store, key store.ConnectionKey) {
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
	e := newEnv(t, "")
	e.connect("/mcp/alpha", "alice")
	if resp, body := e.toolsCall(e.gw, "/mcp/alpha", "alice", nil); resp.StatusCode != 200 || !strings.Contains(body, `"result"`) {
		t.Fatalf("tools/call after connecting: HTTP %d %s", resp.StatusCode, body)
	}
	revokeInStore(t, e.st, store.ConnectionKey{UpstreamID: "alpha", Mode: store.ModeUser, Subject: "review|alice"})
	waitConnectRequired(t, e, e.gw)
}

// The same through a second replica: an admin revoke on replica A is not seen by replica B.
func TestRevokeOnOneReplicaSeenByAnother_Review(t *testing.T) {
	e := newEnv(t, "")
	b := e.replica()
	e.connect("/mcp/alpha", "alice")
	if resp, _ := e.toolsCall(b, "/mcp/alpha", "alice", nil); resp.StatusCode != 200 {
		t.Fatalf("replica B: HTTP %d", resp.StatusCode)
	}
	revokeInStore(t, e.st, store.ConnectionKey{UpstreamID: "alpha", Mode: store.ModeUser, Subject: "review|alice"})
	waitConnectRequired(t, e, b)
}

// waitConnectRequired polls alice's tools/call on gw until it is answered with connect-required,
// for at most 40 s, logging each forward of the revoked token.
func waitConnectRequired(t *testing.T, e *env, gw *httptest.Server) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	forwarded := 0
	for {
		before := e.up.requests()
		_, body := e.toolsCall(gw, "/mcp/alpha", "alice", nil)
		if e.up.requests() > before && e.up.lastHeaders().Get("Authorization") != "" {
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

// FIXED FINDING (regression guard): behind https every upstream's browser-binding cookie has the same name and path
// (__Host-mcpgate-connect, Path=/), so a person who approves two connect links before finishing the
// first sign-in (two upstreams, two tabs: the usual case when a client calls tools of two
// upstreams) gets "this browser is not the one that approved" on the first callback.
func TestParallelConnectsInOneBrowser_Review(t *testing.T) {
	e := newEnv(t, "https://gw.example")
	_, a := e.toolsCall(e.gw, "/mcp/alpha", "alice", nil)
	_, b := e.toolsCall(e.gw, "/mcp/beta", "alice", nil)
	locA := e.jar.approve(e.gw, authURL(t, a))
	locB := e.jar.approve(e.gw, authURL(t, b))

	resp, page := e.jar.callback(e.gw, locA)
	if resp.StatusCode != 200 {
		t.Errorf("first upstream's callback after a second approve: HTTP %d, want 200 (connected)\n%s", resp.StatusCode, excerpt(page))
	}
	resp, page = e.jar.callback(e.gw, locB)
	if resp.StatusCode != 200 {
		t.Errorf("second upstream's callback: HTTP %d\n%s", resp.StatusCode, excerpt(page))
	}
}

// FIXED FINDING (regression guard): without --public-url the DNS-rebinding check compares Origin with the request's own
// Host, which is exactly what a DNS-rebinding page controls (Host: evil.example, Origin:
// http://evil.example). The default quickstart (no public URL, listening on localhost) is the
// setup DNS rebinding targets.
func TestDNSRebindingOriginRefusedWithoutPublicURL_Review(t *testing.T) {
	e := newEnv(t, "")
	before := e.up.requests()
	resp, _ := e.toolsCall(e.gw, "/mcp/public", "", map[string]string{"Host": "evil.example", "Origin": "http://evil.example"})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("rebinding Origin: HTTP %d, want 403", resp.StatusCode)
	}
	if e.up.requests() != before {
		t.Error("a DNS-rebinding request reached the upstream")
	}
}

func excerpt(page string) string {
	if i := strings.Index(page, "Reason"); i >= 0 {
		return page[i:min(len(page), i+400)]
	}
	return page[:min(len(page), 400)]
}

// writeConfig writes a project from policies.json and routes.oas.json bodies.
func writeConfig(t *testing.T, policies, routes string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"zuplo.jsonc":            `{"version":1,"compatibilityDate":"2026-03-01"}`,
		"config/policies.json":   policies,
		"config/routes.oas.json": routes,
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const reviewPolicies = `{"policies":[
 {"name":"mcp-token-exchange-lin","policyType":"mcp-token-exchange-inbound","handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpTokenExchangeInboundPolicy","options":{"displayName":"Linear","authMode":"user-oauth"}}},
 {"name":"key","policyType":"api-key-inbound","handler":{"module":"$import(@zuplo/runtime)","export":"ApiKeyInboundPolicy","options":{}}}]}`

func mcpRoute(path, op, target, inbound string) string {
	return `"` + path + `":{"post":{"operationId":"` + op + `","x-zuplo-route":{"handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"` + target + `"}},"policies":{"inbound":[` + inbound + `]}}}}`
}

// FIXED FINDING (regression guard): `mcpgate validate` accepts configs that `serve` refuses or that fail every request:
// user-oauth token exchange with no gateway auth before it (every request answers 500
// gateway_configuration at run time), and one upstream id on routes with different rewritePattern
// URLs (serve refuses to start in Provision; validate says "configuration is valid").
func TestValidateCatchesRuntimeOnlyConfigErrors_Review(t *testing.T) {
	cases := []struct {
		name, routes, want string
	}{
		{"token exchange without gateway auth",
			`{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{` + mcpRoute("/mcp/a", "a", "https://a.example/mcp", `"mcp-token-exchange-lin"`) + `}}`,
			"mcp-token-exchange-lin"},
		{"token exchange before gateway auth",
			`{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{` + mcpRoute("/mcp/a", "a", "https://a.example/mcp", `"mcp-token-exchange-lin","key"`) + `}}`,
			"mcp-token-exchange-lin"},
		{"one upstream id, two upstream URLs",
			`{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{` + mcpRoute("/mcp/a", "a", "https://a.example/mcp", `"key","mcp-token-exchange-lin"`) + `,` +
				mcpRoute("/mcp/b", "b", "https://b.example/mcp", `"key","mcp-token-exchange-lin"`) + `}}`,
			"b.example"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load(writeConfig(t, reviewPolicies, tc.routes), func(string) (string, bool) { return "", false })
			if err == nil {
				t.Fatalf("config.Load accepted it; want an error naming %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
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
	e := newEnv(t, "")
	e.connect("/mcp/alpha", "alice")
	e.up.setAnswer(func(w http.ResponseWriter, r *http.Request, token string) bool {
		switch token {
		case "at-1": // the stored token is no longer accepted (revoked upstream, no expires_in…)
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return true
		case "at-2": // the refreshed token lacks a scope this tool needs
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="mcp admin", resource_metadata="`+e.up.URL+`/.well-known/oauth-protected-resource/mcp/alpha"`)
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		return false
	})
	resp, body := e.toolsCall(e.gw, "/mcp/alpha", "alice", nil)
	if v := resp.Header.Get("WWW-Authenticate"); v != "" {
		t.Errorf("the upstream's challenge reached the MCP client after a replay: %q", v)
	}
	if !strings.Contains(body, "-32042") {
		t.Errorf("replayed 403 insufficient_scope: want a step-up connect-required, got HTTP %d %s", resp.StatusCode, body)
	}
}

// FIXED FINDING (regression guard): the MCP proxy allocates a buffer of the request's declared Content-Length (up to the
// 4 MiB limit) before a byte of the body has arrived, and the server has no body read deadline.
// On a route without gateway auth (or with any valid key) 20 connections that each declare 4 MiB
// and send one byte pin 80 MiB until they give up; a few thousand pin gigabytes.
func TestDeclaredLengthNotPreallocated_Review(t *testing.T) {
	e := newEnv(t, "")
	addr := strings.TrimPrefix(e.gw.URL, "http://")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	const conns = 20
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /mcp/public HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", addr, 4<<20)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		runtime.ReadMemStats(&ms)
		if grown := int64(ms.HeapAlloc) - int64(base); grown > conns*(2<<20) {
			t.Fatalf("%d stalled requests that sent one byte each hold %d MiB of heap", conns, grown>>20)
		}
		<-time.After(100 * time.Millisecond)
	}
}
