package e2e

// Connect end to end, as a person would (issue 5): the built mcpgate binary with api-key-inbound
// (a key from `mcpgate keys create`) and mcp-token-exchange-inbound (user-oauth, automatic client
// registration = DCR at a real Ory Hydra) in front of an OAuth-protected Go SDK MCP server
// (internal/testutil/mcpupstream: verifies Hydra tokens by introspection, audience included). An
// MCP client (the Go SDK declaring URL elicitation, and the TypeScript SDK through
// node/connect-client.mjs) is refused with connect-required (-32042); headless Chromium opens the
// link in a fresh profile, signs in on the gateway's API-key form (the connect page acts only for
// the key's owner), approves the consent page, signs in at Hydra's login app and lands on the
// success page; the client retries and the upstream sees the user's own Hydra token. Screenshots
// of the API-key sign-in, consent, success and error pages go to test-artifacts/
// (MCPGATE_TEST_ARTIFACTS).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/testutil/browser"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/testutil/mcpupstream"
	"github.com/mcpgate/mcpgate/internal/testutil/nodeenv"
)

// Names of the connect test's configuration.
const (
	connectUpstreamID  = "hydra-up"
	connectDisplayName = "Hydra Upstream"
	connectOperationID = "hydra-up-mcp"
	connectPath        = "/mcp/hydra-up"
	connectExtraScope  = "admin"
	// connectProtocol is the MCP version the clients speak: the last one in which connect-required
	// is the -32042 error (2026-07-28 answers input_required instead).
	connectProtocol = "2025-11-25"
	// connectTimeout bounds one test's MCP calls and browser flow.
	connectTimeout = 2 * time.Minute
)

// connectSetup is Hydra, the OAuth-protected upstream and mcpgate in front of it.
type connectSetup struct {
	hydra *hydra.Server
	up    *mcpupstream.Server
	gw    *gateway
	// key is the API key of the gateway consumer "e2e-user".
	key string
	// url is the MCP route through mcpgate.
	url string

	addr, dataDir string
	// stop stops the running gateway; earlierLogs holds the logs of gateways restart stopped.
	stop        func()
	earlierLogs string
}

// startConnectSetup starts Hydra (scopes mcp and admin), the upstream (admin_report needs admin),
// creates an API key with `mcpgate keys create` on a fresh data dir and serves the route with
// api-key-inbound + mcp-token-exchange-inbound + McpProxyHandler.
func startConnectSetup(t *testing.T) *connectSetup {
	t.Helper()
	return startConnectSetupAS(t, "")
}

// startConnectSetupAS is startConnectSetup with the upstream's metadata naming issuer as its
// authorization server instead of Hydra (when not empty).
func startConnectSetupAS(t *testing.T, issuer string) *connectSetup {
	t.Helper()
	if serveMissing != "" {
		t.Skip(serveMissing)
	}
	h := hydra.Start(t, hydra.Options{Scopes: []string{"mcp", connectExtraScope}})
	if issuer == "" {
		issuer = h.Issuer()
	}
	up := mcpupstream.Start(t, mcpupstream.Options{
		Issuer: issuer, IntrospectURL: h.AdminURL + "/admin/oauth2/introspect",
		ExtraScope: connectExtraScope,
	})
	dataDir := filepath.Join(t.TempDir(), "data")
	key := strings.TrimSpace(mcpgateCLI(t, dataDir, "keys", "create", "--consumer", "e2e-user"))
	if !apiKeyPattern.MatchString(key) {
		t.Fatalf("keys create printed %q, want one key", key)
	}
	addr := freeLoopbackAddr(t)
	gw, stop := startServeConnect(t, addr, dataDir, up.URL)
	return &connectSetup{hydra: h, up: up, gw: gw, key: key, url: gw.URL(connectPath), addr: addr, dataDir: dataDir, stop: stop}
}

// restart stops the gateway and serves the same project and data dir on the same address again.
func (s *connectSetup) restart(t *testing.T) {
	t.Helper()
	s.stop()
	s.earlierLogs += s.gw.Logs()
	s.gw, s.stop = startServeConnect(t, s.addr, s.dataDir, s.up.URL)
}

