// Package examples_test checks the ready-made provider configurations in examples/: each loads
// with config.Load, names its provider's real MCP URL, authenticates callers before the token
// exchange, and builds into a serving gateway that refuses an unauthenticated call. Nothing here
// contacts GitHub, Linear, Atlassian or Notion: every request the test sends is stopped by the
// gateway's own authentication policy.
package examples_test

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	_ "github.com/mcpgate/mcpgate/internal/builtin"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy/apikey"
	"github.com/mcpgate/mcpgate/internal/policy/jwtauth"
	"github.com/mcpgate/mcpgate/internal/policy/tokenexchange"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// Values the test environment gives the examples' $env() variables. The secret must never
// appear in an error message.
const (
	githubClientID     = "Ov23liExampleClientID"
	githubClientSecret = "example-github-client-secret-3f9a7c"
	oidcIssuer         = "https://login.example.com/"
	oidcJWKS           = "https://login.example.com/.well-known/jwks.json"
	gatewayPublicURL   = "https://mcp.example.com"
)

var testEnv = map[string]string{
	"GITHUB_CLIENT_ID":     githubClientID,
	"GITHUB_CLIENT_SECRET": githubClientSecret,
	"OIDC_ISSUER":          oidcIssuer,
	"OIDC_JWKS_URL":        oidcJWKS,
	"GATEWAY_PUBLIC_URL":   gatewayPublicURL,
}

// example is what one provider configuration must hold.
type example struct {
	dir         string
	displayName string
	upstream    string // the provider's MCP URL (rewritePattern)
	gatewayAuth string // api-key-inbound or open-id-jwt-auth-inbound
	regMode     string // clientRegistration mode
	env         []string
}

var examples = []example{
	{dir: "github", displayName: "GitHub", upstream: "https://api.githubcopilot.com/mcp/", gatewayAuth: apikey.PolicyType, regMode: "manual",
		env: []string{"GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET"}},
	{dir: "linear", displayName: "Linear", upstream: "https://mcp.linear.app/mcp", gatewayAuth: jwtauth.PolicyType, regMode: "auto",
		env: []string{"GATEWAY_PUBLIC_URL", "OIDC_ISSUER", "OIDC_JWKS_URL"}},
	{dir: "atlassian", displayName: "Atlassian", upstream: "https://mcp.atlassian.com/v1/mcp", gatewayAuth: apikey.PolicyType, regMode: "auto"},
	{dir: "notion", displayName: "Notion", upstream: "https://mcp.notion.com/mcp", gatewayAuth: jwtauth.PolicyType, regMode: "auto",
		env: []string{"GATEWAY_PUBLIC_URL", "OIDC_ISSUER", "OIDC_JWKS_URL"}},
}

// recordingEnv answers lookups from testEnv and remembers which names were asked for.
type recordingEnv struct {
	mu    sync.Mutex
	asked map[string]bool
}

func (r *recordingEnv) lookup(name string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.asked == nil {
		r.asked = map[string]bool{}
	}
	r.asked[name] = true
	v, ok := testEnv[name]
	return v, ok
}

func (r *recordingEnv) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.asked))
}

