package e2e

// Gateway auth end to end: the built mcpgate binary in front of an in-process go-sdk MCP server
// that fails the test if any gateway credential reaches it, with
//   - api-key-inbound and a key from `mcpgate keys create` (then `keys revoke`);
//   - open-id-jwt-auth-inbound with oAuthResourceMetadataEnabled against a real Ory Hydra issuing
//     JWT access tokens, driven by the Go SDK's auth.AuthorizationCodeHandler and by the
//     TypeScript SDK's OAuthClientProvider (node/auth-oauth-client.mjs): each discovers mcpgate's
//     protected-resource metadata from the 401 challenge, registers at Hydra dynamically, logs in
//     headlessly, and lists and calls tools through mcpgate. The audience check stays on: Hydra's
//     consent app grants the route's resource URL as the token audience.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/testutil/nodeenv"
)

// authUpstream is the upstream MCP server. It records every request and every gateway
// credential that reached it: an Authorization or X-Api-Key header, or any header value that
// looks like a JWT or an mcpgate API key.
type authUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	requests int
	leaks    []string
}

func startAuthUpstream(t *testing.T) *authUpstream {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "auth-e2e-upstream", Version: "1.0.0"}, nil)
	type echoArgs struct {
		Text string `json:"text"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echo the text back."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "echo: " + in.Text}}}, nil, nil
		})
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true})
	u := &authUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.requests++
		for name, vs := range r.Header {
			for _, v := range vs {
				if strings.EqualFold(name, "Authorization") || strings.EqualFold(name, "X-Api-Key") ||
					strings.Contains(v, "eyJ") || strings.Contains(v, "mcpg_") {
					u.leaks = append(u.leaks, fmt.Sprintf("%s %s: header %s", r.Method, r.URL.Path, name))
				}
			}
		}
		u.mu.Unlock()
		mcpHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// checkNoLeaks fails the test if a gateway credential reached the upstream, or if nothing did.
func (u *authUpstream) checkNoLeaks(t *testing.T) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.requests == 0 {
		t.Fatal("no request reached the upstream")
	}
	if len(u.leaks) > 0 {
		t.Fatalf("gateway credentials reached the upstream (token passthrough):\n%s", strings.Join(u.leaks, "\n"))
	}
}

// authRoute is an MCP route guarded by inbound policies.
type authRoute struct {
	Path, OperationID, Summary string
	Inbound                    []string
}

// authGateway is a running `mcpgate serve` with a data dir the test can also use with
// `mcpgate keys`.
type authGateway struct {
	*gateway
	DataDir string
}

// startAuthGateway writes a project (routes to upstream, the given policies.json entries) and
// runs `mcpgate serve` on addr.
func startAuthGateway(t *testing.T, addr, upstream string, routes []authRoute, policies []map[string]any, dataDir string, extraArgs ...string) *authGateway {
	t.Helper()
	if serveMissing != "" {
		t.Skip(serveMissing)
	}
	dir := t.TempDir()
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	cfg := filepath.Join(dir, "project")
	paths := map[string]any{}
	for _, r := range routes {
		paths[r.Path] = map[string]any{"get,post": map[string]any{
			"operationId": r.OperationID,
			"summary":     r.Summary,
			"x-zuplo-route": map[string]any{
				"corsPolicy": "none",
				"handler": map[string]any{
					"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpProxyHandler",
					"options": map[string]any{"rewritePattern": upstream},
				},
				"policies": map[string]any{"inbound": r.Inbound},
			},
		}}
	}
	files := map[string]any{
		"zuplo.jsonc":            map[string]any{"version": 1, "compatibilityDate": "2026-03-01"},
		"config/routes.oas.json": map[string]any{"openapi": "3.1.0", "info": map[string]any{"title": "auth e2e", "version": "1"}, "paths": paths},
		"config/policies.json":   map[string]any{"policies": policies},
	}
	writeFiles(t, cfg, files)

	args := append([]string{"serve", "--config", cfg, "--data-dir", dataDir, "--listen", addr, "--log-level", "debug"}, extraArgs...)
	g, _ := serveGateway(t, args)
	return &authGateway{gateway: g, DataDir: dataDir}
}

// mcpgateCLI runs the mcpgate binary with the data dir and returns stdout; it fails the test on
// a non-zero exit.
func mcpgateCLI(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mcpgateBin, args...)
	cmd.Env = append(environWithout("MCPGATE_"), "MCPGATE_DATA_DIR="+dataDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mcpgate %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// rawPost sends an MCP initialize with optional headers (name, value pairs) and returns the
// status, the WWW-Authenticate header and the decoded problem body.
func rawPost(t *testing.T, url string, headers ...string) (int, string, map[string]any) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	_ = json.Unmarshal(b, &doc)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), doc
}

// headerTransport adds a header to every request: how an MCP client sends a static API key.
type headerTransport struct{ name, value string }

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.name, h.value)
	return http.DefaultTransport.RoundTrip(r)
}

// callEcho connects with the Go SDK client, lists tools and calls echo.
func callEcho(t *testing.T, ctx context.Context, transport *mcp.StreamableClientTransport, text string) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "auth-e2e-go-client", Version: "1.0.0"}, nil)
	session, err := client.Connect(ctx, transport, nil)
	if err != nil {
		t.Fatalf("connecting through mcpgate: %v", err)
	}
	defer session.Close()
	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	if len(tools.Tools) != 1 || tools.Tools[0].Name != "echo" {
		t.Fatalf("tools/list: %+v, want the upstream's echo", tools.Tools)
	}
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": text}})
	if err != nil {
		t.Fatalf("tools/call: %v", err)
	}
	if res.IsError || len(res.Content) != 1 {
		t.Fatalf("tools/call: %+v", res)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != "echo: "+text {
		t.Fatalf("tools/call: content %+v, want echo: %s", res.Content[0], text)
	}
}

var apiKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{32,}$`)