// startServeConnect writes the project and runs `mcpgate serve` on addr with
// MCPGATE_SAFEHTTP_ALLOW=127.0.0.1, so OAuth calls to the loopback Hydra (plain http) are allowed.
// stop (also run when the test ends) stops it with SIGTERM and waits for it to exit.
func startServeConnect(t *testing.T, addr, dataDir, upstreamURL string) (gw *gateway, stop func()) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "project")
	routes := map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "connect e2e", "version": "1"},
		"paths": map[string]any{connectPath: map[string]any{"get,post": map[string]any{
			"operationId": connectOperationID,
			"summary":     "A Go SDK MCP server behind Ory Hydra",
			"x-zuplo-route": map[string]any{
				"corsPolicy": "none",
				"handler": map[string]any{
					"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpProxyHandler",
					"options": map[string]any{"rewritePattern": upstreamURL},
				},
				"policies": map[string]any{"inbound": []string{"api-key", "mcp-token-exchange-" + connectUpstreamID}},
			},
		}}},
	}
	policies := map[string]any{"policies": []any{
		map[string]any{
			"name": "api-key", "policyType": "api-key-inbound",
			"handler": map[string]any{"module": "$import(@zuplo/runtime)", "export": "ApiKeyInboundPolicy", "options": map[string]any{}},
		},
		map[string]any{
			"name": "mcp-token-exchange-" + connectUpstreamID, "policyType": "mcp-token-exchange-inbound",
			"handler": map[string]any{"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpTokenExchangeInboundPolicy",
				"options": map[string]any{
					"displayName": connectDisplayName, "summary": "A Go SDK MCP server whose tokens Ory Hydra issues.",
					"authMode": "user-oauth", "clientRegistration": map[string]any{"mode": "auto"},
				}},
		},
	}}
	writeFiles(t, cfg, map[string]any{
		"zuplo.jsonc":            map[string]any{"version": 1, "compatibilityDate": "2026-03-01"},
		"config/routes.oas.json": routes,
		"config/policies.json":   policies,
	})

	return serveGateway(t, []string{"serve", "--config", cfg, "--data-dir", dataDir, "--listen", addr, "--log-level", "debug"},
		"MCPGATE_SAFEHTTP_ALLOW=127.0.0.1")
}

// connectRequired is the part of a -32042 error the tests check.
type connectRequired struct {
	Code    int64
	Message string
	Data    struct {
		Elicitations []struct {
			Mode          string `json:"mode"`
			ElicitationID string `json:"elicitationId"`
			URL           string `json:"url"`
			Message       string `json:"message"`
		} `json:"elicitations"`
		State            string   `json:"state"`
		UpstreamServerID string   `json:"upstreamServerId"`
		OperationID      string   `json:"operationId"`
		AuthURL          string   `json:"authUrl"`
		NextAction       string   `json:"nextAction"`
		AuthProfileID    string   `json:"authProfileId"`
		Scopes           []string `json:"scopes"`
		ConnectRequired  struct {
			State   string `json:"state"`
			AuthURL string `json:"authUrl"`
		} `json:"connectRequired"`
	}
}

// check asserts the connect-required payload (docs/architecture.md#connect-required-answers) for
// state and returns the link.
func (cr *connectRequired) check(t *testing.T, s *connectSetup, state string) string {
	t.Helper()
	d := cr.Data
	if cr.Code != mcp.CodeURLElicitationRequired {
		t.Fatalf("error code %d (%s), want -32042", cr.Code, cr.Message)
	}
	if len(d.Elicitations) != 1 {
		t.Fatalf("elicitations %+v, want one", d.Elicitations)
	}
	el := d.Elicitations[0]
	if el.Mode != "url" || el.URL == "" || el.URL != d.AuthURL || el.ElicitationID == "" {
		t.Errorf("elicitations[0] = %+v, want mode url with the authUrl %s and an id", el, d.AuthURL)
	}
	if d.State != state || d.ConnectRequired.State != state || d.ConnectRequired.AuthURL != d.AuthURL {
		t.Errorf("state %q, connectRequired %+v, want %q and the same authUrl", d.State, d.ConnectRequired, state)
	}
	if d.UpstreamServerID != connectUpstreamID || d.OperationID != connectOperationID || d.NextAction != "redirect" ||
		d.AuthProfileID != connectUpstreamID+":user-oauth" {
		t.Errorf("connect-required data %+v", d)
	}
	if !strings.Contains(cr.Message, d.AuthURL) {
		t.Errorf("message %q does not carry the URL (clients without URL elicitation show only the message)", cr.Message)
	}
	wantPrefix := s.gw.URL("/__mcpgate/auth/connections/" + connectUpstreamID + "/connect?")
	if !strings.HasPrefix(d.AuthURL, wantPrefix) {
		t.Errorf("authUrl %s, want it under %s", d.AuthURL, wantPrefix)
	}
	u, err := url.Parse(d.AuthURL)
	if err != nil || u.Query().Get("browserTicket") == "" || u.Query().Get("operationId") != connectOperationID {
		t.Errorf("authUrl %s: want browserTicket and operationId=%s", d.AuthURL, connectOperationID)
	}
	return d.AuthURL
}

// asConnectRequired extracts a -32042 error from a Go SDK call's error.
func asConnectRequired(t *testing.T, what string, err error) *connectRequired {
	t.Helper()
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) {
		t.Fatalf("%s: got %v, want a JSON-RPC error", what, err)
	}
	cr := &connectRequired{Code: werr.Code, Message: werr.Message}
	if err := json.Unmarshal(werr.Data, &cr.Data); err != nil {
		t.Fatalf("%s: decoding error data %s: %v", what, werr.Data, err)
	}
	return cr
}

