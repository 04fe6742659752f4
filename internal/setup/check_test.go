package setup_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/setup"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/testutil/mcpupstream"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// TestCheckNowRunsTheSetupCheck: "Check now" (API and page) runs the setup check `mcpgate check`
// runs (upstream.(*Engine).Check): each step's result, the registration mode that would be used,
// and — when discovery works but no registration mode is available (a real Hydra without dynamic
// client registration, and no manual client) — a gateway-configuration problem the page shows and
// the audit log records. Neither check registers a client at Hydra.
func TestCheckNowRunsTheSetupCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Ory Hydra")
	}
	withDCR := hydra.Start(t, hydra.Options{Scopes: []string{"mcp"}})
	noDCR := hydra.Start(t, hydra.Options{Scopes: []string{"mcp"}, DisableDCR: true})
	upDCR := mcpupstream.Start(t, mcpupstream.Options{Issuer: withDCR.PublicURL, IntrospectURL: withDCR.AdminURL + "/admin/oauth2/introspect"})
	upNoDCR := mcpupstream.Start(t, mcpupstream.Options{Issuer: noDCR.PublicURL, IntrospectURL: noDCR.AdminURL + "/admin/oauth2/introspect"})
	e := newEnv(t, envOptions{upstreams: []upstreamSpec{
		{id: "linear", displayName: "Linear", authMode: "user-oauth", url: upDCR.URL},
		{id: "closed", displayName: "Closed", authMode: "user-oauth", url: upNoDCR.URL},
	}})
	admin := e.key("root", true)

	var ok setup.UpstreamStatus
	e.apiJSON("POST", "/upstreams/linear/check", admin, "", &ok)
	wantSteps := func(st setup.UpstreamStatus, want ...string) {
		t.Helper()
		var got []string
		for _, s := range st.Discovery.Steps {
			got = append(got, s.Name+" "+string(s.Result))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: steps %q, want %q", st.ID, got, want)
		}
	}
	wantSteps(ok, "prm ok", "as_metadata ok", "pkce_s256 ok", "registration ok", "scopes ok")
	if !ok.Discovery.OK || !ok.Discovery.Ready || ok.Discovery.Problem != nil ||
		ok.Discovery.RegistrationMethod != "dynamic client registration (not registered yet: happens on the first connect)" {
		t.Errorf("linear: %+v", ok.Discovery)
	}

	var closed setup.UpstreamStatus
	e.apiJSON("POST", "/upstreams/closed/check", admin, "", &closed)
	wantSteps(closed, "prm ok", "as_metadata ok", "pkce_s256 ok", "registration failed", "scopes ok")
	if p := closed.Discovery.Problem; !closed.Discovery.OK || closed.Discovery.Ready || p == nil ||
		p.Code != upstream.CodeRegistrationMissing || p.Bucket != string(upstream.BucketGatewayConfig) || !strings.Contains(p.Reason, "manual") {
		t.Errorf("closed: %+v problem %+v", closed.Discovery, p)
	}

	// The page: Check now through the form shows the failed step and the problem.
	c := newClient(t)
	if resp := e.login(c, admin); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	_, page := c.get(e.base + "/setup")
	resp, _ := c.post(e.base+"/setup/upstreams/closed/check", url.Values{"csrf": {csrfOf(t, page)}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("check now: %d", resp.StatusCode)
	}
	_, page = c.get(e.gw.URL + resp.Header.Get("Location"))
	for _, want := range []string{"Setup problem", "registration failed", upstream.CodeRegistrationMissing, "gateway configuration", `<span class="pill bad">not ready</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the setup page after Check now does not show %q", want)
		}
	}

	// The audit log records the failed check with the problem's code.
	var ap setup.AuditPage
	e.apiJSON("GET", "/audit?event="+setup.EventDiscoveryChecked+"&upstream=closed", admin, "", &ap)
	if len(ap.Events) != 2 || ap.Events[0].Outcome != "failure" || ap.Events[0].ReasonCode != upstream.CodeRegistrationMissing {
		t.Errorf("audit of the checks of closed: %+v", ap.Events)
	}
	e.apiJSON("GET", "/audit?event="+setup.EventDiscoveryChecked+"&upstream=linear", admin, "", &ap)
	if len(ap.Events) != 1 || ap.Events[0].Outcome != "success" {
		t.Errorf("audit of the check of linear: %+v", ap.Events)
	}

	for name, h := range map[string]*hydra.Server{"with DCR": withDCR, "without DCR": noDCR} {
		if n := len(h.ListClients(t)); n != 0 {
			t.Errorf("Hydra %s has %d clients after Check now, want 0", name, n)
		}
	}
}