// TestAuthAPIKey: a key from `mcpgate keys create` (run before serve, on the same data dir)
// calls a tool through mcpgate; the upstream never sees it; after `keys revoke` it is refused.
func TestAuthAPIKey(t *testing.T) {
	up := startAuthUpstream(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	out := mcpgateCLI(t, dataDir, "keys", "create", "--consumer", "e2e-bot", "--metadata", `{"team":"e2e"}`)
	key := strings.TrimSuffix(out, "\n")
	if strings.Contains(key, "\n") || !apiKeyPattern.MatchString(key) {
		t.Fatalf("keys create printed %q, want only the key on one line", out)
	}

	addr := freeLoopbackAddr(t)
	gw := startAuthGateway(t, addr, up.URL,
		[]authRoute{
			{Path: "/mcp/echo", OperationID: "echo", Summary: "Echo", Inbound: []string{"api-key"}},
			{Path: "/mcp/echo-header", OperationID: "echo-header", Summary: "Echo", Inbound: []string{"api-key-header"}},
		},
		[]map[string]any{{
			"name": "api-key", "policyType": "api-key-inbound",
			"handler": map[string]any{"module": "$import(@zuplo/runtime)", "export": "ApiKeyInboundPolicy",
				// No cache, so the revocation below is seen at once.
				"options": map[string]any{"cacheTtlSeconds": 0}},
		}, {
			// The key in a header the proxy does not know: only the policy can keep it from the upstream.
			"name": "api-key-header", "policyType": "api-key-inbound",
			"handler": map[string]any{"module": "$import(@zuplo/runtime)", "export": "ApiKeyInboundPolicy",
				"options": map[string]any{"authHeader": "x-api-key", "authScheme": ""}},
		}}, dataDir)
	url := gw.URL("/mcp/echo")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	callEcho(t, ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: headerTransport{"Authorization", "Bearer " + key}}}, "hello "+rand.Text())
	callEcho(t, ctx, &mcp.StreamableClientTransport{Endpoint: gw.URL("/mcp/echo-header"), HTTPClient: &http.Client{Transport: headerTransport{"X-Api-Key", key}}}, "hello "+rand.Text())
	up.checkNoLeaks(t)

	status, challenge, doc := rawPost(t, url)
	if status != http.StatusUnauthorized || doc["reasonCode"] != "missing_token" || challenge == "" {
		t.Errorf("no key: status %d reason %v challenge %q, want 401 missing_token with a challenge", status, doc["reasonCode"], challenge)
	}

	var keys []struct {
		ID       string `json:"id"`
		Consumer string `json:"consumer"`
	}
	listed := mcpgateCLI(t, dataDir, "keys", "list", "--output", "json")
	if err := json.Unmarshal([]byte(listed), &keys); err != nil || len(keys) != 1 || keys[0].Consumer != "e2e-bot" {
		t.Fatalf("keys list --output json: %q (%v)", listed, err)
	}
	mcpgateCLI(t, dataDir, "keys", "revoke", keys[0].ID)
	status, challenge, doc = rawPost(t, url, "Authorization", "Bearer "+key)
	if status != http.StatusUnauthorized || doc["reasonCode"] != "revoked" || !strings.Contains(challenge, `error="invalid_token"`) {
		t.Errorf("revoked key: status %d reason %v challenge %q, want 401 revoked with error=\"invalid_token\"", status, doc["reasonCode"], challenge)
	}
}

