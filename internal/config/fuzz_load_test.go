package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad runs the whole loader on a project whose policies.json is arbitrary text: no panic,
// and a refusal always names the file.
func FuzzLoad(f *testing.F) {
	f.Add(`{"policies":[{"name":"k","policyType":"api-key-inbound","handler":{"module":"$import(@zuplo/runtime)","export":"ApiKeyInboundPolicy","options":{}}}]}`)
	f.Add(`{"policies":[{"name":"x","policyType":"mcp-token-exchange-inbound","handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpTokenExchangeInboundPolicy","options":{"authMode":"shared-oauth","displayName":"X"}}}]}`)
	f.Add(`{"policies":[{"name":"s","policyType":"mcp-oauth-inbound","handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpOAuthInboundPolicy","options":{"browserLogin":{"devLogin":true}}}}]}`)
	f.Add(`{"policies":[{}]}`)
	f.Add(`{`)
	routes := `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{"/mcp":{"post":{"operationId":"m","x-zuplo-route":{"corsPolicy":"none",
	"handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"https://up.example/mcp"}},
	"policies":{"inbound":["k"]}}}}}}`
	f.Fuzz(func(t *testing.T, policies string) {
		dir := t.TempDir()
		must := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		must(os.MkdirAll(filepath.Join(dir, "config"), 0o755))
		must(os.WriteFile(filepath.Join(dir, "zuplo.jsonc"), []byte(`{"version":1,"compatibilityDate":"2026-03-01"}`), 0o644))
		must(os.WriteFile(filepath.Join(dir, "config", "routes.oas.json"), []byte(routes), 0o644))
		must(os.WriteFile(filepath.Join(dir, "config", "policies.json"), []byte(policies), 0o644))
		_, err := Load(dir, func(string) (string, bool) { return "", false })
		if err != nil && !strings.Contains(err.Error(), "config/") {
			t.Fatalf("a problem that names no file: %v", err)
		}
	})
}
