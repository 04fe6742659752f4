package setup_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/setup"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/testutil/browser"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/testutil/mcpupstream"
)

// shortTTL is the access-token lifetime of the Hydra tests: long enough to connect a few users,
// short enough that the tests see tokens expire for real.
const shortTTL = 4 * time.Second

func startHydraUpstream(t *testing.T, ttl time.Duration) (*hydra.Server, *mcpupstream.Server) {
	t.Helper()
	h := hydra.Start(t, hydra.Options{Scopes: []string{"mcp"}, AccessTokenTTL: ttl})
	up := mcpupstream.Start(t, mcpupstream.Options{Issuer: h.PublicURL, IntrospectURL: h.AdminURL + "/admin/oauth2/introspect"})
	return h, up
}

// connections lists the health view of upstream through the admin API.
func (e *env) connections(admin, upstreamID, state string) setup.ConnectionList {
	e.t.Helper()
	var list setup.ConnectionList
	q := url.Values{"upstream": {upstreamID}, "shared": {"true"}}
	if state != "" {
		q.Set("state", state)
	}
	e.apiJSON("GET", "/connections?"+q.Encode(), admin, "", &list)
	return list
}

func byUser(list setup.ConnectionList) map[string]setup.ConnectionView {
	out := map[string]setup.ConnectionView{}
	for _, c := range list.Connections {
		out[c.User] = c
	}
	return out
}

// secrets collects every token, client secret and ciphertext the gateway holds, decrypted from the
// store and raw from the database file, for the "never shown" checks.
func (e *env) secrets() []string {
	e.t.Helper()
	ctx := context.Background()
	var out []string
	add := func(s string) {
		if len(s) >= 12 {
			out = append(out, s)
		}
	}
	conns, err := e.store.ListConnections(ctx, store.ConnectionFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, c := range conns {
		full, err := e.store.GetConnection(ctx, c.ConnectionKey)
		if err != nil {
			e.t.Fatal(err)
		}
		add(full.AccessToken.Reveal())
		add(full.RefreshToken.Reveal())
		reg, err := e.store.GetClientRegistration(ctx, store.ClientRegistrationKey{Issuer: c.Issuer, UpstreamID: c.UpstreamID,
			RedirectURI: e.base + "/auth/connections/" + c.UpstreamID + "/callback"})
		if err == nil {
			add(reg.ClientSecret.Reveal())
		}
	}
	db, err := sql.Open("sqlite", "file:"+e.dbPath+"?mode=ro")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"SELECT access_token FROM connections", "SELECT refresh_token FROM connections",
		"SELECT client_secret FROM client_registrations", "SELECT verifier FROM pending_authorizations"} {
		rows, err := db.Query(q)
		if err != nil {
			e.t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				e.t.Fatal(err)
			}
			add(s)
		}
		rows.Close()
	}
	return out
}

