// A regression guard from the security review: `mcpgate validate` (config.Load) refuses what
// `serve` would refuse or fail on. Its name ends in _Review.
package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
)

// It does not use gatewaytest.Project: importing gatewaytest registers its test auth policy, which
// TestDocsListEveryModule would then ask docs/configuration.md to document.

// reviewWriteConfig writes a project from policies.json and routes.oas.json bodies.
func reviewWriteConfig(t *testing.T, policies, routes string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"zuplo.jsonc":            `{"version":1,"compatibilityDate":"2026-03-01"}`,
		"config/policies.json":   policies,
		"config/routes.oas.json": routes,
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const reviewPolicies = `{"policies":[
 {"name":"mcp-token-exchange-lin","policyType":"mcp-token-exchange-inbound","handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpTokenExchangeInboundPolicy","options":{"displayName":"Linear","authMode":"user-oauth"}}},
 {"name":"key","policyType":"api-key-inbound","handler":{"module":"$import(@zuplo/runtime)","export":"ApiKeyInboundPolicy","options":{}}}]}`

// reviewMCPRoute is a POST route to target through the MCP proxy with the inbound policies inbound
// (a JSON list's elements).
func reviewMCPRoute(path, op, target, inbound string) string {
	return `"` + path + `":{"post":{"operationId":"` + op + `","x-zuplo-route":{"handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"` + target + `"}},"policies":{"inbound":[` + inbound + `]}}}}`
}

// FIXED FINDING (regression guard): `mcpgate validate` accepts configs that `serve` refuses or that fail every request:
// user-oauth token exchange with no gateway auth before it (every request answers 500
// gateway_configuration at run time), and one upstream id on routes with different rewritePattern
// URLs (serve refuses to start in Provision; validate says "configuration is valid").
func TestValidateCatchesRuntimeOnlyConfigErrors_Review(t *testing.T) {
	cases := []struct {
		name, routes, want string
	}{
		{"token exchange without gateway auth",
			`{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{` + reviewMCPRoute("/mcp/a", "a", "https://a.example/mcp", `"mcp-token-exchange-lin"`) + `}}`,
			"mcp-token-exchange-lin"},
		{"token exchange before gateway auth",
			`{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{` + reviewMCPRoute("/mcp/a", "a", "https://a.example/mcp", `"mcp-token-exchange-lin","key"`) + `}}`,
			"mcp-token-exchange-lin"},
		{"one upstream id, two upstream URLs",
			`{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{` + reviewMCPRoute("/mcp/a", "a", "https://a.example/mcp", `"key","mcp-token-exchange-lin"`) + `,` +
				reviewMCPRoute("/mcp/b", "b", "https://b.example/mcp", `"key","mcp-token-exchange-lin"`) + `}}`,
			"b.example"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load(reviewWriteConfig(t, reviewPolicies, tc.routes), func(string) (string, bool) { return "", false })
			if err == nil {
				t.Fatalf("config.Load accepted it; want an error naming %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}
