package main

import (
	"context"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/bench/upstream"
	_ "github.com/mcpgate/mcpgate/internal/builtin"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// authUpstream is the bench upstream with its authorization server, as the harness runs it.
func authUpstream(t *testing.T, ttl time.Duration) (*httptest.Server, *upstream.AuthServer) {
	t.Helper()
	as := &upstream.AuthServer{TokenTTL: ttl, StaticKeys: []string{staticUpstreamKey}}
	s := httptest.NewServer(&upstream.Handler{SSEDelay: -1, Auth: as})
	t.Cleanup(s.Close)
	as.Issuer = s.URL
	return s, as
}

// gatewayFor runs the project in process, as mcpgate serve would.
func gatewayFor(t *testing.T, p upstream.GatewayProject) *gatewaytest.Gateway {
	t.Helper()
	dir := t.TempDir()
	if err := p.Write(dir); err != nil {
		t.Fatal(err)
	}
	return gatewaytest.New(t, gatewaytest.Options{Dir: dir, Metrics: true})
}

// The API-key target's set-up: the -32042 link, the API-key sign-in form, the connect consent
// page, the authorization server and the callback store a connection; calls then carry the token.
func TestConnectWithAPIKeyStoresTheConnection(t *testing.T) {
	up, as := authUpstream(t, time.Hour)
	gw := gatewayFor(t, upstream.APIKeyOAuthProject(up.URL+"/mcp"))
	id, key, hash, err := store.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Store.CreateAPIKey(t.Context(), &store.APIKey{ID: id, Consumer: "bench", Hash: hash, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := connectWithAPIKey(t.Context(), gw.URL, key); err != nil {
		t.Fatal(err)
	}
	if st := as.Stats(); st.Registrations != 1 || st.CodeGrants != 1 || st.LiveTokens != 1 {
		t.Fatalf("authorization server: %+v", st)
	}
	// The load generator's request through the gateway, JSON and SSE.
	l := load{addr: strings.TrimPrefix(gw.URL, "http://"), path: "/mcp", header: "Authorization: Bearer " + key + "\r\n"}
	if err := probe(context.Background(), l.addr, l.request(), load{addr: l.addr, path: "/mcp", sse: true, header: l.header}.request()); err != nil {
		t.Fatal(err)
	}
	c, err := readCounters(t.Context(), &target{name: "t", addr: l.addr, gateway: true, up: &upstreamProc{addr: strings.TrimPrefix(up.URL, "http://"), oauth: true}}, nil)
	if err != nil || c.asRefreshes != 0 || c.gwRefreshOK != 0 || c.dbStatements != -1 {
		t.Fatalf("counters: %+v, %v", c, err)
	}
}

// The sign-in target's set-up: registration, authorize with PKCE, the development login, Connect
// on the consent page, the code and the token endpoint.
func TestSignInReturnsAGatewayTokenThatReachesTheUpstream(t *testing.T) {
	up, as := authUpstream(t, time.Hour)
	gw := gatewayFor(t, upstream.SignInOAuthProject(up.URL+"/mcp", signInTokenTTL))
	tok, err := signIn(t.Context(), gw.URL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "mcpgate_at_") {
		t.Fatalf("access token %q", tok)
	}
	status, body, err := toolsCall(t.Context(), gw.URL, "Bearer "+tok)
	if err != nil || status != 200 || !strings.Contains(body, `"result":`) {
		t.Fatalf("tools/call with the gateway token: %d %v %s", status, err, body)
	}
	if st := as.Stats(); st.CodeGrants != 1 || st.Registrations != 1 {
		t.Fatalf("authorization server: %+v", st)
	}
}

// mcpgate-static: the upstream sees the static key and nothing else works.
func TestStaticKeyProjectSendsTheKey(t *testing.T) {
	up, as := authUpstream(t, time.Hour)
	gw := gatewayFor(t, upstream.StaticKeyProject(up.URL+"/mcp", staticUpstreamKey))
	addr := strings.TrimPrefix(gw.URL, "http://")
	if err := probe(t.Context(), addr, load{addr: addr, path: "/mcp"}.request()); err != nil {
		t.Fatal(err)
	}
	if err := probe(t.Context(), strings.TrimPrefix(up.URL, "http://"), load{addr: addr, path: "/mcp"}.request()); err == nil {
		t.Fatal("the upstream answered without the key")
	}
	if as.Stats().Refused != 1 {
		t.Fatalf("stats: %+v", as.Stats())
	}
}

// Idle streams stay open and cost the harness what it reports.
func TestIdleStreamsStayOpen(t *testing.T) {
	s := httptest.NewServer(&upstream.Handler{})
	defer s.Close()
	addr := strings.TrimPrefix(s.URL, "http://")
	conns, err := openStreams(t.Context(), load{addr: addr, path: "/mcp"}, 50)
	if err != nil || len(conns) != 50 {
		t.Fatalf("%d streams: %v", len(conns), err)
	}
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	// A negative check needs an idle window: nothing may close the streams or send on them in it.
	time.Sleep(50 * time.Millisecond)
	if err := stillOpen(conns); err != nil {
		t.Fatal(err)
	}
	s.CloseClientConnections()
	// The close reaches the client asynchronously: wait for stillOpen to see it, with a deadline.
	for deadline := time.Now().Add(5 * time.Second); stillOpen(conns) == nil; {
		if time.Now().After(deadline) {
			t.Fatal("closed streams still counted as open 5 s after the server closed them")
		}
		runtime.Gosched()
	}
	if n, err := rss("self"); err != nil || n <= 0 {
		t.Fatalf("rss: %d %v", n, err)
	}
}
