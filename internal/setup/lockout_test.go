package setup_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/mcpgate/mcpgate/internal/policy/jwtauth"
	"github.com/mcpgate/mcpgate/internal/setup"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// TestValidAdminIsNeverLockedOut: failures from an address throttle unknown credentials only. After
// many failed sign-ins from the address every admin shares (one proxy, one NAT), a valid admin key
// still signs in, on the form and on the API; unknown keys get 429 with Retry-After; a known key
// that is no admin's gets its 403, not 429.
func TestValidAdminIsNeverLockedOut(t *testing.T) {
	e := newBrokenEnv(t, "")
	admin := e.key("ops", true)
	user := e.key("alice", false)
	c := newClient(t)

	for i := range 3 * setup.MaxFailedLogins {
		want := http.StatusUnauthorized
		if i >= setup.MaxFailedLogins {
			want = http.StatusTooManyRequests
		}
		if resp := e.login(c, "mcpg_wrong-"+strconv.Itoa(i)); resp.StatusCode != want {
			t.Fatalf("failed login %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
	for i := range 3 * setup.MaxFailedLogins {
		if status, _ := e.api("GET", "/upstreams", "mcpg_wrong-api-"+strconv.Itoa(i), ""); status != http.StatusTooManyRequests {
			t.Fatalf("unknown key on the API from the throttled address: %d, want 429", status)
		}
	}
	resp := e.login(c, "mcpg_wrong-again")
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != http.StatusTooManyRequests || err != nil || ra < 1 || ra > int(setup.FailedLoginWindow/time.Second) {
		t.Errorf("throttled login: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if status, body := e.api("GET", "/upstreams", user, ""); status != http.StatusForbidden || !strings.Contains(body, "not_admin") {
		t.Errorf("non-admin key from the throttled address: %d %s, want 403 not_admin", status, body)
	}

	// The admin key works on the API, from the same address …
	var list struct{ Upstreams []setup.UpstreamStatus }
	e.apiJSON("GET", "/upstreams", admin, "", &list)
	// … and on the sign-in form, after yet more failures.
	for i := range setup.MaxFailedLogins + 1 {
		e.login(c, "mcpg_wrong-more-"+strconv.Itoa(i))
	}
	resp = e.login(c, admin)
	if resp.StatusCode != http.StatusSeeOther || sessionCookie(resp) == nil {
		t.Fatalf("admin login after many failures: %d, want 303 with a session", resp.StatusCode)
	}
	if resp, page := c.get(e.base + "/setup"); resp.StatusCode != http.StatusOK || !strings.Contains(page, "Upstreams") {
		t.Fatalf("setup after signing in: %d", resp.StatusCode)
	}
}

// TestAdminKeyIsNotAnMCPCredential: privilege separation end to end. The admin key opens the admin
// API and nothing else: an MCP route refuses it with admin_key_on_mcp_route.
func TestAdminKeyIsNotAnMCPCredential(t *testing.T) {
	e := newBrokenEnv(t, "")
	admin := e.key("ops", true)
	user := e.key("alice", false)

	m := e.call("linear", admin, "whoami")
	if m["_status"] != float64(http.StatusUnauthorized) || m["reasonCode"] != "admin_key_on_mcp_route" {
		t.Fatalf("admin key on an MCP route: %v", m["_raw"])
	}
	if m := e.call("linear", user, "whoami"); m["_status"] == float64(http.StatusUnauthorized) {
		t.Fatalf("ordinary key refused on the MCP route: %v", m["_raw"])
	}
	var list struct{ Upstreams []setup.UpstreamStatus }
	e.apiJSON("GET", "/upstreams", admin, "", &list)
	if status, _ := e.api("GET", "/upstreams", user, ""); status != http.StatusForbidden {
		t.Errorf("ordinary key on the admin API: %d", status)
	}
}

const adminAudience = "https://admin.example.test/mcpgate"

// mintJWT signs an HS256 token of jwtIssuer for aud with roles.
func mintJWT(t *testing.T, secret string, aud any, roles ...string) string {
	t.Helper()
	claims := map[string]any{"iss": jwtIssuer, "aud": aud, "sub": "ops@example.com", "exp": time.Now().Add(time.Hour).Unix(), "roles": roles}
	payload, _ := json.Marshal(claims)
	tok, err := jws.Sign(payload, jws.WithKey(jwa.HS256(), []byte(secret)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// TestJWTAdminNeedsTheAdminAudience: a JWT is an admin credential only when its aud contains
// MCPGATE_ADMIN_AUDIENCE and it carries MCPGATE_ADMIN_CLAIM. The token an MCP client holds for a
// route (aud: the route) is refused even with the claim; the admin token is refused on the route.
func TestJWTAdminNeedsTheAdminAudience(t *testing.T) {
	t.Setenv(jwtauth.AdminClaimEnv, "roles=mcpgate-admin")
	t.Setenv(jwtauth.AdminAudienceEnv, adminAudience)
	secret := "0123456789abcdef0123456789abcdef-setup-test"
	e := newEnv(t, envOptions{jwtSecret: secret})
	routeAud := "https://gateway.example.test/mcp/jwt"

	routeToken := mintJWT(t, secret, routeAud, "mcpgate-admin")
	if status, body := e.api("GET", "/routes", routeToken, ""); status != http.StatusForbidden || !strings.Contains(body, "not_admin") ||
		!strings.Contains(body, jwtauth.AdminAudienceEnv) {
		t.Errorf("route token with the admin claim: %d %s, want 403 not_admin naming %s", status, body, jwtauth.AdminAudienceEnv)
	}
	if status, body := e.api("GET", "/routes", mintJWT(t, secret, adminAudience, "reader"), ""); status != http.StatusForbidden || !strings.Contains(body, "not_admin") {
		t.Errorf("admin audience without the claim: %d %s", status, body)
	}
	adminToken := mintJWT(t, secret, adminAudience, "mcpgate-admin")
	var routes struct{ Routes []setup.RouteView }
	e.apiJSON("GET", "/routes", adminToken, "", &routes)
	e.apiJSON("GET", "/routes", mintJWT(t, secret, []string{routeAud, adminAudience}, "mcpgate-admin"), "", &routes)

	c := newClient(t)
	if _, page := c.get(e.base + "/setup/login"); !strings.Contains(page, "or JWT") {
		t.Error("the login page does not offer JWTs although admin JWTs are configured")
	}
	if resp := e.login(c, routeToken); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login with a route token: %d", resp.StatusCode)
	}
	if resp := e.login(c, adminToken); resp.StatusCode != http.StatusSeeOther || sessionCookie(resp) == nil {
		t.Fatalf("login with the admin token: %d", resp.StatusCode)
	}

	// The admin token is no credential for the MCP route (its audience is the route's).
	req, _ := http.NewRequest("POST", e.gw.URL+"/mcp/jwt", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("admin token on the MCP route: %d, want 401", resp.StatusCode)
	}
}

// TestNoAdminAudienceNoJWTAdmin: without MCPGATE_ADMIN_AUDIENCE no JWT signs in, whatever its
// claims and audience, and the login page does not offer JWTs.
func TestNoAdminAudienceNoJWTAdmin(t *testing.T) {
	t.Setenv(jwtauth.AdminClaimEnv, "roles=mcpgate-admin")
	t.Setenv(jwtauth.AdminAudienceEnv, "")
	secret := "0123456789abcdef0123456789abcdef-setup-test"
	e := newEnv(t, envOptions{jwtSecret: secret})
	for _, aud := range []string{"https://gateway.example.test/mcp/jwt", adminAudience} {
		if status, body := e.api("GET", "/routes", mintJWT(t, secret, aud, "mcpgate-admin"), ""); status != http.StatusForbidden ||
			!strings.Contains(body, jwtauth.AdminAudienceEnv+" is not set") {
			t.Errorf("aud %s: %d %s", aud, status, body)
		}
	}
	c := newClient(t)
	if _, page := c.get(e.base + "/setup/login"); strings.Contains(page, "or JWT") {
		t.Error("the login page offers JWTs, which cannot sign in")
	}
}

// TestAdminRefusalsAreAggregated: failed admin sign-ins are audited as aggregates (one row per
// reason, address and minute with a count), written by the background writer, not a row per try.
func TestAdminRefusalsAreAggregated(t *testing.T) {
	dir := gatewaytest.Project(t, map[string]string{"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{
		"/mcp/demo":{"post":{"operationId":"demo","x-zuplo-route":{"corsPolicy":"none",
			"handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"` + brokenUpstream(t) + `"}}}}}}}`})
	g := gatewaytest.New(t, gatewaytest.Options{Dir: dir, Setup: true})
	for i := range 50 {
		req, _ := http.NewRequest("GET", g.Base+"/admin/api/routes", nil)
		req.Header.Set("Authorization", "Bearer mcpg_unknown-"+strconv.Itoa(i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	g.Audit.Flush(t.Context())
	evs, err := g.Store.QueryAudit(t.Context(), store.AuditQuery{Event: setup.EventAdminLoginRefused})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, ev := range evs {
		var d struct {
			Count   int    `json:"count"`
			Address string `json:"address"`
		}
		_ = json.Unmarshal(ev.Details, &d)
		if d.Address != "127.0.0.1" {
			t.Errorf("row address %q", d.Address)
		}
		got[ev.ReasonCode] += d.Count
	}
	want := map[string]int{"invalid_token": setup.MaxFailedLogins, "too_many_failed_logins": 50 - setup.MaxFailedLogins}
	if len(evs) > 4 || got["invalid_token"] != want["invalid_token"] || got["too_many_failed_logins"] != want["too_many_failed_logins"] {
		t.Errorf("%d rows with counts %v, want at most 4 rows with %v", len(evs), got, want)
	}
}
