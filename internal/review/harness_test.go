// Package review_test holds the independent review's tests: regression guards for behaviour the
// review found right, driven through the real gateway, connection manager, store and browser
// endpoints. The upstream MCP server and its authorization server are one small httptest fake
// (fakeUpstream) so each test controls exactly what the upstream accepts; the findings do not depend
// on the upstream's implementation.
package review_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/mcpgate/mcpgate/internal/audit"
	_ "github.com/mcpgate/mcpgate/internal/builtin"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// reviewUser authenticates the caller from X-Review-User (a stand-in for gateway auth, which has
// its own tests). It leaves every other header alone, so tests can check what reaches upstream.
type reviewUser struct{}

func (*reviewUser) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	if u := r.Header.Get("X-Review-User"); u != "" {
		c.User = &policy.User{Sub: u, Namespace: "review"}
		r.Header.Del("X-Review-User")
	}
	return nil, nil
}

func init() {
	policy.Register(policy.Module{Export: "ReviewUserInboundPolicy", PolicyType: "review-user-inbound", Kind: policy.KindInbound, Authenticates: true, New: func() any { return &reviewUser{} }})
}

// fakeUpstream is an MCP resource server and its OAuth authorization server in one httptest
// server. Every MCP path /mcp/<x> is a protected resource with PRM at the RFC 9728 inserted path;
// the token endpoint issues at-1, at-2, … and the resource accepts exactly the issued tokens.
type fakeUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	issued map[string]bool
	n      int
	seen   []http.Header // headers of every MCP request, in order
	// answer, when set, may answer an MCP request itself (return true) given the bearer token.
	answer func(w http.ResponseWriter, r *http.Request, token string) bool
	// tokenAnswer, when set, may answer a token request itself (return true).
	tokenAnswer func(w http.ResponseWriter, r *http.Request) bool
}

func startFakeUpstream(t testing.TB) *fakeUpstream {
	f := &fakeUpstream{issued: map[string]bool{}}
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

func (f *fakeUpstream) setAnswer(a func(w http.ResponseWriter, r *http.Request, token string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = a
}

func (f *fakeUpstream) setTokenAnswer(a func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokenAnswer = a
}

func (f *fakeUpstream) lastHeaders() http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.seen) == 0 {
		return nil
	}
	return f.seen[len(f.seen)-1]
}

func (f *fakeUpstream) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// project writes a Zuplo project with two OAuth upstreams (alpha, beta: user-oauth, manual public
// client) and one public MCP route, all forwarding to f.
func project(t testing.TB, f *fakeUpstream) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
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
	must(os.MkdirAll(filepath.Join(dir, "config"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "zuplo.jsonc"), []byte(`{"version":1,"compatibilityDate":"2026-03-01"}`), 0o644))
	must(os.WriteFile(filepath.Join(dir, "config", "policies.json"), []byte(`{"policies":[
	 {"name":"review-user","policyType":"review-user-inbound","handler":{"module":"$import(@zuplo/runtime)","export":"ReviewUserInboundPolicy","options":{}}},
	 `+te("alpha")+`,`+te("beta")+`]}`), 0o644))
	must(os.WriteFile(filepath.Join(dir, "config", "routes.oas.json"), []byte(`{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{
	 `+route("/mcp/alpha", "alpha-mcp", f.URL+"/mcp/alpha", `"review-user","mcp-token-exchange-alpha"`)+`,
	 `+route("/mcp/beta", "beta-mcp", f.URL+"/mcp/beta", `"review-user","mcp-token-exchange-beta"`)+`,
	 `+route("/mcp/public", "public-mcp", f.URL+"/mcp/public", "")+`}}`), 0o644))
	return dir
}

