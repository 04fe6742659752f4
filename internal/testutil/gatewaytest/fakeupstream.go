package gatewaytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// FakeUpstream is an MCP resource server and its OAuth authorization server in one in-process
// httptest server. It is a fake, for tests that must control exactly what the upstream accepts
// (a token refused mid-session, a 403 insufficient_scope after a refresh, an SSE stream held
// open, a token endpoint that fails): tests of the connection flow against a real upstream and a
// real authorization server use mcpupstream and Hydra instead.
//
// Every MCP path /mcp/<x> (POST) is a protected resource whose protected-resource metadata is at
// the RFC 9728 inserted path and names the server itself as the authorization server. The token
// endpoint issues at-1, at-2, … (refresh token "rt-" + the access token, expires_in 3600) for any
// grant, and the resource accepts exactly the issued tokens; any other request is answered 401
// with a resource_metadata challenge. An accepted request gets a tools/call result "ok".
type FakeUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	issued map[string]bool
	n      int
	seen   []http.Header // headers of every MCP request, in order
	answer func(w http.ResponseWriter, r *http.Request, token string) bool
	// tokenAnswer, when set, may answer a token request itself (return true).
	tokenAnswer func(w http.ResponseWriter, r *http.Request) bool
}

// NewFakeUpstream starts a FakeUpstream; it is closed when the test ends.
func NewFakeUpstream(t testing.TB) *FakeUpstream {
	t.Helper()
	f := &FakeUpstream{issued: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/", func(w http.ResponseWriter, r *http.Request) {
		res := f.URL + strings.TrimPrefix(r.URL.Path, "/.well-known/oauth-protected-resource")
		writeJSON(w, map[string]any{"resource": res, "authorization_servers": []string{f.URL}})
	})
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"issuer": f.URL, "authorization_endpoint": f.URL + "/authorize", "token_endpoint": f.URL + "/token",
			"response_types_supported": []string{"code"}, "code_challenge_methods_supported": []string{"S256"}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		ta := f.tokenAnswer
		f.mu.Unlock()
		if ta != nil && ta(w, r) {
			return
		}
		f.mu.Lock()
		f.n++
		at := fmt.Sprintf("at-%d", f.n)
		f.issued[at] = true
		f.mu.Unlock()
		writeJSON(w, map[string]any{"access_token": at, "token_type": "Bearer", "refresh_token": "rt-" + at, "expires_in": 3600})
	})
	mux.HandleFunc("POST /mcp/", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, r.Header.Clone())
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		ok := f.issued[token]
		answer := f.answer
		f.mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
		if answer != nil && answer(w, r, token) {
			return
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+f.URL+"/.well-known/oauth-protected-resource"+r.URL.Path+`"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}`)
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// SetAnswer sets a function that may answer an MCP request itself (returning true) given its
// bearer token; nil restores the default answers. The request is recorded either way.
func (f *FakeUpstream) SetAnswer(a func(w http.ResponseWriter, r *http.Request, token string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = a
}

// SetTokenAnswer sets a function that may answer a token request itself (returning true); nil
// restores the default. A token it answers is not counted by TokensIssued.
func (f *FakeUpstream) SetTokenAnswer(a func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokenAnswer = a
}

// LastHeaders returns the headers of the last MCP request, or nil before the first.
func (f *FakeUpstream) LastHeaders() http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.seen) == 0 {
		return nil
	}
	return f.seen[len(f.seen)-1]
}

// Requests returns how many MCP requests reached the upstream.
func (f *FakeUpstream) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

