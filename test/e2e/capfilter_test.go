package e2e

// The capability filter (mcp-capability-filter-inbound with accessControl rolesAndGroups) end to
// end: the built mcpgate binary behind open-id-jwt-auth-inbound, in front of server-everything
// (which answers tools/list as an SSE stream) and an in-process go-sdk server (which answers it as
// JSON), with JWT access tokens from a real Ory Hydra whose consent app puts the caller's roles in
// the token (under "ext", read with the dotted roleClaim "ext.roles"). The Go SDK client and the
// TypeScript SDK client (node/capfilter-client.mjs) each check, per route and caller, that a
// hidden tool is absent from tools/list and refused on call with -32601 before the upstream sees
// it, and that the caller with the role sees and calls it. The same then holds behind
// mcp-oauth-inbound, with the roles the sign-in read from the IdP's (Hydra's) ID token and the Go
// SDK client signing in through Chromium.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/mcpgate/mcpgate/internal/testutil/browser"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/testutil/nodeenv"
)

const (
	// capFilterAudience is the audience Hydra grants and the JWT policy requires.
	capFilterAudience = "https://mcpgate.test/capfilter"
	// capFilterAdminRole is the role that sees the restricted tools.
	capFilterAdminRole = "admin"
	// capFilterTimeout bounds one client's run.
	capFilterTimeout = 60 * time.Second
)

// capFilterUpstream is a go-sdk MCP server answering in JSON with a public tool, a tool for admins
// and a tool the filter does not list. It counts the calls of the admin tool that reached it.
type capFilterUpstream struct {
	*httptest.Server
	adminCalls atomic.Int32
}

