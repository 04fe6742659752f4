package capfilter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/policy"
	_ "github.com/mcpgate/mcpgate/internal/policy/capfilter" // the policy under test
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// Test-only auth policy: like gatewaytest's TestUserInboundPolicy it trusts headers, and it also
// gives the user roles and groups (request.user.data.roles/groups) from userRolesHeader and
// userGroupsHeader (comma-separated), as a sign-in policy would from the IdP's claims.
const (
	rolesExport      = "CapfilterTestRolesInboundPolicy"
	rolesPolicyType  = "capfilter-test-roles-inbound"
	userHeader       = "X-Capfilter-User"
	userRolesHeader  = "X-Capfilter-Roles"
	userGroupsHeader = "X-Capfilter-Groups"
)

type rolesPolicy struct{}

func (*rolesPolicy) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	if u := r.Header.Get(userHeader); u != "" {
		data := map[string]any{}
		for claim, h := range map[string]string{"roles": userRolesHeader, "groups": userGroupsHeader} {
			if v := r.Header.Get(h); v != "" {
				var vs []any
				for _, s := range strings.Split(v, ",") {
					vs = append(vs, s)
				}
				data[claim] = vs
			}
		}
		c.User = &policy.User{Sub: u, Namespace: "test", Data: data}
	}
	for _, h := range []string{userHeader, userRolesHeader, userGroupsHeader} {
		r.Header.Del(h)
	}
	return nil, nil
}

func init() {
	policy.Register(policy.Module{Export: rolesExport, PolicyType: rolesPolicyType, Kind: policy.KindInbound,
		Authenticates: true, New: func() any { return &rolesPolicy{} }})
}

// Upstream capabilities.
var (
	upstreamTools     = []string{"admin_report", "delete_all", "echo", "search", "secret"}
	upstreamPrompts   = []string{"greet", "internal_prompt"}
	upstreamResources = []string{"file:///public.txt", "file:///secret.txt"}
	upstreamTemplates = []string{"file:///docs/{name}", "file:///private/{name}"}
)

type echoIn struct {
	Text string `json:"text,omitempty"`
}

// upstream is a real Go SDK MCP server (Streamable HTTP) that records the JSON-RPC calls that
// reach it.
type upstream struct {
	*httptest.Server
	URL string // the MCP endpoint

	mu    sync.Mutex
	calls []string // "method name-or-uri" of every request that arrived
}

// newUpstream starts the SDK server with ntools tools (the five upstreamTools when ntools is 0)
// and the prompts, resources and templates above.
func newUpstream(t testing.TB, opts *mcp.StreamableHTTPOptions, serverOpts *mcp.ServerOptions, ntools int) *upstream {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "v1"}, serverOpts)
	tools := upstreamTools
	if ntools > 0 {
		tools = nil
		for i := range ntools {
			tools = append(tools, fmt.Sprintf("tool_%03d", i))
		}
	}
	for _, name := range tools {
		mcp.AddTool(srv, &mcp.Tool{Name: name, Description: "upstream description of " + name,
			Annotations: &mcp.ToolAnnotations{Title: "Upstream " + name, IdempotentHint: true}},
			func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + ":" + in.Text}}}, nil, nil
			})
	}
	for _, name := range upstreamPrompts {
		srv.AddPrompt(&mcp.Prompt{Name: name, Description: "prompt " + name}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: name}}}}, nil
		})
	}
	read := func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "contents of " + req.Params.URI}}}, nil
	}
	for _, uri := range upstreamResources {
		srv.AddResource(&mcp.Resource{URI: uri, Name: strings.TrimPrefix(uri, "file:///"), MIMEType: "text/plain"}, read)
	}
	for _, tmpl := range upstreamTemplates {
		srv.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: tmpl, Name: tmpl}, read)
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, opts)
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			u.record(b)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	u.URL = u.Server.URL + "/mcp"
	return u
}

func (u *upstream) record(body []byte) {
	var msgs []struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
			URI  string `json:"uri"`
		} `json:"params"`
	}
	t := bytes.TrimSpace(body)
	if len(t) > 0 && t[0] != '[' {
		t = append(append([]byte("["), t...), ']')
	}
	_ = json.Unmarshal(t, &msgs)
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, m := range msgs {
		u.calls = append(u.calls, strings.TrimSpace(m.Method+" "+m.Params.Name+m.Params.URI))
	}
}

