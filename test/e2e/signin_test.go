package e2e

// Sign-in end to end (docs/sign-in.md): mcpgate as the OAuth authorization server of MCP clients,
// with real parts only — the built mcpgate binary, two Ory Hydras, headless Chromium and the
// official SDK clients.
//
//   - One Hydra is the organisation's identity provider. The gateway is its OIDC client
//     (client_secret_basic, redirect URI {base}/oauth/callback); the policy names only the issuer
//     and the client, so the gateway finds the endpoints and keys by discovery.
//   - The other Hydra is the authorization server of an OAuth-protected Go SDK MCP server
//     (internal/testutil/mcpupstream), which verifies every token by introspection and records
//     whose it was.
//   - The route /mcp/signin has mcp-oauth-inbound, then mcp-token-exchange-inbound (user-oauth,
//     DCR at the upstream's Hydra).
//
// The MCP client gets 401, discovers the gateway from its metadata, registers (DCR, or a client ID
// metadata document the test serves over https), and sends the person to the authorization URL,
// which the test opens in Chromium: the IdP's login (its test app signs the person in), the
// gateway's consent page, Connect (the gateway's connect page, then the upstream's Hydra), back to
// the consent page showing "connected", Authorize, and the client's redirect URI (served by the
// test, or by the node script) gets the code. The client's tool call then reaches the upstream
// with the person's own upstream token, never the gateway's. Then refresh, revocation (the next
// call is 401) and, in TestSignInAccessTokenExpiry, a real expiry of the gateway's access token.
//
// gateway.accessTokenTtlSeconds accepts 10 at least, so a real expiry costs ten seconds:
// TestSignInAccessTokenExpiry waits it out (skipped with -short). TestSignInGoSDKClient makes
// its client treat the access token as expired at once (its token source's clock, not the
// gateway's), so that the SDK refreshes on the next call without the wait.
//
// Screenshots (consent page before and after connecting, connect page, the client's redirect
// page) go to test-artifacts/ (MCPGATE_TEST_ARTIFACTS).

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/mcpgate/mcpgate/internal/testutil/browser"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/testutil/mcpupstream"
	"github.com/mcpgate/mcpgate/internal/testutil/nodeenv"
)

// Names of the sign-in tests' configuration.
const (
	signInPath        = "/mcp/signin"
	signInOperationID = "signin-mcp"
	signInSummary     = "Sign-in e2e MCP server"
	signInUpstreamID  = "hydra-up"
	signInDisplayName = "Hydra Upstream"
	signInPolicy      = "signin"
	// signInScope is the one scope of the gateway's tokens.
	signInScope = "mcp:tools"
	// signInMinAccessTTL is the access-token lifetime of the expiry test: 10 s is the shortest the
	// policy accepts, but x/oauth2's token source (the Go SDK's) counts a token as expired 10 s
	// early, so it would refresh on every call; 15 s leaves it 5 s of use.
	signInMinAccessTTL = 15
	// signInTimeout bounds one client's sign-in, calls, refresh and revocation.
	signInTimeout = 90 * time.Second
)

// signInPerson is who signs in: the subject the IdP's login app signs in, and the subject the
// upstream's Hydra signs in when the person connects the upstream.
type signInPerson struct {
	idp, upstream string
}

// signInSetup is the IdP, the upstream behind its Hydra, and mcpgate with the sign-in route.
type signInSetup struct {
	idp       *hydra.Server
	idpClient hydra.Client
	upHydra   *hydra.Server
	up        *mcpupstream.Server
	gw        *gateway
	cimd      *signInCIMD
	// url is the MCP route: the OAuth resource and the issuer of its authorization server.
	url string
}

// startSignInSetup starts both Hydras, the upstream, the client metadata document server and
// mcpgate with the sign-in route; accessTTL is gateway.accessTokenTtlSeconds (0: default).
func startSignInSetup(t *testing.T, first signInPerson, accessTTL int) *signInSetup {
	t.Helper()
	if serveMissing != "" {
		t.Skip(serveMissing)
	}
	browser.Require(t)
	addr := freeLoopbackAddr(t)
	base := "http://" + addr

	idp := hydra.Start(t, hydra.Options{Subject: first.idp, Scopes: []string{"profile", "email"}})
	idpClient := idp.CreateClient(t, hydra.ClientSpec{
		Name: "mcpgate", RedirectURIs: []string{base + "/__mcpgate/oauth/callback"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "profile", "email"},
		TokenEndpointAuthMethod: "client_secret_basic",
	})
	if idpClient.Secret == "" {
		t.Fatal("hydra created the gateway's client without a secret")
	}
	upHydra := hydra.Start(t, hydra.Options{Subject: first.upstream})
	up := mcpupstream.Start(t, mcpupstream.Options{Issuer: upHydra.Issuer(), IntrospectURL: upHydra.AdminURL + "/admin/oauth2/introspect"})
	cimd := startSignInCIMD(t)

	gatewayOpts := map[string]any{}
	if accessTTL > 0 {
		gatewayOpts["accessTokenTtlSeconds"] = accessTTL
	}
	policies := []any{
		map[string]any{
			"name": signInPolicy, "policyType": "mcp-oauth-inbound",
			"handler": map[string]any{"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpOAuthInboundPolicy",
				"options": map[string]any{
					// Issuer only: the endpoints and keys come from the IdP's discovery document.
					"oidc":         map[string]any{"issuer": idp.Issuer()},
					"browserLogin": map[string]any{"clientId": idpClient.ID, "clientSecret": idpClient.Secret, "scope": "openid profile email"},
					"gateway":      gatewayOpts,
				}},
		},
		map[string]any{
			"name": "mcp-token-exchange-" + signInUpstreamID, "policyType": "mcp-token-exchange-inbound",
			"handler": map[string]any{"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpTokenExchangeInboundPolicy",
				"options": map[string]any{
					"displayName": signInDisplayName, "summary": "A Go SDK MCP server whose tokens Ory Hydra issues.",
					"authMode": "user-oauth", "clientRegistration": map[string]any{"mode": "auto"},
				}},
		},
	}
	gw := startSignInGateway(t, addr, up.URL, policies,
		// The client metadata document is served over https from 127.0.0.1 by a test certificate.
		"MCPGATE_SAFEHTTP_ALLOW=127.0.0.1", "SSL_CERT_FILE="+cimd.certFile)
	return &signInSetup{idp: idp, idpClient: idpClient, upHydra: upHydra, up: up, gw: gw, cimd: cimd, url: base + signInPath}
}