func TestProviderExamples(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.dir, func(t *testing.T) {
			env := &recordingEnv{}
			p, err := config.Load(ex.dir, env.lookup)
			if err != nil {
				t.Fatalf("config.Load(%s):\n%v", ex.dir, err)
			}
			if got := env.names(); !slices.Equal(got, ex.env) {
				t.Errorf("$env variables used: %v, want %v (the README lists them)", got, ex.env)
			}
			if p.Version != 1 || p.CompatibilityDate < config.MinCompatibilityDate {
				t.Errorf("zuplo.jsonc: version %d compatibilityDate %s", p.Version, p.CompatibilityDate)
			}
			if len(p.Routes) != 1 {
				t.Fatalf("%d routes, want one MCP route", len(p.Routes))
			}
			r := p.Routes[0]
			if r.Path != "/mcp/"+ex.dir || r.OperationID != ex.dir+"-mcp-server" || !slices.Equal(r.Methods, []string{"GET", "POST"}) || r.CORSPolicy != "none" {
				t.Errorf("route %s %v operationId %q cors %q", r.Path, r.Methods, r.OperationID, r.CORSPolicy)
			}
			if r.Handler.Export != "McpProxyHandler" || r.Info == nil || r.Info.UpstreamURL == nil || r.Info.UpstreamURL.String() != ex.upstream {
				t.Errorf("handler %s to %v, want McpProxyHandler to %s", r.Handler.Export, r.Info.UpstreamURL, ex.upstream)
			}

			// Gateway authentication first, then the token exchange.
			if len(r.Inbound) != 2 {
				t.Fatalf("inbound policies %v, want gateway auth then mcp-token-exchange-%s", r.Inbound, ex.dir)
			}
			auth, tx := p.Policies[r.Inbound[0]], p.Policies[r.Inbound[1]]
			if auth.PolicyType != ex.gatewayAuth {
				t.Errorf("first inbound policy is %s, want %s", auth.PolicyType, ex.gatewayAuth)
			}
			switch a := auth.Handler.Value.(type) {
			case *apikey.Policy:
				if a.AllowUnauthenticatedRequests {
					t.Error("api-key-inbound lets unauthenticated requests through")
				}
			case *jwtauth.Policy:
				if a.Issuer != oidcIssuer || a.JwkURL != oidcJWKS || a.Audience != gatewayPublicURL+"/mcp/"+ex.dir ||
					!a.OAuthResourceMetadataEnabled || a.AllowUnauthenticatedRequests {
					t.Errorf("open-id-jwt-auth-inbound options %+v", a)
				}
			default:
				t.Errorf("gateway auth policy decoded to %T", a)
			}

			te, ok := tx.Handler.Value.(*tokenexchange.Policy)
			if !ok {
				t.Fatalf("second inbound policy %q decoded to %T, want mcp-token-exchange-inbound", tx.Name, tx.Handler.Value)
			}
			if te.UpstreamID() != ex.dir || te.DisplayName != ex.displayName || te.AuthMode != "user-oauth" || te.Summary == "" {
				t.Errorf("token exchange: id %q displayName %q authMode %q summary %q", te.UpstreamID(), te.DisplayName, te.AuthMode, te.Summary)
			}
			reg := te.Registration()
			if reg.Mode != ex.regMode {
				t.Errorf("clientRegistration mode %q, want %q", reg.Mode, ex.regMode)
			}
			if ex.regMode == "manual" && (reg.ClientID != githubClientID || reg.ClientSecret.Reveal() != githubClientSecret || reg.TokenEndpointAuthMethod != "client_secret_post") {
				t.Errorf("manual registration: client %q, secret from $env: %v, auth method %q", reg.ClientID, reg.ClientSecret.Reveal() == githubClientSecret, reg.TokenEndpointAuthMethod)
			}

			serveUnauthenticated(t, p, ex)
		})
	}
}

// serveUnauthenticated builds the gateway from the project (every policy provisioned, no
// network) and checks that a call without gateway credentials is refused by the gateway itself:
// it never reaches the provider.
func serveUnauthenticated(t *testing.T, p *config.Project, ex example) {
	t.Helper()
	g := gatewaytest.New(t, gatewaytest.Options{Config: p})

	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"examples-test","version":"1"}}}`
	req, err := http.NewRequest(http.MethodPost, g.URL+"/mcp/"+ex.dir, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("unauthenticated call: HTTP %d, WWW-Authenticate %q, want the gateway's own 401 challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if ex.gatewayAuth == jwtauth.PolicyType && !strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata=") {
		t.Errorf("JWT gateway auth challenge %q has no resource_metadata for MCP clients to find the login", resp.Header.Get("WWW-Authenticate"))
	}
}

// TestProviderExamplesWithoutEnvironment: an example whose variables are unset does not load,
// and the messages name the options without printing any value.
func TestProviderExamplesWithoutEnvironment(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.dir, func(t *testing.T) {
			_, err := config.Load(ex.dir, func(string) (string, bool) { return "", false })
			if len(ex.env) == 0 {
				if err != nil {
					t.Fatalf("needs no environment, but: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("loaded without its environment variables")
			}
			msg := err.Error()
			if !strings.Contains(msg, "config/policies.json: policies[") {
				t.Errorf("message does not name the file and option: %s", msg)
			}
			if strings.Contains(msg, githubClientSecret) {
				t.Error("a secret reached the message")
			}
		})
	}
}
