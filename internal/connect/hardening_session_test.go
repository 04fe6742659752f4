package connect_test

import (
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/mcpwire"
)

// Sessions do not cross users. A stateful Go SDK upstream behind Hydra issues its own session ids;
// on a token-exchange route they reach the client only wrapped (bound to the caller's subject).
// User B presenting user A's session id is refused (404, as for an unknown session) both wrapped
// and unwrapped (the upstream's own id, readable inside the wrapped one), and A keeps working. In
// shared mode the upstream sees A and B with the same token, so without the gateway's check B
// would act inside A's session; in user mode the upstream itself answers 403.
func TestSessionIDsDoNotCrossUsers(t *testing.T) {
	for _, shared := range []bool{true, false} {
		t.Run(authModeOf(clusterOptions{shared: shared}), func(t *testing.T) { testSessionIDsDoNotCrossUsers(t, shared) })
	}
}

func testSessionIDsDoNotCrossUsers(t *testing.T, shared bool) {
	c := newHardeningCluster(t, hardeningOptions{clusterOptions: clusterOptions{instances: 2, shared: shared}, upstream: startSessionUpstream})
	if shared {
		c.connect("ops") // the administrator's account: every caller's calls use it
	} else {
		c.connect("alice")
		c.connect("bob")
	}

	// alice opens a session on instance 0.
	init := c.hcall(0, "alice", "", initializeBody, nil)
	sid := init.header.Get(mcpwire.SessionHeader)
	if init.status != 200 || !strings.HasPrefix(sid, mcpwire.SessionPrefix) {
		t.Fatalf("initialize: %v, session id %q (want the gateway's wrapped id)", init, sid)
	}
	ups := upstreamSessionOf(t, sid)
	if ups == "" {
		t.Fatal("the upstream issued no session id (the test needs a stateful upstream)")
	}
	hdr := map[string]string{mcpwire.SessionHeader: sid}
	if a := c.hcall(0, "alice", "", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, hdr); a.status != 202 {
		t.Fatalf("notifications/initialized: %v", a)
	}
	inSession := func(i int, user string, h map[string]string) answer {
		return c.hcall(i, user, "", toolsCall("session"), h)
	}
	for i := range c.gws {
		if a := inSession(i, "alice", hdr); a.text() != "session="+ups || a.header.Get(mcpwire.SessionHeader) != "" && !strings.HasPrefix(a.header.Get(mcpwire.SessionHeader), mcpwire.SessionPrefix) {
			t.Fatalf("alice in her session on instance %d: %v", i, a)
		}
	}

	wantUnknown := func(what string, a answer) {
		t.Helper()
		if a.err != nil || a.status != 404 || !strings.Contains(string(a.body), "session_not_found") {
			t.Errorf("%s: want 404 session_not_found, got %v", what, a)
		}
		if strings.Contains(string(a.body), "session="+ups) {
			t.Errorf("%s: the call ran in alice's session", what)
		}
	}
	for i := range c.gws {
		wantUnknown("bob with alice's gateway session id", inSession(i, "bob", hdr))
		wantUnknown("bob with alice's upstream session id", inSession(i, "bob", map[string]string{mcpwire.SessionHeader: ups}))
		// An unwrapped id is never one the gateway issued on this route, whoever presents it.
		wantUnknown("alice with her own upstream session id", inSession(i, "alice", map[string]string{mcpwire.SessionHeader: ups}))
	}
	// alice keeps working, in her session.
	for i := range c.gws {
		if a := inSession(i, "alice", hdr); a.text() != "session="+ups {
			t.Fatalf("alice after bob's attempts, instance %d: %v", i, a)
		}
	}
	// bob's own session works.
	binit := c.hcall(1, "bob", "", initializeBody, nil)
	bsid := binit.header.Get(mcpwire.SessionHeader)
	if !strings.HasPrefix(bsid, mcpwire.SessionPrefix) {
		t.Fatalf("bob's initialize: %v", binit)
	}
	bhdr := map[string]string{mcpwire.SessionHeader: bsid}
	_ = c.hcall(1, "bob", "", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, bhdr)
	if a := inSession(0, "bob", bhdr); a.text() != "session="+upstreamSessionOf(t, bsid) || upstreamSessionOf(t, bsid) == ups {
		t.Fatalf("bob in his own session: %v", a)
	}
}

// A session id the upstream issues on a replayed request (its 401 answered by a refresh and one
// replay) reaches the client wrapped like any other.
func TestReplayedInitializeSessionIsWrapped(t *testing.T) {
	rt := newRefusingTransport("")
	c := newHardeningCluster(t, hardeningOptions{clusterOptions: clusterOptions{instances: 1}, upstream: startSessionUpstream, transport: rt})
	c.connect("alice")
	refreshes := c.hydra.TokenCalls("refresh_token")

	rt.next.Store(1) // the upstream refuses the initialize once (401), then accepts the replay
	init := c.hcall(0, "alice", "", initializeBody, nil)
	if rt.refused.Load() != 1 || c.hydra.TokenCalls("refresh_token") != refreshes+1 {
		t.Fatalf("the initialize was not refused once and replayed after a refresh (refused %d, refreshes %d)",
			rt.refused.Load(), c.hydra.TokenCalls("refresh_token")-refreshes)
	}
	sid := init.header.Get(mcpwire.SessionHeader)
	if init.status != 200 || !strings.HasPrefix(sid, mcpwire.SessionPrefix) {
		t.Fatalf("replayed initialize: %v, session id %q: the upstream's own session id reached the client", init, sid)
	}
	ups := upstreamSessionOf(t, sid)
	hdr := map[string]string{mcpwire.SessionHeader: sid}
	_ = c.hcall(0, "alice", "", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, hdr)
	if a := c.hcall(0, "alice", "", toolsCall("session"), hdr); ups == "" || a.text() != "session="+ups {
		t.Fatalf("alice in the replayed session: %v", a)
	}
}