// goClient returns the Go SDK client transport that sends the API key, as an MCP client
// configured with a static key does.
func (s *connectSetup) goTransport() *mcp.StreamableClientTransport {
	return s.goTransportWith(s.key)
}

// goTransportWith is goTransport with another API key.
func (s *connectSetup) goTransportWith(key string) *mcp.StreamableClientTransport {
	return &mcp.StreamableClientTransport{
		Endpoint:             s.url,
		HTTPClient:           &http.Client{Transport: headerTransport{"Authorization", "Bearer " + key}, Timeout: 30 * time.Second},
		DisableStandaloneSSE: true,
	}
}

// goConnect connects the Go SDK client through mcpgate.
func (s *connectSetup) goConnect(ctx context.Context) (*mcp.ClientSession, error) {
	return goClient("connect-e2e-go-client").Connect(ctx, s.goTransport(), &mcp.ClientSessionOptions{ProtocolVersion: connectProtocol})
}

// goClient is a Go SDK client that declares URL elicitation, as a client that can open a link
// for its user does: mcpgate answers it with -32042 (a client that does not declare it gets the
// fallback answers instead, fallback_test.go).
func goClient(name string) *mcp.Client {
	return mcp.NewClient(&mcp.Implementation{Name: name, Version: "1.0.0"}, &mcp.ClientOptions{
		Capabilities: &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}},
	})
}

// callText calls a tool and returns its only text content.
func callText(t *testing.T, ctx context.Context, session *mcp.ClientSession, tool string) (string, error) {
	t.Helper()
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}})
	if err != nil {
		return "", err
	}
	if res.IsError || len(res.Content) != 1 {
		t.Fatalf("tools/call %s: %+v", tool, res)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("tools/call %s: content %T", tool, res.Content[0])
	}
	return tc.Text, nil
}

// approveInBrowser opens the connect link in a fresh Chromium as a person would, with Hydra's
// login app set to sign in subject: the connect page acts only for the API key's owner, so the
// gateway first asks for the key (photographed, shot+"apikey-signin"); then it checks and
// photographs the consent page (shot+"consent"), approves, and checks and photographs the success
// page (shot+"connected"). It returns the consent page's scope list, newly requested scopes marked
// " (new)", and the callback URL the authorization server sent the browser to (with code and
// state).
func (s *connectSetup) approveInBrowser(t *testing.T, authURL, subject, shot string) (scopes []string, callback *url.URL) {
	t.Helper()
	return s.approveAs(t, authURL, "e2e-user", s.key, subject, shot)
}

// approveAs is approveInBrowser for a link issued to the API key consumer consumer, whose key is key.
func (s *connectSetup) approveAs(t *testing.T, authURL, consumer, key, subject, shot string) (scopes []string, callback *url.URL) {
	t.Helper()
	b := browser.New(t)
	// Hydra's login app signs in whoever its subject cookie names; the cookie belongs to its origin.
	b.Navigate(s.hydra.LoginURL + "/error")
	browser.Eval[string](b, `document.cookie = "`+hydra.SubjectCookie+`=`+subject+`; path=/"`)

	b.Navigate(authURL)
	signInWithAPIKey(t, b, key, authURL, shot+"apikey-signin")
	title := b.Text("h1")
	if !strings.HasSuffix(title, connectDisplayName) {
		t.Errorf("consent page title %q, want Connect/Reconnect %s", title, connectDisplayName)
	}
	if got := b.Text("dl.facts dd"); got != consumer {
		t.Errorf("consent page: connecting as %q, want the API key's consumer %s", got, consumer)
	}
	scopes = browser.Eval[[]string](b, `Array.from(document.querySelectorAll("ul.scopes li")).map(li => li.querySelector("code").innerText.trim() + (li.classList.contains("new") ? " (new)" : ""))`)
	b.Screenshot(shot + "consent")

	b.ClickNavigate(`button[name="decision"][value="approve"]`)
	// Approve → Hydra → login app → Hydra → consent app → Hydra → the gateway's callback: all
	// redirects, so the page that loaded is the callback's.
	u := b.CurrentURL()
	if !strings.HasPrefix(u, s.gw.URL("/__mcpgate/auth/connections/"+connectUpstreamID+"/callback?")) {
		b.Screenshot(shot + "unexpected")
		t.Fatalf("after approve the browser is at %s, want the gateway's callback", u)
	}
	if got, want := b.Text("h1"), connectDisplayName+" is connected"; got != want {
		b.Screenshot(shot + "unexpected")
		t.Fatalf("callback page says %q, want %q (page text: %s)", got, want, b.Text("main"))
	}
	b.Screenshot(shot + "connected")
	if n := browser.Eval[int](b, `document.querySelectorAll("form").length`); n != 0 {
		t.Errorf("the success page has %d forms, want none", n)
	}
	callback, err := url.Parse(u)
	if err != nil || callback.Query().Get("code") == "" || callback.Query().Get("state") == "" {
		t.Fatalf("callback URL %s: want code and state (%v)", u, err)
	}
	return scopes, callback
}