// startSignInGateway writes the project (the sign-in route to upstreamURL with policies) and runs
// `mcpgate serve --public-url http://addr` with env added to its environment.
func startSignInGateway(t *testing.T, addr, upstreamURL string, policies []any, env ...string) *gateway {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "project")
	routes := map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "sign-in e2e", "version": "1"},
		"paths": map[string]any{signInPath: map[string]any{"get,post": map[string]any{
			"operationId": signInOperationID,
			"summary":     signInSummary,
			"x-zuplo-route": map[string]any{
				"corsPolicy": "none",
				"handler": map[string]any{
					"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpProxyHandler",
					"options": map[string]any{"rewritePattern": upstreamURL},
				},
				"policies": map[string]any{"inbound": []string{signInPolicy, "mcp-token-exchange-" + signInUpstreamID}},
			},
		}}},
	}
	writeFiles(t, cfg, map[string]any{
		"zuplo.jsonc":            map[string]any{"version": 1, "compatibilityDate": "2026-03-01"},
		"config/routes.oas.json": routes,
		"config/policies.json":   map[string]any{"policies": policies},
	})

	g, _ := serveGateway(t, []string{"serve", "--config", cfg, "--data-dir", filepath.Join(dir, "data"),
		"--listen", addr, "--public-url", "http://" + addr, "--log-level", "debug"}, env...)
	return g
}

// signInCIMD serves one client ID metadata document over https with the httptest certificate,
// which certFile (PEM) holds for the gateway to trust (SSL_CERT_FILE).
type signInCIMD struct {
	srv      *httptest.Server
	certFile string
	// URL is the client_id: the document's own URL.
	URL string

	mu      sync.Mutex
	doc     []byte
	fetches int
}

func startSignInCIMD(t *testing.T) *signInCIMD {
	t.Helper()
	c := &signInCIMD{}
	c.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		doc := c.doc
		c.fetches++
		c.mu.Unlock()
		if r.URL.Path != "/clients/mcpgate-e2e.json" || doc == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(c.srv.Close)
	c.URL = c.srv.URL + "/clients/mcpgate-e2e.json"
	c.certFile = filepath.Join(t.TempDir(), "cimd-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.srv.Certificate().Raw})
	if err := os.WriteFile(c.certFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// publish sets the document: a public client named name returning to redirectURI.
func (c *signInCIMD) publish(t *testing.T, name, redirectURI string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"client_id": c.URL, "client_name": name, "redirect_uris": []string{redirectURI},
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "none",
	})
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.doc = b
	c.mu.Unlock()
}

func (c *signInCIMD) fetchCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetches
}

// signInRedirect is a Go client's redirect URI on 127.0.0.1: it hands each authorization
// response to the AuthorizationCodeFetcher waiting for it and shows the browser a short page.
type signInRedirect struct {
	srv *httptest.Server
	// URL is the redirect URI.
	URL string
	got chan url.Values
}

