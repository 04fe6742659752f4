package connect_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/testutil/mcpupstream"
)

type env struct {
	t        *testing.T
	hydra    *hydra.Server
	upstream *mcpupstream.Server
	gw       *gatewaytest.Gateway
	logs     *gatewaytest.Buffer
}

func writeProject(t *testing.T, upstreamURL string) string {
	return writeProjectMode(t, upstreamURL, "user-oauth")
}

// writeProjectMode is writeProject with the token exchange's authMode. Its one route is guarded
// by the test auth policy (gatewaytest.TestUserInboundPolicy: the caller names itself in
// X-Test-User) and the token exchange.
func writeProjectMode(t *testing.T, upstreamURL, authMode string) string {
	return gatewaytest.Project(t, map[string]string{
		"config/policies.json": `{"policies":[
	 {"name":"test-user","policyType":"` + gatewaytest.TestUserPolicyType + `","handler":{"module":"$import(@zuplo/runtime)","export":"` + gatewaytest.TestUserExport + `","options":{}}},
	 {"name":"mcp-token-exchange-hydra-up","policyType":"mcp-token-exchange-inbound","handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpTokenExchangeInboundPolicy",
	   "options":{"displayName":"Hydra Upstream","summary":"A Go SDK server behind Ory Hydra.","authMode":"` + authMode + `","scopes":["mcp","offline_access"]}}}]}`,
		"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{
	 "/mcp/up":{"get,post":{"operationId":"up-mcp","x-zuplo-route":{"corsPolicy":"none",
	   "handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"` + upstreamURL + `"}},
	   "policies":{"inbound":["test-user","mcp-token-exchange-hydra-up"]}}}}}}`,
	})
}

func setup(t *testing.T) *env {
	t.Helper()
	h := hydra.Start(t, hydra.Options{Scopes: []string{"mcp"}})
	up := mcpupstream.Start(t, mcpupstream.Options{Issuer: h.PublicURL, IntrospectURL: h.AdminURL + "/admin/oauth2/introspect"})
	gw := gatewaytest.New(t, gatewaytest.Options{Dir: writeProject(t, up.URL)})
	return &env{t: t, hydra: h, upstream: up, gw: gw, logs: gw.Logs}
}

// call posts a tools/call as user and returns the decoded JSON-RPC answer.
func (e *env) call(user, tool string) map[string]any {
	e.t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
	req, _ := http.NewRequest("POST", e.gw.URL+"/mcp/up", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	req.Header.Set(gatewaytest.UserHeader, user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		e.t.Fatalf("tools/call as %s: HTTP %d %s", user, resp.StatusCode, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		e.t.Fatalf("decoding %s: %v", b, err)
	}
	return m
}

func authURLOf(t *testing.T, m map[string]any) string {
	t.Helper()
	e, ok := m["error"].(map[string]any)
	if !ok || e["code"] != float64(-32042) {
		t.Fatalf("want connect-required -32042, got %v", m)
	}
	return e["data"].(map[string]any)["authUrl"].(string)
}

var (
	csrfRe    = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	hiddenRe  = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
	noRedirel = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
)

type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: noRedirel}}
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// approve opens the connect link, submits the consent form with decision and returns the response.
func (b *browser) decide(authURL, decision string) (*http.Response, string) {
	b.t.Helper()
	resp, page := b.get(authURL)
	if resp.StatusCode != 200 {
		b.t.Fatalf("consent page: %d %s", resp.StatusCode, page)
	}
	form := url.Values{"decision": {decision}}
	for _, m := range hiddenRe.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	if m := csrfRe.FindStringSubmatch(page); m != nil {
		form.Set("csrf", htmlUnescape(m[1]))
	}
	action := strings.SplitN(authURL, "?", 2)[0]
	return b.post(action, form, "")
}

// post submits form to action as a browser does from one of the gateway's pages (origin "", or
// the gateway's own origin) or from a page of another origin. The gateway's pages send Referrer-Policy: no-referrer, so
// Chromium posts their forms with "Origin: null" and "Sec-Fetch-Site: same-origin"; a page
// elsewhere posts with its own Origin and "Sec-Fetch-Site: cross-site".
func (b *browser) post(action string, form url.Values, origin string) (*http.Response, string) {
	b.t.Helper()
	r, err := b.c.Do(formPost(action, form, origin))
	if err != nil {
		b.t.Fatal(err)
	}
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	return r, string(body)
}

// formPost is a browser's form POST of form to action (see browser.post).
func formPost(action string, form url.Values, origin string) *http.Request {
	req, _ := http.NewRequest("POST", action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	switch origin {
	case "":
		req.Header.Set("Origin", "null")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	case req.URL.Scheme + "://" + req.URL.Host:
		req.Header.Set("Origin", origin)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	default:
		req.Header.Set("Origin", origin)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
	}
	return req
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#39;", "'", "&quot;", `"`, "&lt;", "<", "&gt;", ">").Replace(s)
}

