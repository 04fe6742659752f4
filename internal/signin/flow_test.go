package signin_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/demo"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// clock is a settable clock for the sign-in server.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a gateway with two sign-in routes (dev login) in front of the demo upstream, which sits
// behind its own OAuth authorization server: /mcp/demo (user-oauth token exchange) and /mcp/other
// (sign-in only, to check tokens do not cross routes).
type env struct {
	t     *testing.T
	gw    *gatewaytest.Gateway
	clock *clock
	// public is the gateway's public URL when it differs from gw.URL (replicas behind one name).
	public string
}

// publicURL is where clients see the gateway.
func (e *env) publicURL() string {
	if e.public != "" {
		return e.public
	}
	return e.gw.URL
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	up, err := demo.Start(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	dir := gatewaytest.Project(t, map[string]string{
		"config/policies.json": `{"policies":[
		 {"name":"signin","policyType":"mcp-oauth-inbound","handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpOAuthInboundPolicy","options":{"browserLogin":{"devLogin":true}}}},
		 {"name":"mcp-token-exchange-demo","policyType":"mcp-token-exchange-inbound","handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpTokenExchangeInboundPolicy",
		   "options":{"displayName":"Demo upstream","authMode":"user-oauth"}}}]}`,
		"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{
		 "/mcp/demo":{"get,post":{"operationId":"demo-mcp","summary":"Demo","x-zuplo-route":{"corsPolicy":"none",
		   "handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"` + up + `/mcp-oauth"}},
		   "policies":{"inbound":["signin","mcp-token-exchange-demo"]}}}},
		 "/mcp/other":{"get,post":{"operationId":"other-mcp","summary":"Other","x-zuplo-route":{"corsPolicy":"none",
		   "handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"` + up + `/mcp"}},
		   "policies":{"inbound":["signin"]}}}}}}`,
	})
	c := &clock{t: time.Now()}
	gw := gatewaytest.New(t, gatewaytest.Options{Dir: dir, Now: c.now})
	return &env{t: t, gw: gw, clock: c}
}

// browser is a cookie jar that does not follow redirects by itself.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// via makes the browser reach host (the gateway's public name) at addr (a replica's listener).
func (b *browser) via(host, addr string) *browser {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		if h, _, _ := net.SplitHostPort(a); h == host {
			a = addr
		}
		return dial(ctx, network, a)
	}
	b.c.Transport = tr
	return b
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) get(u string) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

// post submits a form as Chromium submits the gateway's own forms.
func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "null")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

// follow GETs redirects until a page or a redirect off the gateway and demo hosts.
func (b *browser) follow(resp *http.Response, body string, stopAt string) (*http.Response, string) {
	for i := 0; i < 10 && resp.StatusCode/100 == 3; i++ {
		loc := resp.Header.Get("Location")
		if stopAt != "" && strings.HasPrefix(loc, stopAt) {
			return resp, body
		}
		u, _ := resp.Request.URL.Parse(loc)
		resp, body = b.get(u.String())
	}
	return resp, body
}

var hiddenField = regexp.MustCompile(`name="([a-zA-Z_]+)" value="([^"]*)"`)

func formFields(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], htmlUnescape(m[2]))
	}
	return v
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

var connectLink = regexp.MustCompile(`href="([^"]*/auth/connections/[^"]*)"`)

// client is an MCP client's OAuth side: a DCR registration and PKCE.
type client struct {
	id, redirect, verifier, challenge string
}