// signInWithAPIKey is what a person does on a connect link of an API-key user in a browser that
// is not signed in: the gateway shows its API-key sign-in form (photographed as shot, unless
// shot is ""), the person types the key and submits, and the gateway comes back to the link,
// link. A Chromium form post of the gateway's page (Origin: null, Sec-Fetch-Site: same-origin).
func signInWithAPIKey(t *testing.T, b *browser.Browser, key, link, shot string) {
	t.Helper()
	if h1 := b.Text("h1"); h1 != "Sign in with your API key" {
		t.Fatalf("the connect link shows %q at %s, want the API-key sign-in", h1, b.CurrentURL())
	}
	if u, err := url.Parse(b.CurrentURL()); err != nil || !strings.HasSuffix(u.Path, "/__mcpgate/oauth/login/api-key") || u.Query().Get("return") != link {
		t.Errorf("API-key sign-in at %s, want /__mcpgate/oauth/login/api-key returning to the link", b.CurrentURL())
	}
	if shot != "" {
		b.Screenshot(shot)
	}
	typeInto(t, b, "#key", key)
	b.ClickNavigate(`button[type="submit"]`)
	if u := b.CurrentURL(); u != link {
		t.Fatalf("after the API-key sign-in the browser is at %s (%q), want back at the link", u, b.Text("h1"))
	}
}

// checkLogs fails the test if the gateway's log holds any secret of the flow: the API key, an
// upstream token, a browser ticket, the authorization code or state
// (docs/architecture.md#never-logged).
func (s *connectSetup) checkLogs(t *testing.T, authURLs []string, callbacks []*url.URL) {
	t.Helper()
	logs := s.earlierLogs + s.gw.Logs()
	secrets := map[string]string{"the API key": s.key}
	for i, sn := range s.up.Seen() {
		secrets[fmt.Sprintf("upstream token %d", i)] = sn.Token
	}
	for i, a := range authURLs {
		if u, err := url.Parse(a); err == nil {
			secrets[fmt.Sprintf("browser ticket %d", i)] = u.Query().Get("browserTicket")
		}
	}
	for i, c := range callbacks {
		secrets[fmt.Sprintf("authorization code %d", i)] = c.Query().Get("code")
		secrets[fmt.Sprintf("state %d", i)] = c.Query().Get("state")
	}
	for what, v := range secrets {
		if v == "" {
			t.Errorf("checking the log: %s is empty", what)
		} else if strings.Contains(logs, v) {
			t.Errorf("%s is in the gateway's log", what)
		}
	}
}

// checkUpstream asserts that the upstream's last authorized request carried subject's own Hydra
// token and that no request ever carried the API key or the gateway's Authorization header.
func (s *connectSetup) checkUpstream(t *testing.T, subject string) {
	t.Helper()
	seen := s.up.Seen()
	if len(seen) == 0 {
		t.Fatal("the upstream authorized no request")
	}
	last := seen[len(seen)-1]
	if last.Subject != subject {
		t.Errorf("the upstream's last token belongs to %q, want %q", last.Subject, subject)
	}
	if in := s.hydra.Introspect(t, last.Token); in.Subject != subject || !slices.Contains(in.Audience, s.up.URL) {
		t.Errorf("the token at the upstream: subject %q audience %v, want %q and %s", in.Subject, in.Audience, subject, s.up.URL)
	}
	tokens := map[string]bool{}
	for _, sn := range seen {
		tokens["Bearer "+sn.Token] = true
	}
	headers := s.up.Headers()
	withAuth := 0
	for i, h := range headers {
		for name, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, s.key) {
					t.Errorf("request %d to the upstream carried the API key in %s", i, name)
				}
			}
		}
		if a := h.Get("Authorization"); a != "" {
			withAuth++
			if !tokens[a] {
				t.Errorf("request %d to the upstream carried an Authorization header that is no Hydra token the upstream accepted", i)
			}
		}
	}
	if withAuth == 0 || withAuth == len(headers) {
		t.Errorf("%d of %d upstream requests carried a token, want the first (not connected) without and later ones with", withAuth, len(headers))
	}
}