func TestConnectFlowWithRealHydra(t *testing.T) {
	e := setup(t)

	// Not connected: the upstream's 401 becomes connect-required, never the raw challenge.
	first := e.call("alice", "whoami")
	authURL := authURLOf(t, first)
	data := first["error"].(map[string]any)["data"].(map[string]any)
	if data["state"] != "authenticating" || data["upstreamServerId"] != "hydra-up" || data["operationId"] != "up-mcp" {
		t.Fatalf("connect-required data %v", data)
	}

	// The person approves in a fresh browser, signs in at Hydra, lands on the callback.
	b := newBrowser(t)
	resp, _ := b.decide(authURL, "approve")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("approve: %d", resp.StatusCode)
	}
	authorize, _ := url.Parse(resp.Header.Get("Location"))
	q := authorize.Query()
	for _, p := range []string{"client_id", "redirect_uri", "scope", "state", "code_challenge", "resource"} {
		if q.Get(p) == "" {
			t.Errorf("authorize request lacks %s: %s", p, authorize)
		}
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("resource") != e.upstream.URL {
		t.Errorf("authorize request %s", authorize)
	}
	callback := e.hydra.AuthorizeHeadless(t, resp.Header.Get("Location"), "alice")
	resp, page := b.get(callback.String())
	if resp.StatusCode != 200 || !strings.Contains(page, "connected") {
		t.Fatalf("callback: %d %s", resp.StatusCode, page)
	}

	// Now alice's calls carry alice's own upstream token.
	res := e.call("alice", "whoami")
	if text := res["result"].(map[string]any)["content"].([]any)[0].(map[string]any)["text"]; text != "subject=alice" {
		t.Fatalf("whoami: %v", res)
	}
	seen := e.upstream.Seen()
	if len(seen) == 0 || seen[len(seen)-1].Subject != "alice" {
		t.Fatalf("upstream saw %v", seen)
	}
	// bob is not connected: his call is not served with alice's token.
	authURLOf(t, e.call("bob", "whoami"))

	// Replays: the same callback again, and the same ticket again.
	if resp, _ := b.get(callback.String()); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("replayed callback: %d", resp.StatusCode)
	}
	if resp, page := b.decide(authURL, "approve"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "ticket_used") {
		t.Errorf("replayed ticket: %d", resp.StatusCode)
	}

	// No token, code or state in the logs.
	for _, s := range seen {
		if strings.Contains(e.logs.String(), s.Token) {
			t.Error("an upstream access token reached the log")
		}
	}
	if strings.Contains(e.logs.String(), q.Get("state")) || strings.Contains(e.logs.String(), callback.Query().Get("code")) {
		t.Error("state or code reached the log")
	}
}

func TestCallbackBoundToApprovingBrowser(t *testing.T) {
	e := setup(t)
	authURL := authURLOf(t, e.call("alice", "whoami"))
	victim := newBrowser(t)
	resp, _ := victim.decide(authURL, "approve")
	callback := e.hydra.AuthorizeHeadless(t, resp.Header.Get("Location"), "alice")
	// Another browser (no binding cookie) cannot complete it.
	attacker := newBrowser(t)
	if resp, page := attacker.get(callback.String()); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "browser_mismatch") {
		t.Fatalf("foreign browser callback: %d", resp.StatusCode)
	}
	// The state was consumed by that attempt: the real browser must start over.
	if resp, _ := victim.get(callback.String()); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("after a refused callback: %d", resp.StatusCode)
	}
	authURLOf(t, e.call("alice", "whoami"))
}

func TestApproveWithoutCSRFTokenIsRefused(t *testing.T) {
	e := setup(t)
	authURL := authURLOf(t, e.call("alice", "whoami"))
	u, _ := url.Parse(authURL)
	form := url.Values{"decision": {"approve"}, "browserTicket": {u.Query().Get("browserTicket")}, "operationId": {"up-mcp"}}
	// Posted as from the gateway's own page (same-origin): what refuses it is the missing token.
	resp, err := http.DefaultClient.Do(formPost(strings.SplitN(authURL, "?", 2)[0], form, ""))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("approve without CSRF token: %d", resp.StatusCode)
	}
	// The ticket was not consumed by the refused post.
	if resp, _ := newBrowser(t).decide(authURL, "approve"); resp.StatusCode != http.StatusFound {
		t.Fatalf("approve after refused post: %d", resp.StatusCode)
	}
}

func TestCancelRendersPageAndConnectsNothing(t *testing.T) {
	e := setup(t)
	authURL := authURLOf(t, e.call("alice", "whoami"))
	resp, page := newBrowser(t).decide(authURL, "cancel")
	if resp.StatusCode != 200 || !strings.Contains(strings.ToLower(page), "cancel") {
		t.Fatalf("cancel: %d %s", resp.StatusCode, page)
	}
	authURLOf(t, e.call("alice", "whoami"))
}