// env is one gateway (or several replicas on one store) in front of a fakeUpstream.
type env struct {
	t     testing.TB
	up    *fakeUpstream
	st    store.Store
	ring  *vault.Ring
	dir   string
	gw    *httptest.Server
	logs  *syncBuffer
	pub   *url.URL // the configured public URL, or nil
	jar   *browserJar
	first *gateway.Server
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newEnv starts a gateway; publicURL "" derives the public URL from each request.
func newEnv(t testing.TB, publicURL string) *env {
	t.Helper()
	e := &env{t: t, up: startFakeUpstream(t), logs: &syncBuffer{}}
	e.dir = project(t, e.up)
	key, _ := vault.GenerateKey("k1", func() string { return "" })
	ring, err := vault.ParseRing(key)
	if err != nil {
		t.Fatal(err)
	}
	e.ring = ring
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db.sqlite"), sqlstore.Options{Ring: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.st = st
	if publicURL != "" {
		e.pub, _ = url.Parse(publicURL)
	}
	e.gw = e.replica()
	e.jar = newBrowserJar(t, e)
	return e
}

// replica starts another gateway instance on the same store and key ring.
func (e *env) replica() *httptest.Server {
	e.t.Helper()
	p, err := config.Load(e.dir, func(string) (string, bool) { return "", false })
	if err != nil {
		e.t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc := &gateway.Services{Store: e.st, Ring: e.ring, Audit: &audit.Recorder{Log: log, Store: e.st}, SafeHTTPAllow: []string{"127.0.0.1"}, Logger: log}
	gw, err := gateway.New(context.Background(), p, gateway.Settings{Logger: log, Services: svc, PublicURL: e.pub})
	if err != nil {
		e.t.Fatal(err)
	}
	gw.SetReady(true)
	if e.first == nil {
		e.first = gw
	}
	srv := httptest.NewServer(gw)
	e.t.Cleanup(srv.Close)
	return srv
}

// toolsCall posts a tools/call to route as user through gw and returns the response (body read).
func (e *env) toolsCall(gw *httptest.Server, route, user string, hdr map[string]string) (*http.Response, string) {
	e.t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}`
	req, _ := http.NewRequest("POST", gw.URL+route, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	if user != "" {
		req.Header.Set("X-Review-User", user)
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
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// authURL returns the connect link of a -32042 answer.
func authURL(t testing.TB, body string) string {
	t.Helper()
	var m struct {
		Error struct {
			Code int `json:"code"`
			Data struct {
				AuthURL string `json:"authUrl"`
				State   string `json:"state"`
			} `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.Error.Code != -32042 || m.Error.Data.AuthURL == "" {
		t.Fatalf("want a -32042 connect-required with an authUrl, got %s", body)
	}
	return m.Error.Data.AuthURL
}

// local points a public URL at the test server (the public URL may be https://gw.example).
func (e *env) local(gw *httptest.Server, public string) string {
	u, err := url.Parse(public)
	if err != nil {
		e.t.Fatal(err)
	}
	l, _ := url.Parse(gw.URL)
	u.Scheme, u.Host = l.Scheme, l.Host
	return u.String()
}

// browserJar keeps cookies as a browser on the public origin would (cookiejar semantics keyed by
// the public URL), while requests go to the local test server.
type browserJar struct {
	t      testing.TB
	e      *env
	cookie map[string]*http.Cookie // name+path → cookie
}

func newBrowserJar(t testing.TB, e *env) *browserJar {
	return &browserJar{t: t, e: e, cookie: map[string]*http.Cookie{}}
}

func (j *browserJar) store(resp *http.Response) {
	for _, c := range resp.Cookies() {
		k := c.Name + "\x00" + c.Path
		if c.MaxAge < 0 {
			delete(j.cookie, k)
			continue
		}
		j.cookie[k] = c
	}
}

func (j *browserJar) header(path string) string {
	var parts []string
	for _, c := range j.cookie {
		if strings.HasPrefix(path, c.Path) {
			parts = append(parts, c.Name+"="+c.Value)
		}
	}
	return strings.Join(parts, "; ")
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// browse sends a browser request to gw (public URL rewritten to it) with the jar's cookies.
func (j *browserJar) do(gw *httptest.Server, method, public string, form url.Values) (*http.Response, string) {
	j.t.Helper()
	target := j.e.local(gw, public)
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c := j.header(req.URL.Path); c != "" {
		req.Header.Set("Cookie", c)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		j.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	j.store(resp)
	return resp, string(b)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// approve opens the consent page of link and approves it; it returns the upstream authorize URL.
func (j *browserJar) approve(gw *httptest.Server, link string) *url.URL {
	j.t.Helper()
	resp, page := j.do(gw, "GET", link, nil)
	if resp.StatusCode != 200 {
		j.t.Fatalf("consent page: HTTP %d\n%s", resp.StatusCode, page)
	}
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		j.t.Fatalf("no CSRF field on the consent page:\n%s", page)
	}
	u, _ := url.Parse(link)
	form := url.Values{"browserTicket": {u.Query().Get("browserTicket")}, "operationId": {u.Query().Get("operationId")},
		"csrf": {m[1]}, "decision": {"approve"}}
	u.RawQuery = ""
	resp, page = j.do(gw, "POST", u.String(), form)
	if resp.StatusCode != http.StatusFound {
		j.t.Fatalf("approve: HTTP %d\n%s", resp.StatusCode, page)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		j.t.Fatal(err)
	}
	return loc
}

// callback plays the authorization server's redirect back to the gateway with a code.
func (j *browserJar) callback(gw *httptest.Server, authorize *url.URL) (*http.Response, string) {
	j.t.Helper()
	q := authorize.Query()
	cb, _ := url.Parse(q.Get("redirect_uri"))
	cb.RawQuery = url.Values{"code": {"code-1"}, "state": {q.Get("state")}}.Encode()
	return j.do(gw, "GET", cb.String(), nil)
}

// connect runs the whole browser flow for user on route and fails the test unless it succeeds.
func (e *env) connect(route, user string) {
	e.t.Helper()
	_, body := e.toolsCall(e.gw, route, user, nil)
	loc := e.jar.approve(e.gw, authURL(e.t, body))
	resp, page := e.jar.callback(e.gw, loc)
	if resp.StatusCode != 200 || !strings.Contains(page, "connected") {
		e.t.Fatalf("callback: HTTP %d\n%s", resp.StatusCode, page)
	}
}