// TokensIssued returns how many tokens the token endpoint issued (code exchanges and refreshes).
func (f *FakeUpstream) TokensIssued() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// FakeUpstreamProject writes a project (see Project) in front of f: two OAuth upstreams, alpha on
// /mcp/alpha (operationId alpha-mcp) and beta on /mcp/beta (beta-mcp), each behind the test auth
// policy (UserHeader) and user-oauth token exchange with a manual public client (gw-alpha,
// gw-beta, scope "mcp"), and one public route /mcp/public (public-mcp) with no policies, each
// forwarding to the same path of f.
func FakeUpstreamProject(t testing.TB, f *FakeUpstream) string {
	t.Helper()
	te := func(id string) string {
		return `{"name":"mcp-token-exchange-` + id + `","policyType":"mcp-token-exchange-inbound","handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpTokenExchangeInboundPolicy",
	   "options":{"displayName":"` + strings.ToUpper(id[:1]) + id[1:] + `","authMode":"user-oauth","scopes":["mcp"],
	   "clientRegistration":{"mode":"manual","clientId":"gw-` + id + `","tokenEndpointAuthMethod":"none"}}}}`
	}
	route := func(path, op, target, policies string) string {
		return `"` + path + `":{"get,post":{"operationId":"` + op + `","x-zuplo-route":{"corsPolicy":"none",
	   "handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"` + target + `"}},
	   "policies":{"inbound":[` + policies + `]}}}}`
	}
	return Project(t, map[string]string{
		"config/policies.json": `{"policies":[
	 {"name":"test-user","policyType":"` + TestUserPolicyType + `","handler":{"module":"$import(@zuplo/runtime)","export":"` + TestUserExport + `","options":{}}},
	 ` + te("alpha") + `,` + te("beta") + `]}`,
		"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{
	 ` + route("/mcp/alpha", "alpha-mcp", f.URL+"/mcp/alpha", `"test-user","mcp-token-exchange-alpha"`) + `,
	 ` + route("/mcp/beta", "beta-mcp", f.URL+"/mcp/beta", `"test-user","mcp-token-exchange-beta"`) + `,
	 ` + route("/mcp/public", "public-mcp", f.URL+"/mcp/public", "") + `}}`,
	})
}

// FakeUpstreamEnv is a gateway (New) serving FakeUpstreamProject in front of a FakeUpstream, with
// a BrowserJar for the connect flow; Replica adds more gateways on the same store, key ring and
// project. Every gateway logs to Logs.
type FakeUpstreamEnv struct {
	T  testing.TB
	Up *FakeUpstream
	// Dir is the project directory; PublicURL the configured public URL ("" derives it).
	Dir       string
	PublicURL string
	// Gateway is the first gateway; its Store and Ring are every replica's.
	Gateway *Gateway
	Logs    *Buffer
	Browser *BrowserJar
}

// NewFakeUpstreamEnv starts a FakeUpstream and a gateway in front of it; publicURL "" derives
// the public URL from each request.
func NewFakeUpstreamEnv(t testing.TB, publicURL string) *FakeUpstreamEnv {
	t.Helper()
	e := &FakeUpstreamEnv{T: t, Up: NewFakeUpstream(t), PublicURL: publicURL, Logs: &Buffer{}}
	e.Dir = FakeUpstreamProject(t, e.Up)
	e.Gateway = New(t, Options{Dir: e.Dir, PublicURL: publicURL, Logs: e.Logs})
	e.Browser = NewBrowserJar(t)
	return e
}

// Replica starts another gateway on the first one's store, key ring and project.
func (e *FakeUpstreamEnv) Replica() *Gateway {
	e.T.Helper()
	return New(e.T, Options{Dir: e.Dir, Store: e.Gateway.Store, Ring: e.Gateway.Ring, PublicURL: e.PublicURL, Logs: e.Logs})
}

// ToolsCall posts a tools/call to route through gw as user (UserHeader; "" for none) with the
// extra headers hdr ("Host" sets the request's Host) and returns the response with its body read.
func (e *FakeUpstreamEnv) ToolsCall(gw *Gateway, route, user string, hdr map[string]string) (*http.Response, string) {
	e.T.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}`
	req, err := http.NewRequest("POST", gw.URL+route, strings.NewReader(body))
	if err != nil {
		e.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	if user != "" {
		req.Header.Set(UserHeader, user)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Connect runs the whole browser flow for user on route through the first gateway (a tools/call
// answered connect-required, consent approved, the authorization server's redirect back) and
// fails the test unless the connection is made.
func (e *FakeUpstreamEnv) Connect(route, user string) {
	e.T.Helper()
	_, body := e.ToolsCall(e.Gateway, route, user, nil)
	loc := e.Browser.Approve(e.Gateway, ConnectLink(e.T, body))
	resp, page := e.Browser.Callback(e.Gateway, loc)
	if resp.StatusCode != 200 || !strings.Contains(page, "connected") {
		e.T.Fatalf("callback: HTTP %d\n%s", resp.StatusCode, page)
	}
}

// ConnectLink returns the connect link (authUrl) of a -32042 connect-required answer, failing the
// test when body is not one.
func ConnectLink(t testing.TB, body string) string {
	t.Helper()
	var m struct {
		Error struct {
			Code int `json:"code"`
			Data struct {
				AuthURL string `json:"authUrl"`
			} `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.Error.Code != -32042 || m.Error.Data.AuthURL == "" {
		t.Fatalf("want a -32042 connect-required with an authUrl, got %s", body)
	}
	return m.Error.Data.AuthURL
}

// BrowserJar plays a browser on the gateway's pages without a browser: it keeps cookies as a
// browser on the public origin would (keyed by name and path, whatever the public URL's host),
// while each request goes to a local test gateway, and it follows no redirects.
type BrowserJar struct {
	t      testing.TB
	cookie map[string]*http.Cookie // name+"\x00"+path → cookie
}

// NewBrowserJar returns a browser with no cookies.
func NewBrowserJar(t testing.TB) *BrowserJar {
	return &BrowserJar{t: t, cookie: map[string]*http.Cookie{}}
}

func (j *BrowserJar) store(resp *http.Response) {
	for _, c := range resp.Cookies() {
		k := c.Name + "\x00" + c.Path
		if c.MaxAge < 0 {
			delete(j.cookie, k)
			continue
		}
		j.cookie[k] = c
	}
}

func (j *BrowserJar) header(path string) string {
	var parts []string
	for _, c := range j.cookie {
		if strings.HasPrefix(path, c.Path) {
			parts = append(parts, c.Name+"="+c.Value)
		}
	}
	return strings.Join(parts, "; ")
}

var jarNoRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Do sends a request for the public URL public to gw (its scheme and host replaced by gw's) with
// the jar's cookies, and form, when not nil, as an urlencoded body posted as a form of the
// gateway's own page (Origin: null, Sec-Fetch-Site: same-origin, what Chromium sends). It keeps
// the cookies of the response and returns it with its body read.
func (j *BrowserJar) Do(gw *Gateway, method, public string, form url.Values) (*http.Response, string) {
	j.t.Helper()
	target, err := url.Parse(public)
	if err != nil {
		j.t.Fatal(err)
	}
	local, err := url.Parse(gw.URL)
	if err != nil {
		j.t.Fatal(err)
	}
	target.Scheme, target.Host = local.Scheme, local.Host
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target.String(), body)
	if err != nil {
		j.t.Fatal(err)
	}
	if form != nil {
		// As Chromium posts a form of the gateway's own pages (they send Referrer-Policy:
		// no-referrer): no origin named, but same-origin by Fetch Metadata.
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "null")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	if c := j.header(req.URL.Path); c != "" {
		req.Header.Set("Cookie", c)
	}
	resp, err := jarNoRedirect.Do(req)
	if err != nil {
		j.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	j.store(resp)
	return resp, string(b)
}

var consentCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// Approve opens the consent page of the connect link and approves it; it returns the upstream
// authorization URL the gateway redirects to.
func (j *BrowserJar) Approve(gw *Gateway, link string) *url.URL {
	j.t.Helper()
	resp, page := j.Do(gw, "GET", link, nil)
	if resp.StatusCode != 200 {
		j.t.Fatalf("consent page: HTTP %d\n%s", resp.StatusCode, page)
	}
	m := consentCSRF.FindStringSubmatch(page)
	if m == nil {
		j.t.Fatalf("no CSRF field on the consent page:\n%s", page)
	}
	u, err := url.Parse(link)
	if err != nil {
		j.t.Fatal(err)
	}
	form := url.Values{"browserTicket": {u.Query().Get("browserTicket")}, "operationId": {u.Query().Get("operationId")},
		"csrf": {m[1]}, "decision": {"approve"}}
	u.RawQuery = ""
	resp, page = j.Do(gw, "POST", u.String(), form)
	if resp.StatusCode != http.StatusFound {
		j.t.Fatalf("approve: HTTP %d\n%s", resp.StatusCode, page)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		j.t.Fatal(err)
	}
	return loc
}

// Callback plays the authorization server's redirect back to the gateway (the redirect_uri of
// authorize) with code "code-1" and authorize's state.
func (j *BrowserJar) Callback(gw *Gateway, authorize *url.URL) (*http.Response, string) {
	j.t.Helper()
	q := authorize.Query()
	cb, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		j.t.Fatal(err)
	}
	cb.RawQuery = url.Values{"code": {"code-1"}, "state": {q.Get("state")}}.Encode()
	return j.Do(gw, "GET", cb.String(), nil)
}
