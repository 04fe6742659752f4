package setup_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/policy/jwtauth"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
)

// upstreamSpec is one token-exchange upstream of the test project.
type upstreamSpec struct {
	id, displayName, authMode, url string
	scopes                         []string
}

// env is a gateway with api-key-inbound and token-exchange routes, the setup UI mounted, on a real
// SQLite store.
type env struct {
	t       *testing.T
	gw      *httptest.Server
	store   store.Store
	manager *connect.Manager
	dbPath  string
	logs    *gatewaytest.Buffer
	base    string // gateway URL + base path
}

type envOptions struct {
	upstreams []upstreamSpec
	publicURL string // "": derived from requests
	// jwtSecret, when set, adds an open-id-jwt-auth-inbound policy (HS256 with this secret, issuer
	// jwtIssuer) on a route of its own, /mcp/jwt.
	jwtSecret string
}

const jwtIssuer = "https://idp.example.test"

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	policies := []map[string]any{{"name": "api-key", "policyType": "api-key-inbound",
		"handler": map[string]any{"module": "$import(@zuplo/runtime)", "export": "ApiKeyInboundPolicy", "options": map[string]any{"cacheTtlSeconds": 0}}}}
	paths := map[string]any{}
	for _, u := range o.upstreams {
		opts := map[string]any{"id": u.id, "displayName": u.displayName, "summary": u.displayName + " through the gateway.", "authMode": u.authMode}
		if len(u.scopes) > 0 {
			opts["scopes"] = u.scopes
		}
		policies = append(policies, map[string]any{"name": "mcp-token-exchange-" + u.id, "policyType": "mcp-token-exchange-inbound",
			"handler": map[string]any{"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpTokenExchangeInboundPolicy", "options": opts}})
		paths["/mcp/"+u.id] = map[string]any{"get,post": map[string]any{"operationId": u.id + "-mcp", "x-zuplo-route": map[string]any{
			"corsPolicy": "none",
			"handler":    map[string]any{"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpProxyHandler", "options": map[string]any{"rewritePattern": u.url}},
			"policies":   map[string]any{"inbound": []string{"api-key", "mcp-token-exchange-" + u.id}}}}}
	}
	if o.jwtSecret != "" {
		policies = append(policies, map[string]any{"name": "jwt", "policyType": jwtauth.PolicyType,
			"handler": map[string]any{"module": "$import(@zuplo/runtime)", "export": jwtauth.Export,
				"options": map[string]any{"issuer": jwtIssuer, "secret": o.jwtSecret, "audience": "https://gateway.example.test/mcp/jwt"}}})
		paths["/mcp/jwt"] = map[string]any{"get,post": map[string]any{"operationId": "jwt-mcp", "x-zuplo-route": map[string]any{
			"corsPolicy": "none",
			"handler":    map[string]any{"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpProxyHandler", "options": map[string]any{"rewritePattern": brokenUpstream(t)}},
			"policies":   map[string]any{"inbound": []string{"jwt"}}}}}
	}
	pj, _ := json.Marshal(map[string]any{"policies": policies})
	rj, _ := json.Marshal(map[string]any{"openapi": "3.1.0", "info": map[string]any{"title": "t", "version": "1"}, "paths": paths})
	dir := gatewaytest.Project(t, map[string]string{"config/policies.json": string(pj), "config/routes.oas.json": string(rj)})

	ring := gatewaytest.Ring(t)
	dbPath := filepath.Join(t.TempDir(), "db.sqlite")
	st := gatewaytest.Store(t, dbPath, ring)
	g := gatewaytest.New(t, gatewaytest.Options{Dir: dir, Store: st, Ring: ring, Setup: true, PublicURL: o.publicURL})
	return &env{t: t, gw: g.HTTP, store: st, manager: g.Manager, dbPath: dbPath, logs: g.Logs, base: g.Base}
}

// key creates an API key for consumer.
func (e *env) key(consumer string, admin bool) string {
	e.t.Helper()
	id, k, hash, err := store.NewAPIKey()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.CreateAPIKey(context.Background(), &store.APIKey{ID: id, Consumer: consumer, Hash: hash, Admin: admin, CreatedAt: time.Now()}); err != nil {
		e.t.Fatal(err)
	}
	return k
}

// call posts a tools/call to the route of upstream id with an API key and returns the JSON-RPC answer.
func (e *env) call(id, key, tool string) map[string]any {
	e.t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
	req, _ := http.NewRequest("POST", e.gw.URL+"/mcp/"+id, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		m = map[string]any{}
	}
	m["_status"] = float64(resp.StatusCode)
	m["_raw"] = string(b)
	return m
}

// toolText is the text of a successful tools/call answer, or "".
func toolText(m map[string]any) string {
	res, _ := m["result"].(map[string]any)
	content, _ := res["content"].([]any)
	if len(content) == 0 {
		return ""
	}
	c, _ := content[0].(map[string]any)
	s, _ := c["text"].(string)
	return s
}