func startCapFilterUpstream(t *testing.T) *capFilterUpstream {
	t.Helper()
	u := &capFilterUpstream{}
	s := mcp.NewServer(&mcp.Implementation{Name: "capfilter-e2e-upstream", Version: "1.0.0"}, nil)
	type echoArgs struct {
		Message string `json:"message"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echo the message back."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "Echo: " + in.Message}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "delete-everything", Description: "Admins only."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			u.adminCalls.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deleted everything"}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "unlisted", Description: "Not in the filter's list: nobody sees it."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "unlisted"}}}, nil, nil
		})
	u.Server = httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
		&mcp.StreamableHTTPOptions{JSONResponse: true}))
	t.Cleanup(u.Close)
	return u
}

// capFilterRoute is an MCP route of the capability-filter project.
type capFilterRoute struct {
	Path, Upstream string
	Inbound        []string
}

// startCapFilterGateway writes a project with routes and policies and runs `mcpgate serve`, on
// addr with that public URL, or on a port the kernel picks when addr is empty.
func startCapFilterGateway(t *testing.T, addr string, routes []capFilterRoute, policies []map[string]any) *gateway {
	t.Helper()
	if serveMissing != "" {
		t.Skip(serveMissing)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "project")
	paths := map[string]any{}
	for i, r := range routes {
		paths[r.Path] = map[string]any{"get,post": map[string]any{
			"operationId": fmt.Sprintf("capfilter-%d", i),
			"summary":     "Capability filter " + r.Path,
			"x-zuplo-route": map[string]any{
				"corsPolicy": "none",
				"handler": map[string]any{
					"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpProxyHandler",
					"options": map[string]any{"rewritePattern": r.Upstream},
				},
				"policies": map[string]any{"inbound": r.Inbound},
			},
		}}
	}
	writeFiles(t, cfg, map[string]any{
		"zuplo.jsonc":            map[string]any{"version": 1, "compatibilityDate": "2026-03-01"},
		"config/routes.oas.json": map[string]any{"openapi": "3.1.0", "info": map[string]any{"title": "capfilter e2e", "version": "1"}, "paths": paths},
		"config/policies.json":   map[string]any{"policies": policies},
	})
	args := []string{"serve", "--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--log-level", "debug"}
	if addr == "" {
		args = append(args, "--listen", "127.0.0.1:0")
	} else {
		args = append(args, "--listen", addr, "--public-url", "http://"+addr)
	}
	g, _ := serveGateway(t, args)
	return g
}

// capFilterPolicy is an mcp-capability-filter-inbound policy under rolesAndGroups: public tools
// for everyone, adminTool for capFilterAdminRole, roles read from roleClaim.
func capFilterPolicy(name, roleClaim, adminTool string, public ...string) map[string]any {
	var tools []any
	for _, p := range public {
		tools = append(tools, map[string]any{"name": p, "public": true})
	}
	tools = append(tools, map[string]any{"name": adminTool, "roles": []string{capFilterAdminRole}})
	return map[string]any{
		"name": name, "policyType": "mcp-capability-filter-inbound",
		"handler": map[string]any{"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpCapabilityFilterInboundPolicy",
			"options": map[string]any{
				"tools":         tools,
				"accessControl": map[string]any{"mode": "rolesAndGroups", "roleClaim": roleClaim},
			}},
	}
}

// capFilterToken logs subject in at Hydra (authorization code with PKCE) and returns its JWT
// access token.
func capFilterToken(t *testing.T, h *hydra.Server, c hydra.Client, redirect, subject string) string {
	t.Helper()
	cfg := h.OAuth2Config(c, redirect, "mcp")
	verifier := oauth2.GenerateVerifier()
	back := h.AuthorizeHeadless(t, cfg.AuthCodeURL("state-"+subject+"-0123456789", oauth2.S256ChallengeOption(verifier)), subject)
	tok, err := cfg.Exchange(t.Context(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchanging %s's code: %v", subject, err)
	}
	if strings.Count(tok.AccessToken, ".") != 2 {
		t.Fatalf("%s's access token is not a JWT", subject)
	}
	return tok.AccessToken
}

// bearerRecorder adds a bearer token to every request and records the media type of every 200
// answer to a POST, so the test can tell which answers were JSON and which SSE.
type bearerRecorder struct {
	token string
	mu    sync.Mutex
	types []string
}

func (b *bearerRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.Method == http.MethodPost && resp.StatusCode == http.StatusOK {
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		b.mu.Lock()
		b.types = append(b.types, mt)
		b.mu.Unlock()
	}
	return resp, err
}

func (b *bearerRecorder) mediaTypes() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.types)
}

// capFilterCase is one caller at one route and what the filter must show it.
type capFilterCase struct {
	route     string
	mediaType string // of the route's upstream answers: application/json or text/event-stream
	caller    string
	token     string
	wantTools []string // sorted
	// adminTool is called with adminArgs; when the caller may see it, the call must answer a
	// text containing adminText, else -32601.
	adminTool string
	adminArgs map[string]any
	adminText string
	mayCall   bool
}

// checkGoClient lists and calls through the gateway with the Go SDK client.
func (c capFilterCase) checkGoClient(t *testing.T, url string) {
	ctx, cancel := context.WithTimeout(t.Context(), capFilterTimeout)
	defer cancel()
	rec := &bearerRecorder{token: c.token}
	client := mcp.NewClient(&mcp.Implementation{Name: "capfilter-e2e-go-client", Version: "1.0.0"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: rec}, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatalf("connecting through mcpgate: %v", err)
	}
	defer session.Close()
	res, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, c.wantTools) {
		t.Errorf("tools/list as %s: %q, want %q", c.caller, names, c.wantTools)
	}
	types := rec.mediaTypes()
	if len(types) == 0 {
		t.Errorf("no 200 answer to a POST of %s was recorded", c.route)
	}
	for _, mt := range types {
		if mt != c.mediaType {
			t.Errorf("an answer of %s was %s, want only %s (the case this route covers)", c.route, mt, c.mediaType)
		}
	}

	call, err := session.CallTool(ctx, &mcp.CallToolParams{Name: c.adminTool, Arguments: c.adminArgs})
	if !c.mayCall {
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) || werr.Code != -32601 {
			t.Errorf("tools/call %s as %s: result %+v, error %v; want JSON-RPC error -32601", c.adminTool, c.caller, call, err)
		}
		return
	}
	if err != nil || call.IsError || len(call.Content) != 1 {
		t.Fatalf("tools/call %s as %s: result %+v, error %v", c.adminTool, c.caller, call, err)
	}
	if tc, ok := call.Content[0].(*mcp.TextContent); !ok || !strings.Contains(tc.Text, c.adminText) {
		t.Errorf("tools/call %s as %s: %+v, want a text containing %q", c.adminTool, c.caller, call.Content[0], c.adminText)
	}
}

// capFilterTSReport is what node/capfilter-client.mjs prints.
type capFilterTSReport struct {
	Tools []string `json:"tools"`
	Call  struct {
		Code    int      `json:"code"`
		Message string   `json:"message"`
		IsError bool     `json:"isError"`
		Texts   []string `json:"texts"`
	} `json:"call"`
	Error string `json:"error"`
}

// checkTSClient lists and calls through the gateway with the TypeScript SDK client.
func (c capFilterCase) checkTSClient(t *testing.T, env *nodeenv.Env, url string) {
	ctx, cancel := context.WithTimeout(t.Context(), capFilterTimeout)
	defer cancel()
	args, err := json.Marshal(c.adminArgs)
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, runErr := env.Run(ctx, nil, "capfilter-client.mjs", url, c.token, c.adminTool, string(args))
	var r capFilterTSReport
	if err := json.Unmarshal(stdout, &r); err != nil {
		t.Fatalf("capfilter-client.mjs: %v; decoding its report %q: %v\nstderr:\n%s", runErr, stdout, err, stderr)
	}
	if runErr != nil || r.Error != "" {
		t.Fatalf("capfilter-client.mjs: %v: %s\nstderr:\n%s", runErr, r.Error, stderr)
	}
	names := slices.Sorted(slices.Values(r.Tools))
	if !slices.Equal(names, c.wantTools) {
		t.Errorf("tools/list as %s: %q, want %q", c.caller, names, c.wantTools)
	}
	if !c.mayCall {
		if r.Call.Code != -32601 {
			t.Errorf("tools/call %s as %s: %+v, want JSON-RPC error -32601", c.adminTool, c.caller, r.Call)
		}
		return
	}
	if r.Call.Code != 0 || r.Call.IsError || len(r.Call.Texts) != 1 || !strings.Contains(r.Call.Texts[0], c.adminText) {
		t.Errorf("tools/call %s as %s: %+v, want a text containing %q", c.adminTool, c.caller, r.Call, c.adminText)
	}
}

// TestCapabilityFilterJWT: roles from a real JWT decide which tools each caller sees and may call,
// through both SDK clients, for an SSE and a JSON upstream.
func TestCapabilityFilterJWT(t *testing.T) {
	env := nodeenv.Get(t)
	everything := env.StartEverything(t)
	goUp := startCapFilterUpstream(t)

	h := hydra.Start(t, hydra.Options{JWTAccessTokens: true, GrantAudience: []string{capFilterAudience}})
	// alice has a roles claim without the role; root has it.
	h.SetClaims("alice", map[string]any{"roles": []string{}}, nil)
	h.SetClaims("root", map[string]any{"roles": []string{"viewer", capFilterAdminRole}}, nil)
	const redirect = "http://127.0.0.1:1/callback" // never requested
	client := h.CreateClient(t, hydra.ClientSpec{RedirectURIs: []string{redirect}, TokenEndpointAuthMethod: "none"})
	tokens := map[string]string{
		"alice": capFilterToken(t, h, client, redirect, "alice"),
		"root":  capFilterToken(t, h, client, redirect, "root"),
	}

	// Hydra puts the consent session's access-token claims under "ext" of the JWT.
	const roleClaim = "ext.roles"
	gw := startCapFilterGateway(t, "",
		[]capFilterRoute{
			{Path: "/mcp/everything", Upstream: everything.URL, Inbound: []string{"jwt", "filter-everything"}},
			{Path: "/mcp/go", Upstream: goUp.URL, Inbound: []string{"jwt", "filter-go"}},
		},
		[]map[string]any{
			{
				"name": "jwt", "policyType": "open-id-jwt-auth-inbound",
				"handler": map[string]any{"module": "$import(@zuplo/runtime)", "export": "OpenIdJwtInboundPolicy",
					"options": map[string]any{"issuer": h.Issuer(), "jwkUrl": h.JWKSURL(), "audience": capFilterAudience}},
			},
			capFilterPolicy("filter-everything", roleClaim, "get-sum", "echo"),
			capFilterPolicy("filter-go", roleClaim, "delete-everything", "echo"),
		})

	var cases []capFilterCase
	for _, caller := range []string{"alice", "root"} {
		admin := caller == "root"
		everythingTools, goTools := []string{"echo"}, []string{"echo"}
		if admin {
			everythingTools, goTools = []string{"echo", "get-sum"}, []string{"delete-everything", "echo"}
		}
		cases = append(cases,
			capFilterCase{
				route: "/mcp/everything", mediaType: "text/event-stream", caller: caller, token: tokens[caller],
				wantTools: everythingTools, adminTool: "get-sum", adminArgs: map[string]any{"a": 2, "b": 3}, adminText: "is 5", mayCall: admin,
			},
			capFilterCase{
				route: "/mcp/go", mediaType: "application/json", caller: caller, token: tokens[caller],
				wantTools: goTools, adminTool: "delete-everything", adminArgs: map[string]any{}, adminText: "deleted everything", mayCall: admin,
			})
	}
	for _, c := range cases {
		t.Run(strings.TrimPrefix(c.route, "/mcp/")+"/"+c.caller, func(t *testing.T) {
			before := goUp.adminCalls.Load()
			t.Run("go-sdk", func(t *testing.T) { c.checkGoClient(t, gw.URL(c.route)) })
			t.Run("ts-sdk", func(t *testing.T) { c.checkTSClient(t, env, gw.URL(c.route)) })
			if c.route != "/mcp/go" {
				return
			}
			// The refused calls never reached the upstream; the allowed ones did, once per client.
			want := int32(0)
			if c.mayCall {
				want = 2
			}
			if got := goUp.adminCalls.Load() - before; got != want {
				t.Errorf("the upstream ran delete-everything %d times for %s, want %d", got, c.caller, want)
			}
		})
	}
}

// TestCapabilityFilterSignIn: behind mcp-oauth-inbound, the roles the sign-in read from the IdP's
// ID token decide which tools the signed-in person sees and may call (Go SDK client, JSON
// upstream).
func TestCapabilityFilterSignIn(t *testing.T) {
	if serveMissing != "" {
		t.Skip(serveMissing)
	}
	browser.Require(t)
	goUp := startCapFilterUpstream(t)
	addr := freeLoopbackAddr(t)
	base := "http://" + addr

	idp := hydra.Start(t, hydra.Options{Scopes: []string{"profile", "email"}})
	// The sign-in reads the ID token's "roles" claim (the policy's default rolesClaim).
	idp.SetClaims("alice", nil, map[string]any{"roles": []string{"viewer"}})
	idp.SetClaims("root", nil, map[string]any{"roles": []string{capFilterAdminRole}})
	idpClient := idp.CreateClient(t, hydra.ClientSpec{
		Name: "mcpgate", RedirectURIs: []string{base + "/__mcpgate/oauth/callback"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "profile", "email"},
		TokenEndpointAuthMethod: "client_secret_basic",
	})
	gw := startCapFilterGateway(t, addr,
		[]capFilterRoute{{Path: "/mcp/go", Upstream: goUp.URL, Inbound: []string{"signin", "filter-go"}}},
		[]map[string]any{
			{
				"name": "signin", "policyType": "mcp-oauth-inbound",
				"handler": map[string]any{"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpOAuthInboundPolicy",
					"options": map[string]any{
						"oidc":         map[string]any{"issuer": idp.Issuer()},
						"browserLogin": map[string]any{"clientId": idpClient.ID, "clientSecret": idpClient.Secret, "scope": "openid profile email"},
					}},
			},
			capFilterPolicy("filter-go", "roles", "delete-everything", "echo"),
		})
	url := gw.URL("/mcp/go")

	for _, c := range []struct {
		person    string
		wantTools []string
		mayCall   bool
	}{
		{"alice", []string{"echo"}, false},
		{"root", []string{"delete-everything", "echo"}, true},
	} {
		t.Run(c.person, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), capFilterTimeout)
			defer cancel()
			idp.SetSubject(c.person)
			session := signInForCapFilter(t, ctx, url)
			res, err := session.ListTools(ctx, nil)
			if err != nil {
				t.Fatalf("tools/list: %v", err)
			}
			var names []string
			for _, tool := range res.Tools {
				names = append(names, tool.Name)
			}
			slices.Sort(names)
			if !slices.Equal(names, c.wantTools) {
				t.Errorf("tools/list as %s: %q, want %q", c.person, names, c.wantTools)
			}
			before := goUp.adminCalls.Load()
			call, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "delete-everything", Arguments: map[string]any{}})
			if c.mayCall {
				if err != nil || call.IsError {
					t.Errorf("tools/call delete-everything as %s: result %+v, error %v", c.person, call, err)
				}
			} else {
				var werr *jsonrpc.Error
				if !errors.As(err, &werr) || werr.Code != -32601 {
					t.Errorf("tools/call delete-everything as %s: result %+v, error %v; want JSON-RPC error -32601", c.person, call, err)
				}
			}
			want := int32(0)
			if c.mayCall {
				want = 1
			}
			if got := goUp.adminCalls.Load() - before; got != want {
				t.Errorf("the upstream ran delete-everything %d times for %s, want %d", got, c.person, want)
			}
		})
	}
}

// signInForCapFilter connects the Go SDK client to url, registering by DCR; the person the IdP's
// login app picks signs in and authorizes in a fresh Chromium.
func signInForCapFilter(t *testing.T, ctx context.Context, url string) *mcp.ClientSession {
	t.Helper()
	redirect := startSignInRedirect(t)
	authURLs := make(chan string, 1)
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			ClientName: "mcpgate e2e capfilter client", RedirectURIs: []string{redirect.URL},
			GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			TokenEndpointAuthMethod: "none",
		}},
		RedirectURL:              redirect.URL,
		AuthorizationCodeFetcher: redirect.fetcher(authURLs),
		Client:                   &http.Client{Timeout: 30 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "capfilter-e2e-signin-client", Version: "1.0.0"}, nil)
	transport := &mcp.StreamableClientTransport{Endpoint: url, OAuthHandler: handler, DisableStandaloneSSE: true}
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
	case authURL = <-authURLs:
	case r := <-done:
		t.Fatalf("the client connected without signing in: %v", r.err)
	case <-ctx.Done():
		t.Fatal("the client did not ask the person to sign in in time")
	}

	b := browser.New(t)
	b.Navigate(authURL) // → the IdP's login and consent → the gateway's consent page
	if u := b.CurrentURL(); !strings.Contains(u, "/__mcpgate/oauth/setup?") {
		b.Screenshot("unexpected")
		t.Fatalf("after the authorization URL the browser is at %s, want the gateway's consent page", u)
	}
	b.ClickNavigate(`button[name="decision"][value="approve"]`)
	if u := b.CurrentURL(); !strings.HasPrefix(u, redirect.URL+"?") {
		b.Screenshot("unexpected")
		t.Fatalf("Authorize led to %s, want the client's redirect URI %s", u, redirect.URL)
	}

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
	return r.session
}