// TestConnectGoSDKClient: the Go SDK client is told to connect, Chromium connects, the retry
// reaches the upstream with the user's Hydra token. Then step-up: admin_report needs the extra
// scope, the upstream's 403 insufficient_scope becomes reconsent_required, the consent page lists
// the added scope, and after approving the retried call succeeds.
func TestConnectGoSDKClient(t *testing.T) {
	s := startConnectSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()

	// Not connected: the upstream refuses even initialize, and mcpgate answers for it.
	_, err := s.goConnect(ctx)
	cr := asConnectRequired(t, "initialize before connecting", err)
	authURL := cr.check(t, s, "authenticating")
	// The scopes come from the upstream's challenge (scope="mcp"), not its metadata (mcp admin).
	if !slices.Equal(cr.Data.Scopes, []string{"mcp"}) {
		t.Errorf("connect-required scopes %v, want the challenge's [mcp]", cr.Data.Scopes)
	}

	scopes, callback := s.approveInBrowser(t, authURL, "zoe-go", "")
	if !slices.Contains(scopes, "mcp") {
		t.Errorf("consent page lists scopes %q, want mcp among them", scopes)
	}

	session, err := s.goConnect(ctx)
	if err != nil {
		t.Fatalf("connecting after the browser flow: %v", err)
	}
	defer session.Close()
	text, err := callText(t, ctx, session, "whoami")
	if err != nil {
		t.Fatalf("whoami after connecting: %v", err)
	}
	if text != "subject=zoe-go" {
		t.Errorf("whoami = %q, want subject=zoe-go", text)
	}
	s.checkUpstream(t, "zoe-go")

	firstAuthURL := authURL
	t.Run("step-up", func(t *testing.T) {
		_, err := callText(t, ctx, session, "admin_report")
		cr := asConnectRequired(t, "admin_report without the admin scope", err)
		authURL := cr.check(t, s, "reconsent_required")
		if !slices.Contains(cr.Data.Scopes, connectExtraScope) || !slices.Contains(cr.Data.Scopes, "mcp") {
			t.Errorf("step-up scopes %v, want mcp and %s", cr.Data.Scopes, connectExtraScope)
		}
		scopes, stepCallback := s.approveInBrowser(t, authURL, "zoe-go", "stepup-")
		if !slices.Contains(scopes, connectExtraScope+" (new)") || !slices.Contains(scopes, "mcp") {
			t.Errorf("consent page lists %q, want mcp, and %s marked newly requested", scopes, connectExtraScope)
		}
		text, err := callText(t, ctx, session, "admin_report")
		if err != nil {
			t.Fatalf("admin_report after step-up: %v", err)
		}
		if text != "report for zoe-go" {
			t.Errorf("admin_report = %q, want report for zoe-go", text)
		}
		seen := s.up.Seen()
		if last := seen[len(seen)-1]; !slices.Contains(last.Scopes, connectExtraScope) {
			t.Errorf("the upstream's last token has scopes %v, want %s", last.Scopes, connectExtraScope)
		}
		s.checkUpstream(t, "zoe-go")
		s.checkLogs(t, []string{firstAuthURL, authURL}, []*url.URL{callback, stepCallback})
	})
	s.checkLogs(t, []string{authURL}, []*url.URL{callback})
}

// tsConnectLine is one JSON line node/connect-client.mjs prints.
type tsConnectLine struct {
	Phase   string          `json:"phase"`
	Code    int64           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
	Raw     json.RawMessage `json:"raw"`
	Text    string          `json:"text"`
	Error   string          `json:"error"`
}