// assertNoSecrets fetches every admin API answer and setup page and fails if any holds one of
// the secrets.
func (e *env) assertNoSecrets(admin string, c *client, secrets []string, upstreamIDs ...string) {
	e.t.Helper()
	if len(secrets) == 0 {
		e.t.Fatal("no secrets collected: the check would prove nothing")
	}
	var bodies = map[string]string{}
	apiPaths := []string{"/upstreams", "/connections?shared=true", "/audit?limit=500"}
	pagePaths := []string{"/setup", "/setup/connections", "/setup/audit", "/setup/tools"}
	for _, id := range upstreamIDs {
		apiPaths = append(apiPaths, "/upstreams/"+id, "/connections?shared=true&upstream="+id)
		pagePaths = append(pagePaths, "/setup/connections?upstream="+id, "/setup/audit?upstream="+id)
	}
	for _, p := range apiPaths {
		status, body := e.api("GET", p, admin, "")
		if status != 200 {
			e.t.Fatalf("GET %s: %d", p, status)
		}
		bodies["API "+p] = body
	}
	for _, p := range pagePaths {
		resp, body := c.get(e.base + p)
		if resp.StatusCode != 200 {
			e.t.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
		bodies["page "+p] = body
	}
	for where, body := range bodies {
		for _, s := range secrets {
			if strings.Contains(body, s) {
				e.t.Errorf("%s shows a token, secret or ciphertext (%d characters, starting %.6s…)", where, len(s), s)
			}
		}
	}
}

// TestHealthStatesWithRealHydra produces each health state for real — tokens that expired, a
// refresh that fails at Hydra because the gateway's client was deleted, a grant revoked at Hydra,
// and a revoke by an administrator — and checks that the API and the page show each with its error.
func TestHealthStatesWithRealHydra(t *testing.T) {
	h, up := startHydraUpstream(t, shortTTL)
	e := newEnv(t, envOptions{upstreams: []upstreamSpec{{id: "linear", displayName: "Linear", authMode: "user-oauth", url: up.URL, scopes: []string{"mcp", "offline_access"}}}})
	admin := e.key("ops", true)
	keys := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		keys[u] = e.key(u, false)
		e.connectUser(h, "linear", keys[u], u)
		if got := toolText(e.call("linear", keys[u], "whoami")); got != "subject="+u {
			t.Fatalf("%s after connecting: %q", u, got)
		}
	}
	secrets := e.secrets()

	// Fresh short-lived tokens are "expiring soon"; then they expire for real.
	for u, c := range byUser(e.connections(admin, "linear", "")) {
		if c.Health != connect.HealthExpiringSoon && c.Health != connect.HealthExpired {
			t.Errorf("%s just connected: %s", u, c.Health)
		}
	}
	gatewaytest.Eventually(t, 3*shortTTL, "every token to expire", func() bool {
		for _, c := range e.connections(admin, "linear", "").Connections {
			if c.Health != connect.HealthExpired {
				return false
			}
		}
		return true
	})

	// carol revokes her grant at the authorization server: her next call's refresh is invalid_grant.
	h.RevokeConsent(t, "carol")
	if d := connectRequired(e.call("linear", keys["carol"], "whoami")); d == nil || d["state"] != "reconsent_required" {
		t.Fatalf("carol after her grant was revoked at Hydra: want reconsent_required")
	}
	// The gateway's client is deleted at Hydra: bob's refresh fails with invalid_client.
	clientID := byUser(e.connections(admin, "linear", ""))["bob"].ClientID
	h.DeleteClient(t, clientID)
	if m := e.call("linear", keys["bob"], "whoami"); toolText(m) != "" {
		t.Fatalf("bob after the client was deleted: %v", m["_raw"])
	}
	// dave is revoked by the administrator.
	var rr setup.RevokeResponse
	e.apiJSON("POST", "/connections/revoke", admin, `{"upstreamId":"linear","subject":"apikey|dave"}`, &rr)
	if !rr.Revoked || rr.Subject != "apikey|dave" {
		t.Fatalf("revoke: %+v", rr)
	}

	got := byUser(e.connections(admin, "linear", ""))
	want := map[string]connect.Health{"alice": connect.HealthExpired, "bob": connect.HealthRefreshFailing,
		"carol": connect.HealthReconsentRequired, "dave": connect.HealthRevoked}
	for u, w := range want {
		c := got[u]
		if c.Health != w {
			t.Errorf("%s: health %s, want %s (%+v)", u, c.Health, w, c.LastError)
		}
		if w != connect.HealthExpired && (c.LastError == nil || c.LastError.Code == "" || c.LastError.Message == "") {
			t.Errorf("%s (%s) shows no last error", u, c.Health)
		}
	}
	if le := got["carol"].LastError; le == nil || le.Code != "refresh_grant_invalid" {
		t.Errorf("carol's last error: %+v", le)
	}
	if le := got["dave"].LastError; le == nil || le.Code != "revoked_by_admin" {
		t.Errorf("dave's last error: %+v", le)
	}
	if le := got["bob"].LastError; le == nil || le.Code != "client_rejected" {
		t.Errorf("bob's last error: %+v", le)
	}

	// "Which users' Linear connections are failing, and why?" — one page.
	failing := e.connections(admin, "linear", setup.StateFailing)
	if users := byUser(failing); len(users) != 3 || users["alice"].User != "" {
		t.Errorf("failing connections: %v", users)
	}
	counts := failing.Counts["linear"]
	if counts.Total != 4 || counts.Get("expired") != 1 || counts.Get("refresh_failing") != 1 || counts.Get("reconsent_required") != 1 || counts.Get("revoked") != 1 {
		t.Errorf("counts: %+v", counts)
	}
	c := newClient(t)
	if resp := e.login(c, admin); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	_, page := c.get(e.base + "/setup/connections?upstream=linear&state=failing")
	for _, s := range []string{"bob", "carol", "dave", "refresh_failing", "reconsent_required", "revoked", "refresh_grant_invalid", "revoked_by_admin", got["bob"].LastError.Code} {
		if !strings.Contains(page, s) {
			t.Errorf("the failing-connections page does not show %q", s)
		}
	}
	if strings.Contains(page, "apikey|alice") {
		t.Error("the failing-connections page lists alice, whose connection only expired")
	}

	// The audit log names the administrator and the connection revoked.
	var ap setup.AuditPage
	e.apiJSON("GET", "/audit?event=mcp_auth_upstream_connection_revoked&upstream=linear", admin, "", &ap)
	if len(ap.Events) != 1 || ap.Events[0].Actor != "apikey|ops" || ap.Events[0].Subject != "apikey|dave" || ap.Events[0].Details["connectedBy"] != "apikey|dave" {
		t.Errorf("revoke audit events: %+v", ap.Events)
	}
	// Paging: one event per page, newest first, following nextBefore to the end.
	seen, before := map[int64]bool{}, int64(0)
	for pages := 0; ; pages++ {
		path := "/audit?limit=1&upstream=linear"
		if before != 0 {
			path += fmt.Sprintf("&before=%d", before)
		}
		var p setup.AuditPage
		e.apiJSON("GET", path, admin, "", &p)
		if len(p.Events) > 1 || (len(p.Events) == 1 && seen[p.Events[0].ID]) || pages > 1000 {
			t.Fatalf("audit paging: %+v", p)
		}
		for _, ev := range p.Events {
			seen[ev.ID] = true
		}
		if p.NextBefore == 0 {
			break
		}
		before = p.NextBefore
	}
	var all setup.AuditPage
	e.apiJSON("GET", "/audit?limit=500&upstream=linear", admin, "", &all)
	if len(seen) != len(all.Events) || len(seen) < 10 {
		t.Errorf("paged %d events one by one, %d in one page", len(seen), len(all.Events))
	}

	// The same states in a real browser, screenshot.
	t.Run("page", func(t *testing.T) {
		browser.Require(t)
		b := browser.New(t)
		browserLogin(t, b, e, admin)
		b.Navigate(e.base + "/setup/connections?upstream=linear")
		rows := b.Text("main > div.card:last-of-type tbody")
		for u, w := range want {
			if !strings.Contains(rows, u) || !strings.Contains(rows, string(w)) {
				t.Errorf("the health page does not show %s as %s:\n%s", u, w, rows)
			}
		}
		for _, code := range []string{"client_rejected", "refresh_grant_invalid", "revoked_by_admin"} {
			if !strings.Contains(rows, code) {
				t.Errorf("the health page does not show the error %s", code)
			}
		}
		b.Screenshot("health")
	})

	// Check now through the API: fresh discovery, steps included. (The DCR registration was dropped
	// when Hydra rejected the deleted client; the next connect registers again.)
	var st setup.UpstreamStatus
	e.apiJSON("POST", "/upstreams/linear/check", admin, "", &st)
	if !st.Discovery.OK || !st.Discovery.PKCES256 || st.Discovery.Issuer != h.Issuer() || len(st.Discovery.Trace) < 2 ||
		!strings.HasPrefix(st.Discovery.RegistrationMethod, "dynamic client registration") {
		t.Errorf("check now: %+v", st.Discovery)
	}

	// Revoke all the failing ones; only alice's connection is left usable.
	var ra setup.RevokeAllResponse
	e.apiJSON("POST", "/connections/revoke-all", admin, `{"upstreamId":"linear","state":"failing"}`, &ra)
	if ra.Revoked != 2 || ra.Failed != 0 {
		t.Errorf("revoke-all failing: %+v", ra)
	}

	e.assertNoSecrets(admin, c, append(secrets, e.secrets()...), "linear")
	for _, s := range secrets {
		if strings.Contains(e.logs.String(), s) {
			t.Errorf("a token or ciphertext reached the log")
			break
		}
	}
}