// oauthSetup is Hydra plus mcpgate with two JWT-protected routes, each bound to its own
// resource URL as audience.
type oauthSetup struct {
	hydra    *hydra.Server
	up       *authUpstream
	gw       *authGateway
	echoURL  string
	otherURL string
}

func startOAuthSetup(t *testing.T) *oauthSetup {
	t.Helper()
	h := hydra.Start(t, hydra.Options{JWTAccessTokens: true})
	up := startAuthUpstream(t)
	addr := freeLoopbackAddr(t)
	base := "http://" + addr
	jwtPolicy := func(name, audience string) map[string]any {
		return map[string]any{
			"name": name, "policyType": "open-id-jwt-auth-inbound",
			"handler": map[string]any{"module": "$import(@zuplo/runtime)", "export": "OpenIdJwtInboundPolicy",
				"options": map[string]any{
					"issuer": h.Issuer(), "jwkUrl": h.JWKSURL(), "audience": audience,
					"oAuthResourceMetadataEnabled": true, "scopesSupported": []string{"mcp"},
				}},
		}
	}
	gw := startAuthGateway(t, addr, up.URL,
		[]authRoute{
			{Path: "/mcp/echo", OperationID: "echo", Summary: "Echo MCP server", Inbound: []string{"jwt-echo"}},
			{Path: "/mcp/other", OperationID: "other", Summary: "Other MCP server", Inbound: []string{"jwt-other"}},
		},
		[]map[string]any{jwtPolicy("jwt-echo", base+"/mcp/echo"), jwtPolicy("jwt-other", base+"/mcp/other")}, "")
	return &oauthSetup{hydra: h, up: up, gw: gw, echoURL: base + "/mcp/echo", otherURL: base + "/mcp/other"}
}

// checkChallengeAndMetadata checks the unauthenticated answer and the metadata it points at.
func (s *oauthSetup) checkChallengeAndMetadata(t *testing.T) {
	t.Helper()
	status, challenge, doc := rawPost(t, s.echoURL)
	wantMeta := strings.Replace(s.echoURL, "/mcp/echo", "/.well-known/oauth-protected-resource/mcp/echo", 1)
	if status != http.StatusUnauthorized || challenge != `Bearer resource_metadata="`+wantMeta+`", scope="mcp"` || doc["reasonCode"] != "missing_token" {
		t.Fatalf("unauthenticated: status %d challenge %q reason %v", status, challenge, doc["reasonCode"])
	}
	resp, err := http.Get(wantMeta)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var prm oauthex.ProtectedResourceMetadata
	if err := json.NewDecoder(resp.Body).Decode(&prm); err != nil || resp.StatusCode != 200 {
		t.Fatalf("metadata: status %d: %v", resp.StatusCode, err)
	}
	if prm.Resource != s.echoURL || !slices.Equal(prm.AuthorizationServers, []string{s.hydra.Issuer()}) ||
		!slices.Equal(prm.BearerMethodsSupported, []string{"header"}) || prm.ResourceName != "Echo MCP server" ||
		!slices.Equal(prm.ScopesSupported, []string{"mcp"}) {
		t.Fatalf("metadata %+v", prm)
	}
}

// checkWrongRoute: the token bound to /mcp/echo is refused at /mcp/other (audience).
func (s *oauthSetup) checkWrongRoute(t *testing.T, token string) {
	t.Helper()
	status, challenge, doc := rawPost(t, s.otherURL, "Authorization", "Bearer "+token)
	wantMeta := strings.Replace(s.otherURL, "/mcp/other", "/.well-known/oauth-protected-resource/mcp/other", 1)
	if status != http.StatusUnauthorized || doc["reasonCode"] != "invalid_audience" ||
		challenge != `Bearer resource_metadata="`+wantMeta+`", scope="mcp", error="invalid_token"` {
		t.Errorf("token of /mcp/echo at /mcp/other: status %d reason %v challenge %q, want 401 invalid_audience", status, doc["reasonCode"], challenge)
	}
}

// hydraDCRFix drops the object-valued "jwks" Hydra returns in its registration reply, which
// go-sdk v1.8.0 cannot decode (it declares the field a string). Everything else passes through.
type hydraDCRFix struct{}

