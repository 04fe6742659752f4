package setup_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/policy/jwtauth"
	"github.com/mcpgate/mcpgate/internal/setup"
	"github.com/mcpgate/mcpgate/internal/store"
)

// brokenUpstream answers 404 to everything: discovery fails with prm_not_found. A real server
// (not a fake of ours): what a wrong rewritePattern looks like.
func brokenUpstream(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}

func newBrokenEnv(t *testing.T, publicURL string) *env {
	return newEnv(t, envOptions{publicURL: publicURL, upstreams: []upstreamSpec{
		{id: "linear", displayName: "Linear", authMode: "user-oauth", url: brokenUpstream(t), scopes: []string{"read"}},
	}})
}

func TestAdminAPIRefusesNonAdmins(t *testing.T) {
	e := newBrokenEnv(t, "")
	user := e.key("alice", false)
	admin := e.key("ops", true)

	if status, body := e.api("GET", "/upstreams", "", ""); status != http.StatusUnauthorized || !strings.Contains(body, "missing_token") {
		t.Errorf("no credential: %d %s", status, body)
	}
	if status, body := e.api("GET", "/upstreams", user, ""); status != http.StatusForbidden || !strings.Contains(body, "not_admin") {
		t.Errorf("non-admin key: %d %s", status, body)
	}
	if status, body := e.api("GET", "/upstreams", "mcpg_not-a-key", ""); status != http.StatusUnauthorized || !strings.Contains(body, "invalid_token") {
		t.Errorf("unknown key: %d %s", status, body)
	}

	var list struct{ Upstreams []setup.UpstreamStatus }
	e.apiJSON("GET", "/upstreams", admin, "", &list)
	if len(list.Upstreams) != 1 {
		t.Fatalf("upstreams: %+v", list)
	}
	u := list.Upstreams[0]
	if u.ID != "linear" || u.AuthMode != "user-oauth" || u.Discovery.OK || u.Discovery.Error == nil ||
		u.Discovery.Error.Code != "prm_not_found" || u.Discovery.Error.Bucket != "upstream OAuth setup" || len(u.Discovery.Trace) == 0 {
		t.Fatalf("broken upstream status: %+v", u)
	}
	for _, s := range u.Discovery.Trace {
		if s.Outcome == "" || s.URL == "" {
			t.Errorf("trace step without outcome or URL: %+v", s)
		}
	}

	// A revoked admin key stops working at once.
	keys, _ := e.store.ListAPIKeys(context.Background())
	for _, k := range keys {
		if k.Consumer == "ops" {
			if err := e.store.RevokeAPIKey(context.Background(), k.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if status, _ := e.api("GET", "/upstreams", admin, ""); status != http.StatusUnauthorized {
		t.Errorf("revoked admin key: %d", status)
	}
}

func TestLoginSessionCookieAndCSRF(t *testing.T) {
	e := newBrokenEnv(t, "")
	admin := e.key("ops", true)
	user := e.key("alice", false)

	// Not signed in: pages redirect to the login form, which has exactly one password field.
	c := newClient(t)
	if resp, _ := c.get(e.base + "/setup"); resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), "/setup/login") {
		t.Fatalf("setup without session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, page := c.get(e.base + "/setup/login")
	if resp.StatusCode != 200 || strings.Count(page, `<input`) != 2 || strings.Count(page, `<input id="key" type="password"`) != 1 || !strings.Contains(page, `method="post"`) {
		t.Fatalf("login page: %d %s", resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("login CSP %q", csp)
	}

	// A non-admin key is refused and gets no session.
	if resp := e.login(c, user); resp.StatusCode != http.StatusForbidden || sessionCookie(resp) != nil {
		t.Fatalf("non-admin login: %d", resp.StatusCode)
	}
	// A login post without the CSRF token is refused.
	if resp, _ := c.post(e.base+"/setup/login", url.Values{"key": {admin}}, nil); resp.StatusCode != http.StatusForbidden || sessionCookie(resp) != nil {
		t.Fatalf("login without CSRF: %d", resp.StatusCode)
	}

	resp = e.login(c, admin)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin login: %d", resp.StatusCode)
	}
	ck := sessionCookie(resp)
	if ck == nil {
		t.Fatal("no session cookie")
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.MaxAge != int((8*time.Hour)/time.Second) ||
		ck.Name != "mcpgate-admin" || ck.Path != "/__mcpgate/" {
		t.Errorf("session cookie on http: %+v", ck)
	}
	if strings.Contains(ck.Value, admin) || strings.Contains(ck.Value, "ops") {
		t.Error("the session cookie carries the key or the consumer in clear")
	}

	resp, page = c.get(e.base + "/setup")
	if resp.StatusCode != 200 || !strings.Contains(page, "Linear") || !strings.Contains(page, "prm_not_found") {
		t.Fatalf("upstreams page: %d %s", resp.StatusCode, page)
	}
	token := csrfOf(t, page)

	// Every state-changing form needs the session's CSRF token and the gateway's own origin.
	check := e.base + "/setup/upstreams/linear/check"
	if resp, _ := c.post(check, url.Values{}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("check without CSRF token: %d", resp.StatusCode)
	}
	if resp, _ := c.post(check, url.Values{"csrf": {"AAAA" + token[4:]}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("check with a wrong CSRF token: %d", resp.StatusCode)
	}
	if resp, _ := c.post(check, url.Values{"csrf": {token}}, http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin check: %d", resp.StatusCode)
	}
	// The right token without a same-origin signal is refused too: "Origin: null" alone, or no
	// Origin and no Sec-Fetch-Site at all.
	if resp, _ := c.post(check, url.Values{"csrf": {token}}, http.Header{"Sec-Fetch-Site": nil}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("check with Origin: null and no Sec-Fetch-Site: %d", resp.StatusCode)
	}
	if resp, _ := c.post(check, url.Values{"csrf": {token}}, http.Header{"Origin": nil, "Sec-Fetch-Site": nil}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("check with no origin signal: %d", resp.StatusCode)
	}
	for _, path := range []string{"/setup/connections/revoke", "/setup/connections/revoke-all", "/setup/upstreams/linear/connect", "/setup/logout"} {
		if resp, _ := c.post(e.base+path, url.Values{"upstream": {"linear"}, "subject": {"apikey|alice"}}, nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s without CSRF token: %d", path, resp.StatusCode)
		}
	}
	// Another admin's token does not work for this session.
	other := newClient(t)
	e.login(other, admin)
	_, otherPage := other.get(e.base + "/setup")
	if resp, _ := c.post(check, url.Values{"csrf": {csrfOf(t, otherPage)}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("check with another session's token: %d", resp.StatusCode)
	}

	resp, _ = c.post(check, url.Values{"csrf": {token}}, http.Header{"Origin": {e.gw.URL}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "checked=linear") {
		t.Fatalf("check now: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Sign out ends the session.
	resp, _ = c.post(e.base+"/setup/logout", url.Values{"csrf": {token}}, nil)
	if ck := sessionCookie(resp); resp.StatusCode != http.StatusSeeOther || ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("logout: %d %+v", resp.StatusCode, ck)
	}
	if resp, _ := c.get(e.base + "/setup"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after logout: %d", resp.StatusCode)
	}
}

func TestSessionCookieSecureBehindHTTPS(t *testing.T) {
	e := newBrokenEnv(t, "https://gateway.example.test")
	admin := e.key("ops", true)
	// The public URL is https (TLS ends at a proxy): the cookies are Secure and __Host- prefixed.
	// A cookie jar would not send Secure cookies over the test's plain http, so they are carried
	// by hand.
	pageResp, page := fetch(t, e.base+"/setup/login", nil)
	var nonce *http.Cookie
	for _, ck := range pageResp.Cookies() {
		if ck.Name == "__Host-mcpgate-admin-login" {
			nonce = ck
		}
	}
	if nonce == nil || !nonce.Secure || nonce.Path != "/" || nonce.SameSite != http.SameSiteStrictMode || !nonce.HttpOnly {
		t.Fatalf("login nonce cookie behind https: %+v", nonce)
	}
	req, _ := http.NewRequest("POST", e.base+"/setup/login", strings.NewReader(url.Values{"csrf": {csrfOf(t, page)}, "key": {admin}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://gateway.example.test")
	req.AddCookie(&http.Cookie{Name: nonce.Name, Value: nonce.Value})
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ck := sessionCookie(resp)
	if resp.StatusCode != http.StatusSeeOther || ck == nil || ck.Name != "__Host-mcpgate-admin" || !ck.Secure || !ck.HttpOnly ||
		ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.MaxAge != 8*3600 {
		t.Fatalf("session cookie behind https: %d %+v", resp.StatusCode, ck)
	}
	if resp, page := fetch(t, e.base+"/setup", []*http.Cookie{{Name: ck.Name, Value: ck.Value}}); resp.StatusCode != 200 || !strings.Contains(page, "Upstreams") {
		t.Fatalf("setup with the https session: %d", resp.StatusCode)
	}
}

func fetch(t *testing.T, u string, cookies []*http.Cookie) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == "mcpgate-admin" || c.Name == "__Host-mcpgate-admin" {
			return c
		}
	}
	return nil
}

// TestFailedLoginsAreSlowedDown: after MaxFailedLogins unknown credentials from one address, further
// unknown credentials from it are answered 429 with Retry-After (form and API alike), while a
// valid admin credential is still accepted: behind a proxy every admin may share one address, and
// whoever sprays wrong keys must not lock them out.
func TestFailedLoginsAreSlowedDown(t *testing.T) {
	e := newBrokenEnv(t, "")
	admin := e.key("ops", true)
	c := newClient(t)
	for i := range setup.MaxFailedLogins {
		if resp := e.login(c, "mcpg_wrong-"+strconv.Itoa(i)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failed login %d: %d", i, resp.StatusCode)
		}
	}
	// Now the next unknown key waits: the address is slowed down, with Retry-After.
	resp := e.login(c, "mcpg_wrong-again")
	if resp.StatusCode != http.StatusTooManyRequests || sessionCookie(resp) != nil {
		t.Fatalf("unknown key after %d failures: %d", setup.MaxFailedLogins, resp.StatusCode)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > int(setup.FailedLoginWindow/time.Second) {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	// The admin API counts against the same address.
	if status, _ := e.api("GET", "/upstreams", "mcpg_wrong-api", ""); status != http.StatusTooManyRequests {
		t.Errorf("unknown key on the API while slowed down: %d", status)
	}
	// The right key is not locked out, on the API or the form.
	if status, body := e.api("GET", "/upstreams", admin, ""); status != http.StatusOK {
		t.Errorf("admin key on the API while the address is slowed down: %d %s", status, body)
	}
	resp = e.login(c, admin)
	if resp.StatusCode != http.StatusSeeOther || sessionCookie(resp) == nil {
		t.Fatalf("admin login while the address is slowed down: %d", resp.StatusCode)
	}
}

func TestAPIValidatesQueries(t *testing.T) {
	e := newBrokenEnv(t, "")
	admin := e.key("ops", true)
	for _, tc := range []struct {
		name, method, path, body, want string
		status                         int
	}{
		{"bad state", "GET", "/connections?state=sleepy", "", "state must be one of", 400},
		{"unknown upstream", "GET", "/connections?upstream=nope", "", "unknown_upstream", 404},
		{"bad since", "GET", "/audit?since=yesterday", "", "since: not a time", 400},
		{"bad limit", "GET", "/audit?limit=100000", "", "limit: must be 1 to", 400},
		{"revoke without subject", "POST", "/connections/revoke", `{"upstreamId":"linear"}`, "subject is required", 400},
		{"revoke unknown field", "POST", "/connections/revoke", `{"upstreamId":"linear","subject":"a","token":"x"}`, "unknown field", 400},
		{"revoke missing", "POST", "/connections/revoke", `{"upstreamId":"linear","subject":"apikey|nobody"}`, "connection_not_found", 404},
		{"revoke-all without upstream", "POST", "/connections/revoke-all", `{}`, "upstream is required", 400},
		{"check unknown", "POST", "/upstreams/nope/check", "", "unknown_upstream", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.api(tc.method, tc.path, admin, tc.body)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("%d %s", status, body)
			}
			var p map[string]any
			if json.Unmarshal([]byte(body), &p) != nil || p["status"] != float64(tc.status) {
				t.Errorf("not a problem document: %s", body)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	active := store.Connection{Status: store.StatusActive, HasAccessToken: true, HasRefreshToken: true, Expiry: now.Add(time.Hour)}
	with := func(f func(c *store.Connection)) store.Connection { c := active; f(&c); return c }
	for _, tc := range []struct {
		name string
		c    store.Connection
		want connect.Health
	}{
		{"active", active, connect.HealthActive},
		{"no expiry", with(func(c *store.Connection) { c.Expiry = time.Time{} }), connect.HealthActive},
		{"expiring soon", with(func(c *store.Connection) { c.Expiry = now.Add(5 * time.Minute) }), connect.HealthExpiringSoon},
		{"expired", with(func(c *store.Connection) { c.Expiry = now.Add(-time.Second) }), connect.HealthExpired},
		{"refresh failing", with(func(c *store.Connection) { c.LastError = &store.LastError{Code: "client_rejected"} }), connect.HealthRefreshFailing},
		{"reconsent", with(func(c *store.Connection) { c.Status = store.StatusReconsentRequired; c.HasAccessToken = false }), connect.HealthReconsentRequired},
		{"revoked", with(func(c *store.Connection) {
			c.Status = store.StatusRevoked
			c.LastError = &store.LastError{Code: "revoked_by_admin"}
		}), connect.HealthRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := connect.Classify(&tc.c, now); got != tc.want {
				t.Errorf("Classify = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestJWTAdmins: where a JWT policy is configured, a JWT for the MCPGATE_ADMIN_AUDIENCE audience
// carrying the MCPGATE_ADMIN_CLAIM claim is an admin (API and login form); one without the claim is
// refused like a non-admin key, and so is one with the claim issued for an MCP route's audience
// (the tokens MCP clients hold are never admin credentials).
func TestJWTAdmins(t *testing.T) {
	const adminAudience = "https://gateway.example.test/admin"
	t.Setenv(jwtauth.AdminClaimEnv, "roles=mcpgate-admin")
	t.Setenv(jwtauth.AdminAudienceEnv, adminAudience)
	secret := "0123456789abcdef0123456789abcdef-setup-test"
	e := newEnv(t, envOptions{jwtSecret: secret, upstreams: []upstreamSpec{{id: "linear", displayName: "Linear", authMode: "user-oauth", url: brokenUpstream(t)}}})
	aud := adminAudience
	mint := func(sub string, roles ...string) string {
		claims := map[string]any{"iss": jwtIssuer, "aud": aud, "sub": sub,
			"exp": time.Now().Add(time.Hour).Unix(), "roles": roles}
		payload, _ := json.Marshal(claims)
		tok, err := jws.Sign(payload, jws.WithKey(jwa.HS256(), []byte(secret)))
		if err != nil {
			t.Fatal(err)
		}
		return string(tok)
	}
	adminJWT, userJWT := mint("ops@example.com", "mcpgate-admin"), mint("alice@example.com", "reader")

	// Every MCP route is listed, with or without a token-exchange upstream.
	var routes struct{ Routes []setup.RouteView }
	e.apiJSON("GET", "/routes", adminJWT, "", &routes)
	if len(routes.Routes) != 2 || routes.Routes[0].Path != "/mcp/jwt" && routes.Routes[1].Path != "/mcp/jwt" {
		t.Fatalf("routes: %+v", routes.Routes)
	}
	for _, r := range routes.Routes {
		switch r.Path {
		case "/mcp/jwt":
			if r.AuthMode != "none" || r.UpstreamID != "" || len(r.Policies) != 1 || r.Policies[0] != "jwt" {
				t.Errorf("public route: %+v", r)
			}
		case "/mcp/linear":
			if r.AuthMode != "user-oauth" || r.UpstreamID != "linear" || r.OperationID != "linear-mcp" || r.UpstreamURL == "" {
				t.Errorf("linear route: %+v", r)
			}
		}
	}

	var list struct{ Upstreams []setup.UpstreamStatus }
	e.apiJSON("GET", "/upstreams", adminJWT, "", &list)
	if len(list.Upstreams) != 1 {
		t.Fatalf("upstreams: %+v", list)
	}
	if status, body := e.api("GET", "/upstreams", userJWT, ""); status != http.StatusForbidden || !strings.Contains(body, "not_admin") {
		t.Errorf("JWT without the admin claim: %d %s", status, body)
	}
	aud = "https://gateway.example.test/mcp/jwt"
	routeJWT := mint("ops@example.com", "mcpgate-admin")
	aud = adminAudience
	if status, body := e.api("GET", "/upstreams", routeJWT, ""); status != http.StatusForbidden || !strings.Contains(body, "not_admin") {
		t.Errorf("JWT with the admin claim for the MCP route's audience: %d %s", status, body)
	}
	forged := mint("ops@example.com", "mcpgate-admin")
	forged = forged[:len(forged)-4] + "AAAA"
	if status, _ := e.api("GET", "/upstreams", forged, ""); status != http.StatusUnauthorized {
		t.Errorf("JWT with a bad signature: %d", status)
	}

	c := newClient(t)
	if resp := e.login(c, userJWT); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login with a non-admin JWT: %d", resp.StatusCode)
	}
	resp := e.login(c, adminJWT)
	ck := sessionCookie(resp)
	if resp.StatusCode != http.StatusSeeOther || ck == nil || ck.MaxAge > 3600 || ck.MaxAge < 3500 {
		t.Fatalf("login with an admin JWT: %d %+v (the session must end with the token)", resp.StatusCode, ck)
	}
	if _, page := c.get(e.base + "/setup"); !strings.Contains(page, "Sign out ops@example.com") {
		t.Errorf("the page does not name the JWT admin")
	}
	// The audit log names the admin by the namespaced subject.
	var ap setup.AuditPage
	e.apiJSON("GET", "/audit?event="+setup.EventAdminLogin, adminJWT, "", &ap)
	if len(ap.Events) != 1 || ap.Events[0].Actor != "jwt:"+jwtIssuer+"|ops@example.com" {
		t.Errorf("login audit: %+v", ap.Events)
	}
}