// TestSharedOAuthRefreshAndRetry runs the refresh and retry cases of user connections against a
// shared-oauth upstream: nobody connected → admin_connect_required; the admin connects through the
// same consent flow; every user's call carries the shared grant; an expired token is refreshed once
// for all users at once; an access token the upstream no longer accepts is refreshed and the call
// replayed; a grant revoked at the AS turns into admin_connect_required again.
func TestSharedOAuthRefreshAndRetry(t *testing.T) {
	h, up := startHydraUpstream(t, shortTTL)
	e := newEnv(t, envOptions{upstreams: []upstreamSpec{{id: "tracker", displayName: "Team Tracker", authMode: "shared-oauth", url: up.URL, scopes: []string{"mcp", "offline_access"}}}})
	admin := e.key("ops", true)
	users := map[string]string{"alice": e.key("alice", false), "bob": e.key("bob", false)}

	// Nobody connected the shared slot.
	m := e.call("tracker", users["alice"], "whoami")
	d := connectRequired(m)
	if d == nil || d["state"] != "admin_connect_required" || d["authUrl"] != nil {
		t.Fatalf("before the admin connected: %v", m["_raw"])
	}
	if el, ok := d["elicitations"].([]any); !ok || len(el) != 0 {
		t.Errorf("elicitations %v, want []", d["elicitations"])
	}
	if msg := m["error"].(map[string]any)["message"]; msg != "An administrator must connect Team Tracker before this service is available." {
		t.Errorf("message %q", msg)
	}

	// The admin connects it from the setup UI (HTTP here; Chromium in the e2e test).
	c := newClient(t)
	e.login(c, admin)
	e.connectShared(h, c, "tracker", "team-bot")
	for u, k := range users {
		if got := toolText(e.call("tracker", k, "whoami")); got != "subject=team-bot" {
			t.Fatalf("%s through the shared grant: %q", u, got)
		}
	}
	shared := e.connections(admin, "tracker", "").Connections
	if len(shared) != 1 || shared[0].Mode != store.ModeShared || shared[0].ConnectedBy != "apikey|ops" {
		t.Fatalf("shared connection: %+v", shared)
	}

	// Expired: one refresh for everyone.
	gatewaytest.Eventually(t, 3*shortTTL, "the shared token to expire", func() bool {
		return e.connections(admin, "tracker", "").Connections[0].Health == connect.HealthExpired
	})
	h.ResetTokenCalls()
	var wg sync.WaitGroup
	texts := make(chan string, 20)
	for i := range 20 {
		wg.Go(func() {
			k := users["alice"]
			if i%2 == 1 {
				k = users["bob"]
			}
			texts <- toolText(e.call("tracker", k, "whoami"))
		})
	}
	wg.Wait()
	close(texts)
	for s := range texts {
		if s != "subject=team-bot" {
			t.Fatalf("a call after expiry: %q", s)
		}
	}
	if n := h.TokenCalls("refresh_token"); n != 1 {
		t.Errorf("Hydra saw %d refreshes for 20 concurrent calls of two users, want 1", n)
	}

	// The upstream stops accepting the stored access token: its 401 makes the gateway refresh and
	// replay once; the user sees the answer.
	e.spoilAccessToken(e.sharedConnection("tracker"))
	h.ResetTokenCalls()
	if got := toolText(e.call("tracker", users["bob"], "whoami")); got != "subject=team-bot" {
		t.Fatalf("after the access token was revoked: %q %s", got, e.call("tracker", users["bob"], "whoami")["_raw"])
	}
	if n := h.TokenCalls("refresh_token"); n != 1 {
		t.Errorf("Hydra saw %d refreshes for the retried call, want 1", n)
	}

	// The grant is revoked at the AS: after expiry the refresh is invalid_grant, and users are
	// told an administrator must act.
	h.RevokeConsent(t, "team-bot")
	gatewaytest.Eventually(t, 3*shortTTL, "the shared token to expire", func() bool {
		return e.connections(admin, "tracker", "").Connections[0].Health == connect.HealthExpired
	})
	if d := connectRequired(e.call("tracker", users["alice"], "whoami")); d == nil || d["state"] != "admin_connect_required" {
		t.Fatalf("after the shared grant died: want admin_connect_required")
	}
	sc := e.connections(admin, "tracker", "").Connections[0]
	if sc.Health != connect.HealthReconsentRequired || sc.LastError == nil || sc.LastError.Code != "refresh_grant_invalid" {
		t.Errorf("shared connection after the grant died: %s %+v", sc.Health, sc.LastError)
	}

	// Audit: the user who hit it and the shared credential are both named.
	var ap setup.AuditPage
	e.apiJSON("GET", "/audit?event=mcp_auth_connect_required&upstream=tracker", admin, "", &ap)
	if len(ap.Events) == 0 || ap.Events[0].Subject != subject.Shared.String() || ap.Events[0].Actor != "apikey|alice" || ap.Events[0].ReasonCode != "admin_connect_required" {
		t.Errorf("connect-required audit: %+v", ap.Events)
	}
	e.apiJSON("GET", "/audit?event=mcp_auth_upstream_connect_started&upstream=tracker", admin, "", &ap)
	if len(ap.Events) != 1 || ap.Events[0].Actor != "apikey|ops" || ap.Events[0].Subject != subject.Shared.String() {
		t.Errorf("connect-started audit: %+v", ap.Events)
	}
}