func (hydraDCRFix) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !strings.HasSuffix(r.URL.Path, "/oauth2/register") {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if json.Unmarshal(b, &m) == nil {
		if _, isObject := m["jwks"].(map[string]any); isObject {
			delete(m, "jwks")
			b, _ = json.Marshal(m)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// TestAuthOAuthGoSDKClient: the Go SDK client completes OAuth against Hydra, discovering it from
// mcpgate's challenge and metadata, and calls a tool through mcpgate.
func TestAuthOAuthGoSDKClient(t *testing.T) {
	s := startOAuthSetup(t)
	s.checkChallengeAndMetadata(t)
	s.hydra.SetSubject("go-sdk-user")

	const redirect = "http://127.0.0.1:1/callback"
	var authorized atomic.Int32 // AuthorizationCodeFetcher runs inside the transport
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			ClientName: "mcpgate e2e Go client", RedirectURIs: []string{redirect},
			GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			TokenEndpointAuthMethod: "none", Scope: "mcp",
		}},
		RedirectURL: redirect,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			authorized.Add(1)
			loc, err := s.hydra.AuthorizeHeadlessE(ctx, args.URL, "")
			if err != nil {
				return nil, err
			}
			q := loc.Query()
			if e := q.Get("error"); e != "" {
				return nil, fmt.Errorf("authorization refused: %s: %s", e, q.Get("error_description"))
			}
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		},
		Client: &http.Client{Transport: hydraDCRFix{}, Timeout: 30 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	callEcho(t, ctx, &mcp.StreamableClientTransport{Endpoint: s.echoURL, OAuthHandler: handler, DisableStandaloneSSE: true}, "hi from go "+rand.Text())
	if n := authorized.Load(); n != 1 {
		t.Errorf("the client authorized %d times, want 1", n)
	}
	s.up.checkNoLeaks(t)

	ts, err := handler.TokenSource(ctx)
	if err != nil || ts == nil {
		t.Fatalf("token source: %v", err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	claims := s.hydra.Introspect(t, tok.AccessToken)
	if claims.Subject != "go-sdk-user" || !slices.Contains(claims.Audience, s.echoURL) || !slices.Contains(strings.Fields(claims.Scope), "mcp") {
		t.Errorf("token subject %q audience %v scope %q, want go-sdk-user, %s and the challenged scope mcp", claims.Subject, claims.Audience, claims.Scope, s.echoURL)
	}
	s.checkWrongRoute(t, tok.AccessToken)
}

// authTSReport is what node/auth-oauth-client.mjs prints.
type authTSReport struct {
	Challenges []struct {
		URL             string `json:"url"`
		WWWAuthenticate string `json:"wwwAuthenticate"`
	} `json:"challenges"`
	MetadataFetches []struct {
		URL    string `json:"url"`
		Status int    `json:"status"`
	} `json:"metadataFetches"`
	ResourceMetadata     map[string]any `json:"resourceMetadata"`
	AuthorizationRequest struct {
		Resource            string `json:"resource"`
		CodeChallengeMethod string `json:"codeChallengeMethod"`
		HasState            bool   `json:"hasState"`
	} `json:"authorizationRequest"`
	RegisteredClient struct {
		HasClientID bool `json:"hasClientId"`
	} `json:"registeredClient"`
	Scope    string   `json:"scope"`
	Audience any      `json:"audience"`
	Tools    []string `json:"tools"`
	Echo     []string `json:"echo"`
	Error    string   `json:"error"`
}

// TestAuthOAuthTypeScriptClient: the TypeScript SDK client does the same with an
// OAuthClientProvider.
func TestAuthOAuthTypeScriptClient(t *testing.T) {
	env := nodeenv.Get(t)
	s := startOAuthSetup(t)
	s.hydra.SetSubject("ts-sdk-user")

	text := "hi from ts " + rand.Text()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stdout, stderr, runErr := env.Run(ctx, nil, "auth-oauth-client.mjs", s.echoURL, text)
	var r authTSReport
	if err := json.Unmarshal(stdout, &r); err != nil {
		t.Fatalf("auth-oauth-client.mjs: %v; decoding its report %q: %v\nstderr:\n%s", runErr, stdout, err, stderr)
	}
	if runErr != nil || r.Error != "" {
		t.Fatalf("auth-oauth-client.mjs: %v: %s\nreport: %s\nstderr:\n%s", runErr, r.Error, stdout, stderr)
	}

	wantMeta := strings.Replace(s.echoURL, "/mcp/echo", "/.well-known/oauth-protected-resource/mcp/echo", 1)
	if len(r.Challenges) == 0 || r.Challenges[0].WWWAuthenticate != `Bearer resource_metadata="`+wantMeta+`", scope="mcp"` {
		t.Errorf("the client saw challenges %+v, want the first to point at %s", r.Challenges, wantMeta)
	}
	if len(r.MetadataFetches) == 0 || r.MetadataFetches[0].URL != wantMeta || r.MetadataFetches[0].Status != 200 {
		t.Errorf("metadata fetches %+v, want %s first, 200", r.MetadataFetches, wantMeta)
	}
	if r.ResourceMetadata["resource"] != s.echoURL {
		t.Errorf("metadata resource %v, want %s", r.ResourceMetadata["resource"], s.echoURL)
	}
	if r.AuthorizationRequest.Resource != s.echoURL || r.AuthorizationRequest.CodeChallengeMethod != "S256" || !r.AuthorizationRequest.HasState {
		t.Errorf("authorization request %+v, want resource %s, S256 and a state", r.AuthorizationRequest, s.echoURL)
	}
	if !slices.Contains(strings.Fields(r.Scope), "mcp") {
		t.Errorf("granted scope %q, want the challenged scope mcp", r.Scope)
	}
	if !r.RegisteredClient.HasClientID {
		t.Error("the client did not register dynamically")
	}
	aud, _ := json.Marshal(r.Audience)
	if !strings.Contains(string(aud), `"`+s.echoURL+`"`) {
		t.Errorf("token audience %s, want it to name %s", aud, s.echoURL)
	}
	if !slices.Equal(r.Tools, []string{"echo"}) || !slices.Equal(r.Echo, []string{"echo: " + text}) {
		t.Errorf("tools %v echo %v", r.Tools, r.Echo)
	}
	s.up.checkNoLeaks(t)
}

// TestAuthMetadataBehindTLSProxy: behind a TLS-terminating proxy listed in --trusted-proxies, the
// metadata and the challenge carry the public https URL from X-Forwarded-Proto/Host; the same
// headers from an untrusted peer are ignored.
func TestAuthMetadataBehindTLSProxy(t *testing.T) {
	up := startAuthUpstream(t)
	policies := []map[string]any{{
		"name": "oauth", "policyType": "open-id-jwt-auth-inbound",
		"handler": map[string]any{"module": "$import(@zuplo/runtime)", "export": "OpenIdJwtInboundPolicy",
			"options": map[string]any{
				// Never fetched: no request here carries a token.
				"issuer": "https://idp.example.org", "jwkUrl": "https://idp.example.org/jwks.json",
				"audience": "https://mcp.example.org/mcp/echo", "oAuthResourceMetadataEnabled": true,
			}},
	}}
	routes := []authRoute{{Path: "/mcp/echo", OperationID: "echo", Summary: "Echo", Inbound: []string{"oauth"}}}
	forwarded := []string{"X-Forwarded-Proto", "https", "X-Forwarded-Host", "mcp.example.org"}

	for _, tc := range []struct {
		name    string
		args    []string
		wantTLS bool
	}{
		{"trusted proxy", []string{"--trusted-proxies", "127.0.0.1/32"}, true},
		{"untrusted peer", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeLoopbackAddr(t)
			gw := startAuthGateway(t, addr, up.URL, routes, policies, "", tc.args...)
			base := "http://" + addr
			if tc.wantTLS {
				base = "https://mcp.example.org"
			}
			status, challenge, _ := rawPost(t, gw.URL("/mcp/echo"), forwarded...)
			if want := `Bearer resource_metadata="` + base + `/.well-known/oauth-protected-resource/mcp/echo"`; status != 401 || challenge != want {
				t.Errorf("challenge: status %d %q, want 401 %q", status, challenge, want)
			}
			req, err := http.NewRequest(http.MethodGet, gw.URL("/.well-known/oauth-protected-resource/mcp/echo"), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(forwarded[0], forwarded[1])
			req.Header.Set(forwarded[2], forwarded[3])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var prm oauthex.ProtectedResourceMetadata
			if err := json.NewDecoder(resp.Body).Decode(&prm); err != nil || prm.Resource != base+"/mcp/echo" {
				t.Errorf("metadata resource %q (%v), want %s", prm.Resource, err, base+"/mcp/echo")
			}
		})
	}
}