func (e *env) register(t *testing.T, redirect string) client {
	t.Helper()
	resp, err := http.Post(e.gw.Base+"/oauth/register", "application/json",
		strings.NewReader(`{"client_name":"Test client","redirect_uris":["`+redirect+`"],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reg map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&reg)
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(str(reg["client_id"]), "dcr:") {
		t.Fatalf("register: %d %v", resp.StatusCode, reg)
	}
	verifier := "verifier-" + strings.Repeat("x", 50)
	h := sha256.Sum256([]byte(verifier))
	return client{id: str(reg["client_id"]), redirect: redirect, verifier: verifier, challenge: base64.RawURLEncoding.EncodeToString(h[:])}
}

func str(v any) string { s, _ := v.(string); return s }

func (e *env) authorizeURL(c client, route, extra string) string {
	q := url.Values{"response_type": {"code"}, "client_id": {c.id}, "redirect_uri": {c.redirect}, "code_challenge": {c.challenge},
		"code_challenge_method": {"S256"}, "state": {"st-1"}, "scope": {"mcp:tools"}, "resource": {e.publicURL() + route}}
	return e.publicURL() + "/__mcpgate/oauth/authorize" + route + "?" + q.Encode() + extra
}

// signIn runs authorize → dev login → consent (connecting the demo upstream as user when the
// route needs it) → code, and returns the code.
func (e *env) signIn(t *testing.T, b *browser, c client, route, demoUser string) string {
	t.Helper()
	resp, page := b.get(e.authorizeURL(c, route, ""))
	resp, page = b.follow(resp, page, c.redirect)
	if resp.StatusCode == http.StatusOK && strings.Contains(page, "Authorize") {
		if m := connectLink.FindStringSubmatch(page); m != nil {
			if strings.Contains(page, `value="approve" disabled`) == false {
				t.Fatalf("Authorize is enabled before the upstream is connected:\n%s", page)
			}
			// Connect: consent page → approve → the demo AS's sign-in page → its callback → back here.
			r2, consent := b.get(htmlUnescape(m[1]))
			r2, consent = b.follow(r2, consent, "")
			if r2.StatusCode != http.StatusOK || !strings.Contains(consent, "Connect Demo upstream") {
				t.Fatalf("connect page: %d\n%s", r2.StatusCode, consent)
			}
			f := formFields(consent)
			f.Set("decision", "approve")
			r2, asPage := b.post(r2.Request.URL.String(), f)
			r2, asPage = b.follow(r2, asPage, "")
			if r2.StatusCode != http.StatusOK {
				t.Fatalf("demo sign-in page: %d %s", r2.StatusCode, asPage)
			}
			af := formFields(asPage)
			af.Set("user", demoUser)
			r2, _ = b.post(r2.Request.URL.String(), af)
			resp, page = b.follow(r2, "", c.redirect)
			if resp.StatusCode != http.StatusOK || !strings.Contains(page, "connected") {
				t.Fatalf("back on the consent page after connecting: %d %s\n%s", resp.StatusCode, resp.Request.URL, page)
			}
		}
		f := formFields(page)
		f.Set("decision", "approve")
		resp, page = b.post(resp.Request.URL.String(), f)
	}
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), c.redirect) {
		t.Fatalf("sign-in did not return to the client: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	u, _ := url.Parse(resp.Header.Get("Location"))
	if u.Query().Get("state") != "st-1" || u.Query().Get("iss") != e.publicURL()+route {
		t.Fatalf("redirect back: %s", u)
	}
	return u.Query().Get("code")
}

func (e *env) token(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(e.gw.Base+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (e *env) exchange(t *testing.T, c client, code, route string) map[string]any {
	t.Helper()
	st, tok := e.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirect},
		"code_verifier": {c.verifier}, "client_id": {c.id}, "resource": {e.publicURL() + route}})
	if st != http.StatusOK {
		t.Fatalf("token: %d %v", st, tok)
	}
	return tok
}

// mcp posts a JSON-RPC request with a bearer token.
func (e *env) mcp(t *testing.T, route, token, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.gw.URL+route, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const whoami = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`

// TestSignInFlowWithDevLoginAndDemoUpstream: an MCP client discovers the gateway's authorization
// server from the 401, registers, signs the person in (development login), the person connects
// the route's upstream on the consent page, and the token's first call reaches the upstream with
// the person's own upstream token; refresh rotates; revoke ends it.
func TestSignInFlowWithDevLoginAndDemoUpstream(t *testing.T) {
	e := newEnv(t)
	resp, body := e.mcp(t, "/mcp/demo", "", whoami)
	wantChallenge := `Bearer realm="OAuth", resource_metadata="` + e.gw.URL + `/.well-known/oauth-protected-resource/mcp/demo", scope="mcp:tools"`
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != wantChallenge {
		t.Fatalf("unauthenticated call: %d %q\n%s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	var prm map[string]any
	getJSON(t, e.gw.URL+"/.well-known/oauth-protected-resource/mcp/demo", &prm)
	if prm["resource"] != e.gw.URL+"/mcp/demo" || !strings.Contains(mustJSON(prm["authorization_servers"]), e.gw.URL+"/mcp/demo") {
		t.Fatalf("protected-resource metadata: %v", prm)
	}
	var as map[string]any
	getJSON(t, e.gw.URL+"/.well-known/oauth-authorization-server/mcp/demo", &as)
	if as["issuer"] != e.gw.URL+"/mcp/demo" || as["authorization_endpoint"] != e.gw.Base+"/oauth/authorize/mcp/demo" ||
		mustJSON(as["code_challenge_methods_supported"]) != `["S256"]` ||
		mustJSON(as["token_endpoint_auth_methods_supported"]) != `["none","client_secret_basic","client_secret_post"]` {
		t.Fatalf("authorization-server metadata: %v", as)
	}

	c := e.register(t, "http://127.0.0.1:33418/callback")
	b := newBrowser(t)
	code := e.signIn(t, b, c, "/mcp/demo", "alice")
	tok := e.exchange(t, c, code, "/mcp/demo")
	at, rt := str(tok["access_token"]), str(tok["refresh_token"])
	if !strings.HasPrefix(at, "mcpgate_at_") || !strings.HasPrefix(rt, "mcpgate_rt_") || tok["expires_in"] != float64(900) || tok["scope"] != "mcp:tools" {
		t.Fatalf("token response: %v", tok)
	}
	resp, body = e.mcp(t, "/mcp/demo", at, whoami)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "You are alice at the demo upstream") {
		t.Fatalf("tools/call with the access token: %d\n%s", resp.StatusCode, body)
	}
	// The same token on another route of the gateway is refused (bound to its resource).
	resp, _ = e.mcp(t, "/mcp/other", at, whoami)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("token on another route: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// The code is single use.
	if st, out := e.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirect},
		"code_verifier": {c.verifier}, "client_id": {c.id}}); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Fatalf("code replay: %d %v", st, out)
	}

	// Refresh rotates; two concurrent refreshes with one token both succeed with the same new one.
	refresh := func(rt string) (int, map[string]any) {
		return e.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {c.id}})
	}
	st1, r1 := refresh(rt)
	st2, r2 := refresh(rt)
	if st1 != 200 || st2 != 200 || r1["refresh_token"] != r2["refresh_token"] || r1["refresh_token"] == rt {
		t.Fatalf("refresh within the grace window: %d %v / %d %v", st1, r1, st2, r2)
	}
	resp, body = e.mcp(t, "/mcp/demo", str(r2["access_token"]), whoami)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "You are alice") {
		t.Fatalf("call with the refreshed token: %d %s", resp.StatusCode, body)
	}
	// The replaced token, presented after the grace window, is a replay: the grant is revoked.
	e.clock.advance(time.Minute)
	if st, out := refresh(rt); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Fatalf("replay after the grace window: %d %v", st, out)
	}
	if st, out := refresh(str(r1["refresh_token"])); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Fatalf("the current token after a replay must be dead: %d %v", st, out)
	}
	e.clock.advance(10 * time.Second) // past the replicas' revocation check
	resp, _ = e.mcp(t, "/mcp/demo", str(r1["access_token"]), whoami)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("access token of a revoked grant: %d", resp.StatusCode)
	}

	// A second sign-in of the same client and person skips the consent (remembered, connected).
	code = e.signIn(t, b, c, "/mcp/demo", "alice")
	tok = e.exchange(t, c, code, "/mcp/demo")
	// Revoke (RFC 7009): always 200; the access token stops working.
	resp2, err := http.PostForm(e.gw.Base+"/oauth/revoke", url.Values{"token": {str(tok["refresh_token"])}, "client_id": {c.id}})
	if err != nil || resp2.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %v %v", err, resp2)
	}
	resp2.Body.Close()
	e.clock.advance(10 * time.Second)
	if resp, _ = e.mcp(t, "/mcp/demo", str(tok["access_token"]), whoami); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("access token after revoke: %d", resp.StatusCode)
	}
	grants, err := e.gw.Store.ListOAuthGrants(t.Context(), "dev|dev-browser-user", 0)
	if err != nil || len(grants) != 2 || grants[0].RevokedAt.IsZero() || grants[1].RevokedAt.IsZero() {
		t.Fatalf("grants: %v %+v", err, grants)
	}
	if grants[1].RefreshHash == nil || strings.Contains(string(grants[1].RefreshHash), "mcpgate_rt_") {
		t.Fatal("refresh token stored in clear")
	}
}

func getJSON(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("GET %s: %d, CORS %q", u, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

var _ = store.ErrNotFound