// connectShared presses "Connect" for a shared upstream as the signed-in admin c and completes the
// flow at Hydra as hydraSubject.
func (e *env) connectShared(h *hydra.Server, c *client, id, hydraSubject string) {
	e.t.Helper()
	_, page := c.get(e.base + "/setup")
	resp, body := c.post(e.base+"/setup/upstreams/"+id+"/connect", url.Values{"csrf": {csrfOf(e.t, page)}}, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "/auth/connections/"+id+"/connect?browserTicket=") {
		e.t.Fatalf("connect: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	authURL := resp.Header.Get("Location")
	// The shared connection's consent page is bound to the setup UI's administrator session.
	resp, consent := c.get(authURL)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("the shared connection's consent page, signed in to the setup UI as an administrator: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if !strings.Contains(consent, "the shared connection") {
		e.t.Errorf("the consent page does not say it connects the shared connection")
	}
	form := url.Values{"decision": {"approve"}}
	for _, m := range hiddenRe.FindAllStringSubmatch(consent, -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	resp, body = c.post(strings.SplitN(authURL, "?", 2)[0], form, nil)
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("approve: %d %s", resp.StatusCode, body)
	}
	callback := h.AuthorizeHeadless(e.t, resp.Header.Get("Location"), hydraSubject)
	if resp, page := c.get(callback.String()); resp.StatusCode != 200 {
		e.t.Fatalf("callback: %d %s", resp.StatusCode, page)
	}
}

func (e *env) sharedConnection(id string) *store.Connection {
	e.t.Helper()
	c, err := e.store.GetConnection(context.Background(), store.ConnectionKey{UpstreamID: id, Mode: store.ModeShared, Subject: subject.Shared.String()})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// spoilAccessToken replaces the stored access token of conn with one the upstream does not
// accept (valid for another hour, so the gateway sends it): what the gateway sees when an AS
// revokes an access token alone, or another replica's refresh made it stale. (Hydra cannot revoke
// an access token without its refresh token.)
func (e *env) spoilAccessToken(conn *store.Connection) {
	e.t.Helper()
	conn.AccessToken = "spoiled-access-token"
	conn.Expiry = time.Now().Add(time.Hour)
	if err := e.store.PutConnection(context.Background(), conn); err != nil {
		e.t.Fatal(err)
	}
	// This process's manager forgets its in-memory copy, as another replica's would be stale.
	e.manager.Invalidate(conn.ConnectionKey)
}