func startSignInRedirect(t *testing.T) *signInRedirect {
	t.Helper()
	r := &signInRedirect{got: make(chan url.Values, 4)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/callback" {
			http.NotFound(w, req)
			return
		}
		select {
		case r.got <- req.URL.Query():
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>Signed in</title><h1>Signed in</h1><p>Return to the application; you can close this tab.</p>`)
	}))
	t.Cleanup(r.srv.Close)
	r.URL = r.srv.URL + "/callback"
	return r
}

// decline makes the next authorization end as if the person refused it.
func (r *signInRedirect) decline() {
	r.got <- url.Values{"error": {"access_denied"}, "error_description": {"the person closed the browser"}}
}

// fetcher is the AuthorizationCodeFetcher: it hands the authorization URL to the test (which
// drives Chromium) and returns what arrives at the redirect URI.
func (r *signInRedirect) fetcher(authURLs chan<- string) auth.AuthorizationCodeFetcher {
	return func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
		select {
		case authURLs <- args.URL:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case q := <-r.got:
			if e := q.Get("error"); e != "" {
				return nil, fmt.Errorf("authorization refused: %s: %s", e, q.Get("error_description"))
			}
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// signInRecorder records the requests a client makes (method, path, status, challenge).
type signInRecorder struct {
	mu      sync.Mutex
	entries []signInExchange
}

type signInExchange struct {
	Method, Path, Grant string
	Status              int
	Challenge           string
}

func (r *signInRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	grant := ""
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/oauth/token") && req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if v, err := url.ParseQuery(string(b)); err == nil {
			grant = v.Get("grant_type")
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(strings.NewReader(string(b)))
		req.ContentLength = int64(len(b))
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	e := signInExchange{Method: req.Method, Path: req.URL.Path, Grant: grant}
	if err == nil {
		e.Status, e.Challenge = resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}
	r.mu.Lock()
	r.entries = append(r.entries, e)
	r.mu.Unlock()
	return resp, err
}

func (r *signInRecorder) all() []signInExchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.entries)
}

// find returns the exchanges matching method and path (and grant, when not empty).
func (r *signInRecorder) find(method, path, grant string) []signInExchange {
	var out []signInExchange
	for _, e := range r.all() {
		if e.Method == method && e.Path == path && (grant == "" || e.Grant == grant) {
			out = append(out, e)
		}
	}
	return out
}

// signInTokenSource is the Go client's token source: the SDK's own behaviour (keep the token,
// refresh it with the oauth2 library's refresh request once it has expired), plus expire, which
// moves the client's view of the expiry into the past as a minute's wait would.
type signInTokenSource struct {
	ctx context.Context
	cfg *oauth2.Config

	mu        sync.Mutex
	tok       *oauth2.Token
	refreshes int
}

func (s *signInTokenSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok.Valid() {
		return s.tok, nil
	}
	nt, err := s.cfg.TokenSource(s.ctx, s.tok).Token()
	if err != nil {
		return nil, err
	}
	s.tok = nt
	s.refreshes++
	return nt, nil
}

func (s *signInTokenSource) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := *s.tok
	t.Expiry = time.Now().Add(-time.Minute)
	s.tok = &t
}

func (s *signInTokenSource) current() (oauth2.Token, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.tok, s.refreshes
}

// signInExpect is what the consent page must show.
type signInExpect struct {
	person     signInPerson
	clientName string
	verified   bool
	// redirectURI is where Authorize must send the browser.
	redirectURI string
	// connect: the upstream is not connected yet; the person connects it from the consent page.
	connect bool
	// foreignRedirect: the redirect URI is another program's page (mcp-remote's callback), whose
	// content the test does not check.
	foreignRedirect bool
}

// signInInBrowser plays the person in a fresh Chromium: the authorization URL leads through the
// IdP's login to the gateway's consent page, where the person connects the upstream (when asked
// to) and authorizes. It checks each page, saves screenshots and returns the URL the browser
// ends at: the client's redirect URI with the authorization response.
func (s *signInSetup) signInInBrowser(t *testing.T, authURL string, want signInExpect) *url.URL {
	t.Helper()
	b := browser.New(t)
	// authorize → the IdP's authorization endpoint → its login app (signs want.person.idp in) →
	// its consent app → the gateway's callback → the consent page: all redirects.
	b.Navigate(authURL)
	setup := s.gw.URL("/__mcpgate/oauth/setup?request=")
	if u := b.CurrentURL(); !strings.HasPrefix(u, setup) {
		b.Screenshot("unexpected")
		t.Fatalf("after the authorization URL the browser is at %s (%q), want the consent page %s…", u, signInBodyText(b), setup)
	}
	if h1 := b.Text("h1"); h1 != "Sign in to "+signInSummary {
		t.Errorf("consent page title %q", h1)
	}
	facts := browser.Eval[map[string]string](b, `Object.fromEntries(Array.from(document.querySelectorAll("dl.facts dt")).map(dt => [dt.innerText.trim(), dt.nextElementSibling.innerText.trim()]))`)
	idpHost := strings.TrimPrefix(s.idp.Issuer(), "http://")
	if got, want := facts["Signed in as"], want.person.idp+" (signed in at "+strings.TrimSuffix(idpHost, "/")+")"; got != want {
		t.Errorf("consent page: signed in as %q, want %q", got, want)
	}
	pill := "self-asserted (registered by the client itself)"
	if want.verified {
		pill = "verified by its metadata document"
	}
	if got := facts["Client"]; got != want.clientName+" "+pill {
		t.Errorf("consent page: client %q, want %q", got, want.clientName+" "+pill)
	}
	ru, _ := url.Parse(want.redirectURI)
	if got := facts["Returns to"]; got != ru.Host {
		t.Errorf("consent page: returns to %q, want %s", got, ru.Host)
	}
	if got := facts["MCP server"]; got != s.url {
		t.Errorf("consent page: MCP server %q, want %s", got, s.url)
	}
	if got := b.Text("table td strong"); got != signInDisplayName {
		t.Errorf("consent page lists the upstream %q, want %s", got, signInDisplayName)
	}
	approveDisabled := `document.querySelector('button[name="decision"][value="approve"]').disabled`

	if want.connect {
		if got := b.Text("table .pill"); got != "not connected" {
			t.Errorf("consent page: the upstream is %q, want not connected", got)
		}
		if !browser.Eval[bool](b, approveDisabled) {
			t.Error("Authorize is enabled before the upstream is connected")
		}
		b.Screenshot("consent")

		b.ClickNavigate("table a.button")
		if h1 := b.Text("h1"); h1 != "Connect "+signInDisplayName {
			b.Screenshot("unexpected")
			t.Fatalf("Connect led to %q at %s, want the gateway's connect page", h1, b.CurrentURL())
		}
		if got := b.Text("dl.facts dd"); got != want.person.idp {
			t.Errorf("connect page: connecting as %q, want %s", got, want.person.idp)
		}
		b.Screenshot("connect")
		// Approve → the upstream's Hydra → its login app (signs want.person.upstream in) → its
		// consent app → the gateway's connect callback → back to the consent page.
		b.ClickNavigate(`button[name="decision"][value="approve"]`)
		if u := b.CurrentURL(); !strings.HasPrefix(u, setup) {
			b.Screenshot("unexpected")
			t.Fatalf("after connecting the browser is at %s (%q), want the consent page again", u, signInBodyText(b))
		}
	}
	if got := b.Text("table .pill"); got != "connected" {
		b.Screenshot("unexpected")
		t.Fatalf("consent page: the upstream is %q, want connected", got)
	}
	if browser.Eval[bool](b, approveDisabled) {
		t.Fatal("Authorize is disabled with the upstream connected")
	}
	b.Screenshot("consent-connected")

	b.ClickNavigate(`button[name="decision"][value="approve"]`)
	u := b.CurrentURL()
	if !strings.HasPrefix(u, want.redirectURI+"?") {
		b.Screenshot("unexpected")
		t.Fatalf("Authorize led to %s (%q), want the client's redirect URI %s", u, signInBodyText(b), want.redirectURI)
	}
	if h1 := ""; !want.foreignRedirect {
		if h1 = b.Text("h1"); h1 != "Signed in" {
			t.Errorf("the client's redirect page says %q, want Signed in", h1)
		}
	}
	b.Screenshot("client-redirect")
	back, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := back.Query()
	if !strings.HasPrefix(q.Get("code"), "mcpgate_ac_") || q.Get("iss") != s.url || q.Get("error") != "" {
		t.Errorf("authorization response %v: want a gateway code and iss=%s", redactQuery(q), s.url)
	}
	return back
}

func signInBodyText(b *browser.Browser) string {
	return browser.Eval[string](b, `document.body.innerText`)
}

// redactQuery shows which parameters an authorization response has, not their secrets.
func redactQuery(q url.Values) map[string]string {
	out := map[string]string{}
	for k, v := range q {
		if k == "code" || k == "state" {
			out[k] = fmt.Sprintf("<%d chars>", len(strings.Join(v, "")))
			continue
		}
		out[k] = strings.Join(v, ",")
	}
	return out
}

// checkAuthorizeURL checks the authorization URL a client opens and returns its client_id.
func (s *signInSetup) checkAuthorizeURL(t *testing.T, authURL, redirectURI string) string {
	t.Helper()
	want := s.gw.URL("/__mcpgate/oauth/authorize" + signInPath + "?")
	if !strings.HasPrefix(authURL, want) {
		t.Fatalf("authorization URL %s, want %s…", authURL, want)
	}
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("state") == "" || q.Get("resource") != s.url || q.Get("redirect_uri") != redirectURI || q.Get("client_id") == "" {
		t.Errorf("authorization request %v: want code, S256, a state, resource %s, redirect_uri %s and a client_id", redactQuery(q), s.url, redirectURI)
	}
	if !slices.Contains(strings.Fields(q.Get("scope")), signInScope) {
		t.Errorf("authorization request scope %q, want the challenged %s", q.Get("scope"), signInScope)
	}
	return q.Get("client_id")
}

// checkUpstream asserts that the upstream's last request carried sub's own token from the
// upstream's Hydra, that every Authorization header it got was such a token, and that no
// gateway token (mcpgate_at_, mcpgate_rt_) or other gateway credential ever reached it.
func (s *signInSetup) checkUpstream(t *testing.T, sub string, gatewayTokens ...string) {
	t.Helper()
	seen := s.up.Seen()
	if len(seen) == 0 {
		t.Fatal("the upstream authorized no request")
	}
	last := seen[len(seen)-1]
	if last.Subject != sub {
		t.Errorf("the upstream's last token belongs to %q, want %q", last.Subject, sub)
	}
	if in := s.upHydra.Introspect(t, last.Token); in.Subject != sub || !slices.Contains(in.Audience, s.up.URL) {
		t.Errorf("the token at the upstream: subject %q audience %v, want %q and %s", in.Subject, in.Audience, sub, s.up.URL)
	}
	accepted := map[string]bool{}
	for _, sn := range seen {
		accepted["Bearer "+sn.Token] = true
	}
	for i, h := range s.up.Headers() {
		if a := h.Get("Authorization"); a != "" && !accepted[a] {
			t.Errorf("request %d to the upstream carried an Authorization header that is no upstream token the upstream accepted", i)
		}
		for name, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, "mcpgate_at_") || strings.Contains(v, "mcpgate_rt_") || strings.Contains(v, "mcpgate_ac_") {
					t.Errorf("request %d to the upstream carried a gateway token in %s", i, name)
				}
				for _, gt := range gatewayTokens {
					if gt != "" && strings.Contains(v, gt) {
						t.Errorf("request %d to the upstream carried the client's gateway token in %s", i, name)
					}
				}
			}
		}
	}
}

// checkLogs fails the test if the gateway's log holds a token, code or secret of the flow.
func (s *signInSetup) checkLogs(t *testing.T, secrets map[string]string) {
	t.Helper()
	logs := s.gw.Logs()
	secrets["the gateway's client secret at the IdP"] = s.idpClient.Secret
	for i, sn := range s.up.Seen() {
		secrets[fmt.Sprintf("upstream token %d", i)] = sn.Token
	}
	for what, v := range secrets {
		if v == "" {
			t.Errorf("checking the log: %s is empty", what)
		} else if strings.Contains(logs, v) {
			t.Errorf("%s is in the gateway's log", what)
		}
	}
	for _, prefix := range []string{"mcpgate_at_", "mcpgate_rt_", "mcpgate_ac_"} {
		if strings.Contains(logs, prefix) {
			t.Errorf("the gateway's log holds a %s… value", prefix)
		}
	}
}

// revoke posts an RFC 7009 revocation of token for the public client clientID.
func (s *signInSetup) revoke(t *testing.T, token, clientID string) int {
	t.Helper()
	resp, err := http.PostForm(s.gw.URL("/__mcpgate/oauth/revoke"), url.Values{"token": {token}, "client_id": {clientID}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// checkChallenge checks the route's answer to an MCP request with token ("" for none): 401 with
// the sign-in challenge, and reason (the problem's reasonCode).
func (s *signInSetup) checkChallenge(t *testing.T, what, token, reason string) {
	t.Helper()
	var headers []string
	if token != "" {
		headers = []string{"Authorization", "Bearer " + token}
	}
	status, challenge, doc := rawPost(t, s.url, headers...)
	prm := strings.Replace(s.url, signInPath, "/.well-known/oauth-protected-resource"+signInPath, 1)
	want := `Bearer realm="OAuth", resource_metadata="` + prm + `", scope="` + signInScope + `"`
	if token != "" {
		want += `, error="invalid_token"`
	}
	if status != http.StatusUnauthorized || doc["reasonCode"] != reason || !strings.HasPrefix(challenge, want) {
		t.Errorf("%s: status %d reason %v challenge %q, want 401 %s with %s…", what, status, doc["reasonCode"], challenge, reason, want)
	}
}

// checkMetadata checks the protected-resource and authorization-server metadata the clients
// discover: the route is its own authorization server.
func (s *signInSetup) checkMetadata(t *testing.T) {
	t.Helper()
	get := func(u string, v any) {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d: %v", u, resp.StatusCode, err)
		}
	}
	var prm oauthex.ProtectedResourceMetadata
	get(s.gw.URL("/.well-known/oauth-protected-resource"+signInPath), &prm)
	if prm.Resource != s.url || !slices.Equal(prm.AuthorizationServers, []string{s.url}) || !slices.Equal(prm.ScopesSupported, []string{signInScope}) ||
		prm.ResourceName != signInSummary {
		t.Errorf("protected-resource metadata %+v, want the route %s as its own authorization server", prm, s.url)
	}
	var asm oauthex.AuthServerMeta
	get(s.gw.URL("/.well-known/oauth-authorization-server"+signInPath), &asm)
	if asm.Issuer != s.url || asm.AuthorizationEndpoint != s.gw.URL("/__mcpgate/oauth/authorize"+signInPath) ||
		asm.TokenEndpoint != s.gw.URL("/__mcpgate/oauth/token") || asm.RegistrationEndpoint != s.gw.URL("/__mcpgate/oauth/register") ||
		asm.RevocationEndpoint != s.gw.URL("/__mcpgate/oauth/revoke") || !slices.Equal(asm.CodeChallengeMethodsSupported, []string{"S256"}) ||
		!asm.ClientIDMetadataDocumentSupported || !asm.AuthorizationResponseIssParameterSupported {
		t.Errorf("authorization-server metadata %+v", asm)
	}
}

// signInGoClient is the Go SDK client with its OAuth handler and what the test watches of it.
type signInGoClient struct {
	handler  *auth.AuthorizationCodeHandler
	redirect *signInRedirect
	authURLs chan string
	// oauth records the handler's own requests (metadata, registration, token); mcp the MCP ones.
	oauth, mcp *signInRecorder
	// ts is the token source the handler made after the code exchange (nil before; without
	// expirable, the SDK's default one is used and ts stays nil).
	mu sync.Mutex
	ts *signInTokenSource
}

// newSignInGoClient builds the handler: DCR, or the client ID metadata document (cimd true).
// With expirable, its token source is a signInTokenSource the test can expire.
func newSignInGoClient(t *testing.T, s *signInSetup, cimd, expirable bool) *signInGoClient {
	t.Helper()
	c := &signInGoClient{redirect: startSignInRedirect(t), authURLs: make(chan string, 4), oauth: &signInRecorder{}, mcp: &signInRecorder{}}
	cfg := &auth.AuthorizationCodeHandlerConfig{
		RedirectURL:              c.redirect.URL,
		AuthorizationCodeFetcher: c.redirect.fetcher(c.authURLs),
		Client:                   &http.Client{Transport: c.oauth, Timeout: 30 * time.Second},
	}
	if cimd {
		s.cimd.publish(t, "mcpgate e2e Go CIMD client", c.redirect.URL)
		cfg.ClientIDMetadataDocumentConfig = &auth.ClientIDMetadataDocumentConfig{URL: s.cimd.URL}
	} else {
		cfg.DynamicClientRegistrationConfig = &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			ClientName: "mcpgate e2e Go client", RedirectURIs: []string{c.redirect.URL},
			GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			TokenEndpointAuthMethod: "none", Scope: signInScope,
		}}
	}
	if expirable {
		cfg.NewTokenSource = func(ctx context.Context, oc *oauth2.Config, tok *oauth2.Token) (oauth2.TokenSource, error) {
			ts := &signInTokenSource{ctx: ctx, cfg: oc, tok: tok}
			c.mu.Lock()
			c.ts = ts
			c.mu.Unlock()
			return ts, nil
		}
	}
	h, err := auth.NewAuthorizationCodeHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.handler = h
	return c
}

func (c *signInGoClient) tokenSource() *signInTokenSource {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ts
}

// token returns the handler's current token (without refreshing a live one).
func (c *signInGoClient) token(t *testing.T) *oauth2.Token {
	t.Helper()
	ts, err := c.handler.TokenSource(context.Background())
	if err != nil || ts == nil {
		t.Fatalf("the handler has no token source: %v", err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	return tok
}

// signIn connects the client, which is told to sign in; the person does so in Chromium. It
// returns the session, the client_id and the authorization response.
func (c *signInGoClient) signIn(t *testing.T, ctx context.Context, s *signInSetup, want signInExpect) (*mcp.ClientSession, string, *url.URL) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "signin-e2e-go-client", Version: "1.0.0"}, nil)
	transport := &mcp.StreamableClientTransport{Endpoint: s.url, OAuthHandler: c.handler, DisableStandaloneSSE: true,
		HTTPClient: &http.Client{Transport: c.mcp, Timeout: 30 * time.Second}}
	type connected struct {
		session *mcp.ClientSession
		err     error
	}
	done := make(chan connected, 1)
	go func() {
		session, err := client.Connect(ctx, transport, nil)
		done <- connected{session, err}
	}()
	var authURL string
	select {
	case authURL = <-c.authURLs:
	case r := <-done:
		t.Fatalf("the client connected without signing in: %v", r.err)
	case <-ctx.Done():
		t.Fatal("the client did not ask the person to sign in in time")
	}
	want.redirectURI = c.redirect.URL
	clientID := s.checkAuthorizeURL(t, authURL, c.redirect.URL)
	back := s.signInInBrowser(t, authURL, want)
	var r connected
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("the client did not finish connecting after the sign-in")
	}
	if r.err != nil {
		t.Fatalf("connecting after the sign-in: %v", r.err)
	}
	t.Cleanup(func() { _ = r.session.Close() })
	return r.session, clientID, back
}

// checkDiscovery checks the MCP and OAuth requests of the first sign-in: the 401 challenge, the
// metadata, the registration (DCR only) and the code exchange, all at the gateway.
func (c *signInGoClient) checkDiscovery(t *testing.T, s *signInSetup, dcr bool) {
	t.Helper()
	mcpReqs := c.mcp.all()
	prm := s.gw.URL("/.well-known/oauth-protected-resource" + signInPath)
	if len(mcpReqs) == 0 || mcpReqs[0].Status != http.StatusUnauthorized ||
		mcpReqs[0].Challenge != `Bearer realm="OAuth", resource_metadata="`+prm+`", scope="`+signInScope+`"` {
		t.Errorf("the client's first MCP request: %+v, want 401 with the sign-in challenge", mcpReqs)
	}
	if got := c.oauth.find(http.MethodGet, "/.well-known/oauth-protected-resource"+signInPath, ""); len(got) == 0 || got[0].Status != 200 {
		t.Errorf("protected-resource metadata fetches %+v, want 200", got)
	}
	if got := c.oauth.find(http.MethodGet, "/.well-known/oauth-authorization-server"+signInPath, ""); len(got) == 0 || got[0].Status != 200 {
		t.Errorf("authorization-server metadata fetches %+v, want 200", got)
	}
	reg := c.oauth.find(http.MethodPost, "/__mcpgate/oauth/register", "")
	switch {
	case dcr && (len(reg) != 1 || reg[0].Status != http.StatusCreated):
		t.Errorf("registrations %+v, want one 201", reg)
	case !dcr && len(reg) != 0:
		t.Errorf("registrations %+v, want none (the client ID metadata document identifies the client)", reg)
	}
	if got := c.oauth.find(http.MethodPost, "/__mcpgate/oauth/token", "authorization_code"); len(got) != 1 || got[0].Status != 200 {
		t.Errorf("code exchanges %+v, want one 200", got)
	}
}

// TestSignInGoSDKClient: the official Go SDK client (StreamableClientTransport with
// auth.AuthorizationCodeHandler) signs a person in through mcpgate, once registered by DCR and
// once by a client ID metadata document, each with its own person; tools/call reaches the
// upstream with that person's own upstream token; the client refreshes; after revocation the next
// call is 401 and the SDK starts a new sign-in.
func TestSignInGoSDKClient(t *testing.T) {
	zoe := signInPerson{idp: "zoe", upstream: "zoe-at-upstream"}
	s := startSignInSetup(t, zoe, 0)
	s.checkChallenge(t, "no token", "", "missing_token")
	s.checkMetadata(t)

	for _, tc := range []struct {
		name   string
		cimd   bool
		person signInPerson
	}{
		{"DCR", false, zoe},
		{"CIMD", true, signInPerson{idp: "maria", upstream: "maria-at-upstream"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), signInTimeout)
			defer cancel()
			s.idp.SetSubject(tc.person.idp)
			s.upHydra.SetSubject(tc.person.upstream)
			idpCodes := s.idp.TokenCalls("authorization_code")
			c := newSignInGoClient(t, s, tc.cimd, true)
			want := signInExpect{person: tc.person, clientName: "mcpgate e2e Go client", connect: true}
			if tc.cimd {
				want.clientName, want.verified = "mcpgate e2e Go CIMD client", true
			}
			session, clientID, back := c.signIn(t, ctx, s, want)
			switch {
			case tc.cimd && clientID != s.cimd.URL:
				t.Errorf("client_id %q, want the metadata document's URL %s", clientID, s.cimd.URL)
			case !tc.cimd && !strings.HasPrefix(clientID, "dcr:"):
				t.Errorf("client_id %q, want a dcr: registration", clientID)
			}
			if tc.cimd && s.cimd.fetchCount() == 0 {
				t.Error("the gateway never fetched the client ID metadata document")
			}
			if n := s.idp.TokenCalls("authorization_code") - idpCodes; n != 1 {
				t.Errorf("%d code exchanges at the IdP, want the gateway's one", n)
			}
			c.checkDiscovery(t, s, !tc.cimd)

			if text, err := callText(t, ctx, session, "whoami"); err != nil || text != "subject="+tc.person.upstream {
				t.Fatalf("whoami = %q, %v; want subject=%s", text, err, tc.person.upstream)
			}
			ts := c.tokenSource()
			if ts == nil {
				t.Fatal("the handler made no token source")
			}
			first, _ := ts.current()
			if !strings.HasPrefix(first.AccessToken, "mcpgate_at_") || !strings.HasPrefix(first.RefreshToken, "mcpgate_rt_") ||
				first.TokenType != "Bearer" || time.Until(first.Expiry) < 10*time.Minute {
				t.Errorf("tokens: access %.12q… refresh %.12q… type %q expiring in %v, want the gateway's own, 15 minutes",
					first.AccessToken, first.RefreshToken, first.TokenType, time.Until(first.Expiry).Round(time.Second))
			}
			s.checkUpstream(t, tc.person.upstream, first.AccessToken, first.RefreshToken)
			t.Logf("%s: %s signed in (client %s); the upstream has authorized %d requests so far, the last with %s's own token",
				tc.name, tc.person.idp, clientID, len(s.up.Seen()), tc.person.upstream)

			// Refresh: once the client considers its access token expired, the SDK's next request
			// refreshes it (grant_type=refresh_token, rotating the refresh token) and goes on.
			ts.expire()
			if text, err := callText(t, ctx, session, "whoami"); err != nil || text != "subject="+tc.person.upstream {
				t.Fatalf("whoami after the refresh = %q, %v", text, err)
			}
			second, refreshes := ts.current()
			if refreshes != 1 || second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken ||
				!strings.HasPrefix(second.RefreshToken, "mcpgate_rt_") {
				t.Errorf("after the refresh: %d refreshes, new access token %v, new refresh token %v; want 1, rotated both",
					refreshes, second.AccessToken != first.AccessToken, second.RefreshToken != first.RefreshToken)
			}
			if got := c.oauth.find(http.MethodPost, "/__mcpgate/oauth/token", "refresh_token"); len(got) != 1 || got[0].Status != 200 {
				t.Errorf("refresh requests %+v, want one 200", got)
			}
			s.checkUpstream(t, tc.person.upstream, first.AccessToken, first.RefreshToken, second.AccessToken, second.RefreshToken)

			// Revoke: the grant ends; the gateway refuses the access token at once, and the SDK,
			// told 401, starts a new sign-in (which the person declines here).
			if status := s.revoke(t, second.RefreshToken, clientID); status != http.StatusOK {
				t.Fatalf("revocation: HTTP %d, want 200", status)
			}
			s.checkChallenge(t, "the revoked grant's access token", second.AccessToken, "revoked")
			seenBefore := len(s.up.Seen())
			mcpBefore := len(c.mcp.all())
			c.redirect.decline()
			if _, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}); err == nil {
				t.Error("whoami after the revocation succeeded")
			}
			if after := c.mcp.all()[mcpBefore:]; len(after) == 0 || after[0].Status != http.StatusUnauthorized ||
				!strings.Contains(after[0].Challenge, `error="invalid_token"`) {
				t.Errorf("the client's requests after the revocation: %+v, want 401 invalid_token first", after)
			}
			select {
			case u := <-c.authURLs:
				s.checkAuthorizeURL(t, u, c.redirect.URL)
			default:
				t.Error("the SDK did not start a new sign-in after the 401")
			}
			if n := len(s.up.Seen()); n != seenBefore {
				t.Errorf("the upstream got %d requests after the revocation, want none", n-seenBefore)
			}
			s.checkLogs(t, map[string]string{
				"the first access token": first.AccessToken, "the first refresh token": first.RefreshToken,
				"the refreshed access token": second.AccessToken, "the refreshed refresh token": second.RefreshToken,
				"the authorization code": back.Query().Get("code"), "the client's state": back.Query().Get("state"),
			})
		})
	}
}

// TestSignInAccessTokenExpiry: the gateway's access token really expires (after the shortest
// lifetime of 15 s): the gateway refuses it (401 expired), and the Go SDK's own
// token source, with nothing of the test's in between, refreshes it on the next call.
func TestSignInAccessTokenExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 15 seconds for the access token to expire")
	}
	ada := signInPerson{idp: "ada", upstream: "ada-at-upstream"}
	s := startSignInSetup(t, ada, signInMinAccessTTL)
	ctx, cancel := context.WithTimeout(context.Background(), signInTimeout+signInMinAccessTTL*time.Second)
	defer cancel()
	c := newSignInGoClient(t, s, false, false)
	session, _, _ := c.signIn(t, ctx, s, signInExpect{person: ada, clientName: "mcpgate e2e Go client", connect: true})
	if text, err := callText(t, ctx, session, "whoami"); err != nil || text != "subject="+ada.upstream {
		t.Fatalf("whoami = %q, %v", text, err)
	}
	first := c.token(t)
	if d := time.Until(first.Expiry); d > signInMinAccessTTL*time.Second || d < signInMinAccessTTL*time.Second-15*time.Second {
		t.Fatalf("the access token expires in %v, want about %ds", d.Round(time.Second), signInMinAccessTTL)
	}

	// Wait for the expiry the token response announced, then for the gateway to refuse the token.
	select {
	case <-time.After(time.Until(first.Expiry)):
	case <-ctx.Done():
		t.Fatal("timed out before the expiry")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, _, doc := rawPost(t, s.url, "Authorization", "Bearer "+first.AccessToken)
		if status == http.StatusUnauthorized && doc["reasonCode"] == "expired" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the access token still answers %d %v 5 s after its announced expiry", status, doc["reasonCode"])
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.checkChallenge(t, "the expired access token", first.AccessToken, "expired")
	t.Logf("the gateway refuses the access token as expired %v after its announced expiry", time.Since(first.Expiry).Round(100*time.Millisecond))

	if text, err := callText(t, ctx, session, "whoami"); err != nil || text != "subject="+ada.upstream {
		t.Fatalf("whoami after the expiry = %q, %v; want the SDK to refresh and go on", text, err)
	}
	second := c.token(t)
	if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
		t.Error("the SDK went on without new tokens")
	}
	if got := c.oauth.find(http.MethodPost, "/__mcpgate/oauth/token", "refresh_token"); len(got) != 1 || got[0].Status != 200 {
		t.Errorf("refresh requests %+v, want one 200", got)
	}
	for _, e := range c.mcp.all()[1:] {
		if e.Status == http.StatusUnauthorized {
			t.Errorf("the client got 401 after signing in (%+v): it should have refreshed before sending the expired token", e)
		}
	}
	s.checkUpstream(t, ada.upstream, first.AccessToken, second.AccessToken)
}

// signInTSLine is one JSON line node/signin-client.mjs prints.
type signInTSLine struct {
	Phase string `json:"phase"`
	URL   string `json:"url"`
	Text  string `json:"text"`
	Error string `json:"error"`

	Challenge        string `json:"challenge"`
	ResourceMetadata struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	} `json:"resourceMetadata"`
	ClientID string   `json:"clientId"`
	Tools    []string `json:"tools"`
	Tokens   struct {
		AccessPrefix  string `json:"accessPrefix"`
		RefreshPrefix string `json:"refreshPrefix"`
		TokenType     string `json:"tokenType"`
		ExpiresIn     int    `json:"expiresIn"`
		Scope         string `json:"scope"`
	} `json:"tokens"`

	Result         string `json:"result"`
	AccessChanged  bool   `json:"accessChanged"`
	RefreshChanged bool   `json:"refreshChanged"`

	RevokeStatus      int      `json:"revokeStatus"`
	Challenges        []string `json:"challenges"`
	RefreshStatuses   []int    `json:"refreshStatuses"`
	Invalidated       []string `json:"invalidated"`
	Reauthorization   string   `json:"reauthorization"`
	UnauthorizedError bool     `json:"unauthorizedError"`
}

// TestSignInTypeScriptClient: the TypeScript SDK's client (StreamableHTTPClientTransport with an
// OAuthClientProvider, DCR) does the same, driven line by line: node/signin-client.mjs prints the
// authorization URL, Chromium signs the person in, the script's redirect URI gets the code, and
// the script calls a tool, refreshes with the SDK's auth(), revokes and calls again.
func TestSignInTypeScriptClient(t *testing.T) {
	env := nodeenv.Get(t)
	kim := signInPerson{idp: "kim", upstream: "kim-at-upstream"}
	s := startSignInSetup(t, kim, 0)
	ctx, cancel := context.WithTimeout(context.Background(), signInTimeout)
	defer cancel()

	cmd := env.Command(ctx, nil, "signin-client.mjs", s.url)
	run := startScript[signInTSLine](t, ctx, cancel, "signin-client.mjs", cmd)

	l := run.next("authorize")
	u, err := url.Parse(l.URL)
	if err != nil {
		t.Fatal(err)
	}
	redirectURI := u.Query().Get("redirect_uri")
	if ru, err := url.Parse(redirectURI); err != nil || ru.Scheme != "http" || ru.Hostname() != "127.0.0.1" || ru.Path != "/callback" {
		t.Fatalf("redirect_uri %q, want the script's loopback callback", redirectURI)
	}
	clientID := s.checkAuthorizeURL(t, l.URL, redirectURI)
	if !strings.HasPrefix(clientID, "dcr:") {
		t.Errorf("client_id %q, want a dcr: registration", clientID)
	}
	back := s.signInInBrowser(t, l.URL, signInExpect{person: kim, clientName: "mcpgate e2e TypeScript client", redirectURI: redirectURI, connect: true})

	res := run.next("result")
	if res.Text != "subject="+kim.upstream {
		t.Errorf("whoami = %q, want subject=%s", res.Text, kim.upstream)
	}
	prm := s.gw.URL("/.well-known/oauth-protected-resource" + signInPath)
	if res.Challenge != `Bearer realm="OAuth", resource_metadata="`+prm+`", scope="`+signInScope+`"` {
		t.Errorf("the script's first challenge %q", res.Challenge)
	}
	if res.ResourceMetadata.Resource != s.url || !slices.Equal(res.ResourceMetadata.AuthorizationServers, []string{s.url}) {
		t.Errorf("the script's resource metadata %+v, want the route as its own authorization server", res.ResourceMetadata)
	}
	if res.ClientID != clientID {
		t.Errorf("the script registered %q, the authorization URL names %q", res.ClientID, clientID)
	}
	if !slices.Contains(res.Tools, "whoami") {
		t.Errorf("tools/list %v, want the upstream's whoami", res.Tools)
	}
	tk := res.Tokens
	if tk.AccessPrefix != "mcpgate_at_" || tk.RefreshPrefix != "mcpgate_rt_" || !strings.EqualFold(tk.TokenType, "bearer") ||
		tk.ExpiresIn < 890 || tk.ExpiresIn > 900 || tk.Scope != signInScope {
		t.Errorf("tokens %+v, want the gateway's own, 15 minutes, %s", tk, signInScope)
	}
	s.checkUpstream(t, kim.upstream)

	run.say("refresh")
	ref := run.next("refreshed")
	if ref.Result != "AUTHORIZED" || !ref.AccessChanged || !ref.RefreshChanged || ref.Text != "subject="+kim.upstream {
		t.Errorf("refresh: %+v, want AUTHORIZED with both tokens rotated and whoami working", ref)
	}
	s.checkUpstream(t, kim.upstream)

	seenBefore := len(s.up.Seen())
	run.say("revoke")
	rev := run.next("revoked")
	if rev.Error != "" {
		t.Errorf("the call after the revocation failed otherwise than with UnauthorizedError: %s", rev.Error)
	}
	if rev.RevokeStatus != http.StatusOK {
		t.Errorf("revocation: HTTP %d, want 200", rev.RevokeStatus)
	}
	if len(rev.Challenges) == 0 || !strings.Contains(rev.Challenges[0], `error="invalid_token"`) {
		t.Errorf("challenges after the revocation %q, want 401 invalid_token", rev.Challenges)
	}
	if !slices.Equal(rev.RefreshStatuses, []int{http.StatusBadRequest}) || !slices.Contains(rev.Invalidated, "tokens") {
		t.Errorf("after the 401 the SDK's refresh answered %v and it invalidated %v; want one 400 (invalid_grant) and the tokens dropped", rev.RefreshStatuses, rev.Invalidated)
	}
	if !rev.UnauthorizedError || rev.Reauthorization == "" {
		t.Errorf("after the revocation: %+v, want UnauthorizedError and a new sign-in", rev)
	} else {
		s.checkAuthorizeURL(t, rev.Reauthorization, redirectURI)
	}
	if n := len(s.up.Seen()); n != seenBefore {
		t.Errorf("the upstream got %d requests after the revocation, want none", n-seenBefore)
	}

	run.finish()
	s.checkLogs(t, map[string]string{"the authorization code": back.Query().Get("code"), "the client's state": back.Query().Get("state")})
}