// TestConnectTypeScriptClient: the same with the TypeScript SDK client, driven line by line:
// it prints the -32042 error, waits for the test to connect in Chromium, retries.
func TestConnectTypeScriptClient(t *testing.T) {
	env := nodeenv.Get(t)
	s := startConnectSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()

	cmd := env.Command(ctx, nil, "connect-client.mjs", s.url, s.key, "whoami")
	run := startScript[tsConnectLine](t, ctx, cancel, "connect-client.mjs", cmd)

	l := run.next("connect-required")
	// The SDK turns -32042 into UrlElicitationRequiredError and keeps only the elicitations of
	// the data; the script also records the raw JSON-RPC error it received.
	var raw struct {
		Code    int64           `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(l.Raw, &raw); err != nil {
		t.Fatalf("raw error %s: %v", l.Raw, err)
	}
	cr := &connectRequired{Code: raw.Code, Message: raw.Message}
	if err := json.Unmarshal(raw.Data, &cr.Data); err != nil {
		t.Fatalf("raw error data %s: %v", raw.Data, err)
	}
	authURL := cr.check(t, s, "authenticating")
	var sdkData struct {
		Elicitations []struct {
			URL string `json:"url"`
		} `json:"elicitations"`
	}
	if err := json.Unmarshal(l.Data, &sdkData); err != nil || l.Code != mcp.CodeURLElicitationRequired ||
		len(sdkData.Elicitations) != 1 || sdkData.Elicitations[0].URL != authURL || !strings.Contains(l.Message, authURL) {
		t.Errorf("the TypeScript SDK's error: code %d message %q data %s, want -32042 with the link", l.Code, l.Message, l.Data)
	}

	_, callback := s.approveInBrowser(t, authURL, "zoe-ts", "")
	run.say("connected")
	res := run.next("result")
	if res.Text != "subject=zoe-ts" {
		t.Errorf("whoami after connecting = %q, want subject=zoe-ts", res.Text)
	}
	run.finish()
	s.checkUpstream(t, "zoe-ts")
	s.checkLogs(t, []string{authURL}, []*url.URL{callback})
}

// connectLink asks for a tools/list through mcpgate with the API key and returns the link of the
// connect-required answer.
func (s *connectSetup) connectLink(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	_, err := s.goConnect(ctx)
	return asConnectRequired(t, "initialize before connecting", err).check(t, s, "authenticating")
}

// errorPage checks the browser error page's labelled details and returns them.
func errorPage(t *testing.T, b *browser.Browser) map[string]string {
	t.Helper()
	details := browser.Eval[map[string]string](b, `Object.fromEntries(Array.from(document.querySelectorAll("dl.details dt")).map(dt => [dt.innerText.trim(), dt.nextElementSibling.innerText.trim()]))`)
	for _, label := range []string{"Request ID", "Error code", "Reason"} {
		if v := details[label]; v == "" || v == "—" {
			t.Errorf("error page: %q is %q, want a value (details %v)", label, v, details)
		}
	}
	return details
}

// TestConnectErrorPages: what a person sees when connecting fails.
func TestConnectErrorPages(t *testing.T) {
	t.Run("authorization server down", func(t *testing.T) {
		s := startConnectSetup(t)
		authURL := s.connectLink(t)
		// The link was issued while Hydra worked (discovery is cached); now it is gone.
		if err := s.hydra.Close(); err != nil {
			t.Fatal(err)
		}
		b := browser.New(t)
		b.Navigate(authURL)
		signInWithAPIKey(t, b, s.key, authURL, "")
		b.ClickNavigate(`button[name="decision"][value="approve"]`)
		if h1 := b.Text("h1"); h1 != "Cannot connect "+connectDisplayName {
			t.Errorf("error page title %q", h1)
		}
		b.Screenshot("error")
		d := errorPage(t, b)
		// Unreachable is transient (internal/upstream: network errors are the upstream service's
		// bucket, not a setup problem), and the first call that needed Hydra was registration.
		if d["Category"] != "Upstream service response" || d["Error code"] != "registration_failed" ||
			!strings.Contains(d["Reason"], "could not reach the authorization server") {
			t.Errorf("error page details %v, want category Upstream service response, code registration_failed and a reason saying Hydra was unreachable", d)
		}
		if !strings.Contains(s.gw.Logs(), d["Request ID"]) {
			t.Errorf("request id %s of the error page is not in the gateway log", d["Request ID"])
		}
	})

	t.Run("upstream HTML error", func(t *testing.T) {
		s := startConnectSetup(t)
		// A web application firewall in front of the token endpoint answers the code exchange.
		const firewall = "Request blocked by the corporate firewall (incident 4711)."
		s.hydra.SetTokenInterceptor(func(w http.ResponseWriter, _ *http.Request, grant string) bool {
			if grant != "authorization_code" {
				return false
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `<!doctype html><title>Blocked</title><h1>Access denied</h1><p>%s</p><script>document.title="script ran"</script>`, firewall)
			return true
		})
		authURL := s.connectLink(t)
		b := browser.New(t)
		b.Navigate(s.hydra.LoginURL + "/error")
		browser.Eval[string](b, `document.cookie = "`+hydra.SubjectCookie+`=zoe-waf; path=/"`)
		b.Navigate(authURL)
		signInWithAPIKey(t, b, s.key, authURL, "")
		b.ClickNavigate(`button[name="decision"][value="approve"]`)
		if h1 := b.Text("h1"); h1 != "Connection failed" {
			t.Errorf("error page title %q", h1)
		}
		d := errorPage(t, b)
		if d["Category"] != "Upstream service response" || d["Error code"] != "token_exchange_failed" || !strings.Contains(d["Reason"], "HTTP 403") {
			t.Errorf("error page details %v, want category Upstream service response, code token_exchange_failed, a reason naming HTTP 403", d)
		}
		frames := b.FrameTexts()
		if len(frames) != 1 || !strings.Contains(frames[0], firewall) {
			t.Errorf("error page frames %q, want the upstream's HTML with %q", frames, firewall)
		}
		b.Screenshot("error-upstream-html")
		if title := browser.Eval[string](b, `document.title`); strings.Contains(title, "script ran") {
			t.Error("the upstream's script ran in the gateway's page")
		}
	})
}

// TestConnectInputRequired: a Go SDK client on MCP 2026-07-28 (the SDK's default), where -32042
// is retired. Connecting falls back to initialize (server/discover is refused too) and gets the
// -32042 link; after connecting, the session speaks 2026-07-28, so the step-up answer to
// admin_report is an input_required result with a URL elicitation. The SDK's multi-round-trip
// support hands it to the client's elicitation handler (here: approve in Chromium) and retries
// the call by itself, which then succeeds.
func TestConnectInputRequired(t *testing.T) {
	s := startConnectSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()

	elicited := make(chan *mcp.ElicitParams)
	approved := make(chan struct{})
	client := mcp.NewClient(&mcp.Implementation{Name: "connect-e2e-go-2026-client", Version: "1.0.0"}, &mcp.ClientOptions{
		Capabilities: &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}},
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			select {
			case elicited <- req.Params:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			select {
			case <-approved:
				return &mcp.ElicitResult{Action: "accept"}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	})

	_, err := client.Connect(ctx, s.goTransport(), nil)
	authURL := asConnectRequired(t, "connecting before connecting the upstream", err).check(t, s, "authenticating")
	_, firstCallback := s.approveInBrowser(t, authURL, "zoe-2026", "")
	session, err := client.Connect(ctx, s.goTransport(), nil)
	if err != nil {
		t.Fatalf("connecting after the browser flow: %v", err)
	}
	defer session.Close()
	if v := session.InitializeResult().ProtocolVersion; v != "2026-07-28" {
		t.Fatalf("negotiated MCP %s, want 2026-07-28 (this test is about input_required)", v)
	}
	if text, err := callText(t, ctx, session, "whoami"); err != nil || text != "subject=zoe-2026" {
		t.Fatalf("whoami = %q, %v; want subject=zoe-2026", text, err)
	}

	type callResult struct {
		res *mcp.CallToolResult
		err error
	}
	done := make(chan callResult, 1)
	go func() {
		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "admin_report", Arguments: map[string]any{}})
		done <- callResult{res, err}
	}()
	var el *mcp.ElicitParams
	select {
	case el = <-elicited:
	case r := <-done:
		t.Fatalf("admin_report finished without an elicitation: %+v, %v", r.res, r.err)
	case <-ctx.Done():
		t.Fatal("no elicitation in time")
	}
	if el.Mode != "url" || !strings.HasPrefix(el.URL, s.gw.URL("/__mcpgate/auth/connections/"+connectUpstreamID+"/connect?")) || el.Message == "" {
		t.Errorf("elicitation %+v, want a URL elicitation of the connect page with a message", el)
	}
	scopes, callback := s.approveInBrowser(t, el.URL, "zoe-2026", "stepup-")
	if !slices.Contains(scopes, connectExtraScope+" (new)") {
		t.Errorf("consent page lists %q, want %s marked newly requested", scopes, connectExtraScope)
	}
	close(approved)
	var r callResult
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("admin_report did not finish after the elicitation was accepted")
	}
	if r.err != nil {
		t.Fatalf("admin_report after the elicitation: %v", r.err)
	}
	if r.res.IsError || len(r.res.Content) != 1 {
		t.Fatalf("admin_report: %+v", r.res)
	}
	if tc, ok := r.res.Content[0].(*mcp.TextContent); !ok || tc.Text != "report for zoe-2026" {
		t.Errorf("admin_report content %+v, want report for zoe-2026", r.res.Content[0])
	}
	s.checkUpstream(t, "zoe-2026")
	s.checkLogs(t, []string{authURL, el.URL}, []*url.URL{firstCallback, callback})
}

// TestConnectDeclined: the person cancels on the consent page, or the authorization server
// refuses (access_denied); each ends on a clear page, and the client is still told to connect.
func TestConnectDeclined(t *testing.T) {
	s := startConnectSetup(t)

	b := browser.New(t)
	link := s.connectLink(t)
	b.Navigate(link)
	signInWithAPIKey(t, b, s.key, link, "")
	b.ClickNavigate(`button[name="decision"][value="cancel"]`)
	if h1 := b.Text("h1"); h1 != "Connection cancelled" {
		t.Errorf("after cancel the page says %q, want Connection cancelled", h1)
	}
	b.Screenshot("cancelled")

	s.hydra.SetDenyConsent(true)
	b = browser.New(t)
	link = s.connectLink(t)
	b.Navigate(link)
	signInWithAPIKey(t, b, s.key, link, "")
	b.ClickNavigate(`button[name="decision"][value="approve"]`)
	if h1, want := b.Text("h1"), connectDisplayName+" did not grant access"; h1 != want {
		t.Errorf("after access_denied the page says %q, want %q", h1, want)
	}
	b.Screenshot("denied")

	// Nothing was stored: the next call is told to connect again, as before.
	s.connectLink(t)
	if seen := s.up.Seen(); len(seen) != 0 {
		t.Errorf("the upstream authorized %d requests, want none", len(seen))
	}
}

// TestConnectSurvivesRestart: a connection is stored, encrypted, in the data dir: after the
// gateway restarts (same data dir, so the same development key), the user's calls carry their
// upstream token without connecting again. A second user, whose key was created while the
// gateway was down, connects their own upstream account with the client registration made before
// the restart (no second DCR at Hydra), and each user keeps getting their own token.
func TestConnectSurvivesRestart(t *testing.T) {
	s := startConnectSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	authURL := s.connectLink(t)
	_, callback := s.approveInBrowser(t, authURL, "zoe-restart", "")

	s.stop()
	key2 := strings.TrimSpace(mcpgateCLI(t, s.dataDir, "keys", "create", "--consumer", "e2e-user-2"))
	s.restart(t)
	session, err := s.goConnect(ctx)
	if err != nil {
		t.Fatalf("connecting after the restart: %v", err)
	}
	defer session.Close()
	if text, err := callText(t, ctx, session, "whoami"); err != nil || text != "subject=zoe-restart" {
		t.Fatalf("whoami after the restart = %q, %v; want subject=zoe-restart", text, err)
	}
	if n := s.hydra.TokenCalls(""); n != 1 {
		t.Errorf("%d token requests at Hydra, want only the code exchange (no refresh, no reconnect)", n)
	}
	s.checkUpstream(t, "zoe-restart")

	client2 := goClient("connect-e2e-go-client-2")
	_, err = client2.Connect(ctx, s.goTransportWith(key2), &mcp.ClientSessionOptions{ProtocolVersion: connectProtocol})
	authURL2 := asConnectRequired(t, "second user before connecting", err).check(t, s, "authenticating")
	_, callback2 := s.approveAs(t, authURL2, "e2e-user-2", key2, "zoe-two", "user2-")
	session2, err := client2.Connect(ctx, s.goTransportWith(key2), &mcp.ClientSessionOptions{ProtocolVersion: connectProtocol})
	if err != nil {
		t.Fatalf("second user connecting after the browser flow: %v", err)
	}
	defer session2.Close()
	if text, err := callText(t, ctx, session2, "whoami"); err != nil || text != "subject=zoe-two" {
		t.Errorf("second user's whoami = %q, %v; want subject=zoe-two", text, err)
	}
	if text, err := callText(t, ctx, session, "whoami"); err != nil || text != "subject=zoe-restart" {
		t.Errorf("first user's whoami = %q, %v; want subject=zoe-restart", text, err)
	}
	var clients []struct {
		ClientID string `json:"client_id"`
	}
	resp, err := http.Get(s.hydra.AdminURL + "/admin/clients")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&clients); err != nil {
		t.Fatalf("listing Hydra's clients: %v", err)
	}
	if len(clients) != 1 {
		t.Errorf("Hydra has %d clients, want the one the gateway registered before the restart", len(clients))
	}
	s.checkLogs(t, []string{authURL, authURL2}, []*url.URL{callback, callback2})
	if strings.Contains(s.earlierLogs+s.gw.Logs(), key2) {
		t.Error("the second API key is in the gateway's log")
	}
	for i, h := range s.up.Headers() {
		for name, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, key2) {
					t.Errorf("request %d to the upstream carried the second API key in %s", i, name)
				}
			}
		}
	}
}

// TestConnectSetupFailure: the upstream's metadata names an authorization server that does not
// answer. The gateway does not hand out a link that cannot work: the MCP client gets a named
// "upstream OAuth setup" JSON-RPC error, with no URL (docs/architecture.md#errors-three-buckets),
// and so does the next call.
func TestConnectSetupFailure(t *testing.T) {
	dead := "http://" + freeLoopbackAddr(t) // nothing listens there any more
	s := startConnectSetupAS(t, dead)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	for i := range 2 {
		_, err := s.goConnect(ctx)
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) {
			t.Fatalf("call %d: got %v, want a JSON-RPC error", i, err)
		}
		var data struct {
			Bucket           string `json:"bucket"`
			ReasonCode       string `json:"reasonCode"`
			UpstreamServerID string `json:"upstreamServerId"`
			RequestID        string `json:"requestId"`
			AuthURL          string `json:"authUrl"`
		}
		if err := json.Unmarshal(werr.Data, &data); err != nil {
			t.Fatalf("call %d: error data %s: %v", i, werr.Data, err)
		}
		if werr.Code == mcp.CodeURLElicitationRequired || data.AuthURL != "" || strings.Contains(werr.Message, "/connect?") {
			t.Fatalf("call %d: %d %q %s: a connect link for an upstream whose sign-in cannot work", i, werr.Code, werr.Message, werr.Data)
		}
		if !strings.Contains(werr.Message, "Upstream OAuth setup for "+connectDisplayName+" failed") ||
			(data.Bucket != "upstream OAuth setup" && data.Bucket != "upstream service response") || data.ReasonCode == "" || data.UpstreamServerID != connectUpstreamID || data.RequestID == "" {
			t.Errorf("call %d: code %d message %q data %s, want the named upstream OAuth setup error", i, werr.Code, werr.Message, werr.Data)
		}
		t.Logf("call %d: code %d reason %s: %s", i, werr.Code, data.ReasonCode, werr.Message)
	}
	if n := s.hydra.TokenCalls(""); n != 0 {
		t.Errorf("%d token requests at Hydra, want none", n)
	}
}