// connectRequired returns the data of a -32042 connect-required answer, or nil.
func connectRequired(m map[string]any) map[string]any {
	e, _ := m["error"].(map[string]any)
	if e == nil || e["code"] != float64(-32042) {
		return nil
	}
	d, _ := e["data"].(map[string]any)
	return d
}

// api calls the admin API and returns the status and body.
func (e *env) api(method, path, key, body string) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.base+"/admin/api"+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// apiJSON calls the admin API, requires 200, and decodes the answer.
func (e *env) apiJSON(method, path, key, body string, out any) string {
	e.t.Helper()
	status, b := e.api(method, path, key, body)
	if status != http.StatusOK {
		e.t.Fatalf("%s %s: %d %s", method, path, status, b)
	}
	if err := json.Unmarshal([]byte(b), out); err != nil {
		e.t.Fatalf("decoding %s: %v", b, err)
	}
	return b
}

var (
	csrfRe   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
)

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#39;", "'", "&quot;", `"`, "&lt;", "<", "&gt;", ">", "&#34;", `"`).Replace(s)
}

// client is a cookie-keeping HTTP client that does not follow redirects (a browser without Chromium).
type client struct {
	t *testing.T
	c *http.Client
}

func newClient(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) get(u string) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.c.Get(u)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// post submits a form as Chromium submits the gateway's own forms (its pages send
// Referrer-Policy: no-referrer): "Origin: null" and "Sec-Fetch-Site: same-origin". header
// replaces those (a page elsewhere sends its own Origin and "Sec-Fetch-Site: cross-site"); a key
// with no values removes the header.
func (c *client) post(u string, form url.Values, header http.Header) (*http.Response, string) {
	c.t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "null")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, vs := range header {
		if len(vs) == 0 {
			req.Header.Del(k)
			continue
		}
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// csrfOf returns the first CSRF token on a page.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	return htmlUnescape(m[1])
}

// login signs c in with key through the login form and returns the login response.
func (e *env) login(c *client, key string) *http.Response {
	e.t.Helper()
	_, page := c.get(e.base + "/setup/login")
	resp, _ := c.post(e.base+"/setup/login", url.Values{"csrf": {csrfOf(e.t, page)}, "key": {key}}, nil)
	return resp
}

// connectUser runs the connect flow of user (an API key consumer) for upstream id over HTTP, with
// Hydra's login app signing in as hydraSubject.
func (e *env) connectUser(h *hydra.Server, id, key, hydraSubject string) {
	e.t.Helper()
	d := connectRequired(e.call(id, key, "whoami"))
	if d == nil {
		e.t.Fatalf("%s: want connect-required before connecting", hydraSubject)
	}
	authURL, _ := d["authUrl"].(string)
	c := newClient(e.t)
	page := e.signedInPage(c, authURL, key)
	form := url.Values{"decision": {"approve"}}
	for _, m := range hiddenRe.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	resp, body := c.post(strings.SplitN(authURL, "?", 2)[0], form, nil)
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("approve: %d %s", resp.StatusCode, body)
	}
	callback := h.AuthorizeHeadless(e.t, resp.Header.Get("Location"), hydraSubject)
	if resp, page := c.get(callback.String()); resp.StatusCode != 200 {
		e.t.Fatalf("callback: %d %s", resp.StatusCode, page)
	}
}

// signedInPage opens pageURL, a connect page of an API-key user, in c as that user would: the
// gateway sends a browser that is not signed in to its API-key sign-in form
// ({base}/oauth/login/api-key?return=pageURL); the key is posted on that form (with its CSRF
// field, as a same-origin form post) and the gateway comes back to pageURL, which is then served.
// It returns that page.
func (e *env) signedInPage(c *client, pageURL, key string) string {
	e.t.Helper()
	resp, _ := c.get(pageURL)
	login := resp.Header.Get("Location")
	want := e.base + "/oauth/login/api-key?" + url.Values{"return": {pageURL}}.Encode()
	if resp.StatusCode != http.StatusFound || login != want {
		e.t.Fatalf("%s without a session: %d to %q, want 302 to the API-key sign-in returning to the page", pageURL, resp.StatusCode, login)
	}
	resp, form := c.get(login)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("API-key sign-in page: %d %s", resp.StatusCode, form)
	}
	resp, body := c.post(e.base+"/oauth/login/api-key", url.Values{"csrf": {csrfOf(e.t, form)}, "return": {pageURL}, "key": {key}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != pageURL {
		e.t.Fatalf("API-key sign-in: %d to %q, want 303 back to the page: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	resp, page := c.get(pageURL)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("%s after signing in: %d %s", pageURL, resp.StatusCode, page)
	}
	return page
}
