package setup_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/testutil/browser"
	"github.com/mcpgate/mcpgate/internal/testutil/mcpupstream"
)

// TestSetupUIChromium is the administrator's whole path in headless Chromium against real Hydra:
// sign in with an admin key, "Check now" on a Hydra-backed upstream, connect the shared grant
// through the consent page and Hydra's login, a user's tool call with an ordinary API key reaching
// the upstream as the shared subject, the health and audit pages, and "Disconnect" turning the
// user's next call into admin_connect_required. Every page is screenshot (desktop, and the
// upstreams page on a phone).
func TestSetupUIChromium(t *testing.T) {
	browser.Require(t)
	h, tracker := startHydraUpstream(t, 0)
	linear := mcpupstream.Start(t, mcpupstream.Options{Issuer: h.PublicURL, IntrospectURL: h.AdminURL + "/admin/oauth2/introspect"})
	e := newEnv(t, envOptions{upstreams: []upstreamSpec{
		{id: "tracker", displayName: "Team Tracker", authMode: "shared-oauth", url: tracker.URL, scopes: []string{"mcp", "offline_access"}},
		{id: "linear", displayName: "Linear", authMode: "user-oauth", url: linear.URL, scopes: []string{"mcp", "offline_access"}},
		{id: "wiki", displayName: "Wiki", authMode: "user-oauth", url: brokenUpstream(t)},
	}})
	admin := e.key("ops", true)
	alice := e.key("alice", false)
	bob := e.key("bob", false)
	e.connectUser(h, "linear", alice, "alice")
	e.connectUser(h, "linear", bob, "bob")
	h.RevokeConsent(t, "bob") // bob's Linear grant dies at the AS; his next refresh finds out

	if d := connectRequired(e.call("tracker", alice, "whoami")); d == nil || d["state"] != "admin_connect_required" {
		t.Fatal("before the admin connected the shared grant: want admin_connect_required")
	}

	b := browser.New(t)
	b.Navigate(e.base + "/setup")
	if got := b.Text("h1"); got != "Sign in to mcpgate setup" {
		t.Fatalf("unauthenticated /setup shows %q", got)
	}
	b.Screenshot("login")
	// A non-admin key is refused on the page.
	browser.Eval[string](b, `document.querySelector("#key").value = `+strconv.Quote(alice))
	b.ClickNavigate(`main button[type="submit"]`)
	if msg := b.Text(`main p[role="status"]`); !strings.Contains(msg, "does not belong to an administrator") {
		t.Errorf("non-admin sign-in says %q", msg)
	}
	b.Screenshot("login-refused")
	browserLogin(t, b, e, admin)
	if cookies := browser.Eval[string](b, `document.cookie`); strings.Contains(cookies, "mcpgate-admin") {
		t.Error("the session cookie is readable from the page (not HttpOnly)")
	}

	// Check now: discovery reruns and each step is shown.
	b.ClickNavigate(`#up-tracker form[action$="/check"] button`)
	steps := b.Text("#up-tracker details table")
	if !strings.Contains(steps, "protected resource metadata") || !strings.Contains(steps, "authorization server metadata") || !strings.Contains(steps, "found") {
		t.Fatalf("discovery steps after Check now:\n%s", steps)
	}
	facts := b.Text("#up-tracker dl")
	for _, want := range []string{tracker.URL, h.Issuer(), "S256 supported", "dynamic client registration"} {
		if !strings.Contains(facts, want) {
			t.Errorf("tracker facts lack %q:\n%s", want, facts)
		}
	}
	if wiki := b.Text("#up-wiki"); !strings.Contains(wiki, "prm_not_found") || !strings.Contains(wiki, "upstream OAuth setup") {
		t.Errorf("the broken upstream does not show its bucket and code:\n%s", wiki)
	}
	b.Screenshot("check-now")

	// Connect the shared grant: consent page, Hydra login as team-bot, callback.
	h.SetSubject("team-bot")
	b.ClickNavigate(`#up-tracker form[action$="/connect"] button`)
	if got := b.Text("h1"); got != "Connect Team Tracker" {
		t.Fatalf("connect leads to %q", got)
	}
	if txt := b.Text("main"); !strings.Contains(txt, "the shared connection") {
		t.Errorf("consent page does not say it is the shared connection:\n%s", txt)
	}
	b.Screenshot("consent")
	b.ClickNavigate(`button[value="approve"]`)
	b.WaitURL(func(u string) bool { return strings.Contains(u, "/auth/connections/tracker/callback") })
	if got := b.Text("h1"); got != "Team Tracker is connected" {
		t.Fatalf("after Hydra: %q", got)
	}
	b.Screenshot("connected")

	// Any user of the route now goes through the shared grant.
	if got := toolText(e.call("tracker", alice, "whoami")); got != "subject=team-bot" {
		t.Fatalf("alice through the shared grant: %q", got)
	}
	if seen := tracker.Seen(); len(seen) == 0 || seen[len(seen)-1].Subject != "team-bot" {
		t.Fatalf("the upstream saw %v", seen)
	}
	if got := toolText(e.call("linear", bob, "whoami")); got != "" {
		t.Fatalf("bob's Linear call after his grant was revoked: %q", got)
	}

	b.Navigate(e.base + "/setup#up-tracker")
	shared := b.Text("#up-tracker")
	for _, want := range []string{"active", "ops", "mcp", "Reconnect Team Tracker", "Disconnect"} {
		if !strings.Contains(shared, want) {
			t.Errorf("shared connection section lacks %q:\n%s", want, shared)
		}
	}
	b.Screenshot("upstreams")
	b.Phone()
	b.Screenshot("upstreams-phone")
	if w := browser.Eval[float64](b, `document.documentElement.scrollWidth`); w > browser.PhoneWidth+1 {
		t.Errorf("the upstreams page scrolls sideways on a phone: %vpx", w)
	}
	b.Desktop()

	// The health view answers "which users' Linear connections are failing, and why?".
	b.Navigate(e.base + "/setup/connections?upstream=linear&state=failing")
	table := b.Text("main")
	if !strings.Contains(table, "bob") || !strings.Contains(table, "reconsent_required") || !strings.Contains(table, "refresh_grant_invalid") || strings.Contains(table, "apikey|alice") {
		t.Errorf("failing Linear connections:\n%s", table)
	}
	b.Screenshot("connections-failing")
	b.Navigate(e.base + "/setup/connections")
	b.Screenshot("connections")
	b.Phone()
	b.Navigate(e.base + "/setup/connections?upstream=linear&state=failing")
	b.Screenshot("connections-failing-phone")
	if w := browser.Eval[float64](b, `document.documentElement.scrollWidth`); w > browser.PhoneWidth+1 {
		t.Errorf("the connections page scrolls sideways on a phone: %vpx", w)
	}
	b.Desktop()

	// Disconnect the shared grant: the next user call needs an administrator again.
	b.Navigate(e.base + "/setup#up-tracker")
	b.ClickNavigate(`#up-tracker form[action$="/disconnect"] button`)
	if flash := b.Text(`main p[role="status"]`); !strings.Contains(flash, "revoked") {
		t.Errorf("after disconnect: %q", flash)
	}
	if txt := b.Text("#up-tracker"); !strings.Contains(txt, "revoked") {
		t.Errorf("shared connection after disconnect:\n%s", txt)
	}
	b.Screenshot("disconnected")
	if d := connectRequired(e.call("tracker", bob, "whoami")); d == nil || d["state"] != "admin_connect_required" {
		t.Fatal("after the admin disconnected: want admin_connect_required")
	}

	b.Navigate(e.base + "/setup/audit?upstream=tracker")
	log := b.Text("main table")
	for _, want := range []string{"mcp_auth_upstream_connection_revoked", "mcp_auth_upstream_connection_established", "mcp_auth_connect_required", "apikey|ops", "apikey|bob", "admin_connect_required", "connectedBy=apikey|ops"} {
		if !strings.Contains(log, want) {
			t.Errorf("audit page lacks %q", want)
		}
	}
	b.Screenshot("audit")

	// The tools page: this instance's calls per route and tool (whoami was called on both routes
	// without a tools/list, so it is counted as "other").
	b.Navigate(e.base + "/setup/tools")
	tools := b.Text("main")
	for _, want := range []string{"This instance's counters since it started", "tools/call", "other", "success", "connect_required"} {
		if !strings.Contains(tools, want) {
			t.Errorf("tools page lacks %q:\n%s", want, tools)
		}
	}
	b.Screenshot("tools")
	for _, line := range b.Console() {
		if !strings.Contains(line, "status of 403") { // the refused sign-in answers 403
			t.Errorf("browser console: %s", line)
		}
	}
}

// browserLogin signs the browser in through the login form.
func browserLogin(t *testing.T, b *browser.Browser, e *env, key string) {
	t.Helper()
	b.Navigate(e.base + "/setup/login")
	browser.Eval[string](b, `document.querySelector("#key").value = `+strconv.Quote(key))
	b.ClickNavigate(`main button[type="submit"]`)
	if got := b.Text("h1"); got != "Upstreams" {
		t.Fatalf("after sign-in: %q", got)
	}
}