// received reports whether a request "method name" reached the upstream.
func (u *upstream) received(call string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Contains(u.calls, call)
}

func (u *upstream) requests() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.calls)
}

// gatewayFor starts a gateway with two routes to target: /mcp/filtered (the test roles policy,
// then the capability filter with options filterOptions) and /mcp/plain (the roles policy only).
func gatewayFor(t testing.TB, target, filterOptions string) *gatewaytest.Gateway {
	t.Helper()
	return gatewaytest.New(t, gatewaytest.Options{Dir: projectFor(t, target, filterOptions)})
}

// projectFor writes the project gatewayFor serves.
func projectFor(t testing.TB, target, filterOptions string) string {
	t.Helper()
	route := func(path, op, policies string) string {
		return `"` + path + `":{"post":{"operationId":"` + op + `","x-zuplo-route":{"corsPolicy":"none",
		  "handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"` + target + `"}},
		  "policies":{"inbound":[` + policies + `]}}}}`
	}
	return gatewaytest.Project(t, map[string]string{
		"config/policies.json": `{"policies":[
		  {"name":"roles","policyType":"` + rolesPolicyType + `","handler":{"module":"$import(@zuplo/runtime)","export":"` + rolesExport + `","options":{}}},
		  {"name":"filter","policyType":"mcp-capability-filter-inbound","handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpCapabilityFilterInboundPolicy","options":` + filterOptions + `}}]}`,
		"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{` +
			route("/mcp/filtered", "filtered-mcp", `"roles","filter"`) + `,` + route("/mcp/plain", "plain-mcp", `"roles"`) + `}}`,
	})
}

// headerTransport adds headers to every request.
type headerTransport struct {
	base http.RoundTripper
	h    map[string]string
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.h {
		r.Header.Set(k, v)
	}
	return t.base.RoundTrip(r)
}

// user is who a client acts as: a name (empty for anonymous), roles and groups.
type user struct{ name, roles, groups string }

func (u user) headers() map[string]string {
	h := map[string]string{}
	if u.name != "" {
		h[userHeader] = u.name
	}
	if u.roles != "" {
		h[userRolesHeader] = u.roles
	}
	if u.groups != "" {
		h[userGroupsHeader] = u.groups
	}
	return h
}

// connect opens an SDK client session to endpoint as u.
func connect(t testing.TB, endpoint string, u user) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "v1"}, nil)
	hc := &http.Client{Transport: headerTransport{base: http.DefaultTransport, h: u.headers()}}
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connecting to %s: %v", endpoint, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func toolNames(t testing.TB, cs *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tool, err := range cs.Tools(context.Background(), nil) {
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

// wantCode fails unless err is a JSON-RPC error with the code.
func wantCode(t testing.TB, err error, code int64, what string) {
	t.Helper()
	var we *jsonrpc.Error
	if !errors.As(err, &we) {
		t.Fatalf("%s: want JSON-RPC error %d, got %v", what, code, err)
	}
	if we.Code != code {
		t.Fatalf("%s: want code %d, got %d (%s)", what, code, we.Code, we.Message)
	}
}

// post sends a raw JSON-RPC body to url as u and returns the response with its body.
func post(t testing.TB, url, body string, u user, accept string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if accept == "" {
		accept = "application/json, text/event-stream"
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	for k, v := range u.headers() {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var (
	jsonStateless = &mcp.StreamableHTTPOptions{JSONResponse: true, Stateless: true}
	sseStateless  = &mcp.StreamableHTTPOptions{Stateless: true}
	jsonStateful  = &mcp.StreamableHTTPOptions{JSONResponse: true}
	sseStateful   = &mcp.StreamableHTTPOptions{}
)

// transports are the two answer forms every behaviour is checked with.
var transports = []struct {
	name string
	opts *mcp.StreamableHTTPOptions
}{
	{"json", jsonStateful},
	{"sse", sseStateful},
}
