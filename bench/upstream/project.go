package upstream

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// Policy is one entry of an mcpgate project's config/policies.json.
type Policy struct {
	Name    string         `json:"name"`
	Type    string         `json:"policyType"`
	Handler PolicyHandler  `json:"handler"`
	Options map[string]any `json:"-"` // copied into Handler.Options by GatewayProject.Write
}

// PolicyHandler is a policy's {module, export, options}.
type PolicyHandler struct {
	Module  string         `json:"module"`
	Export  string         `json:"export"`
	Options map[string]any `json:"options"`
}

// GatewayProject is an mcpgate project with one McpProxyHandler route, POST /mcp, that forwards to
// Upstream through Inbound (policy names, run in order; each one of Policies).
type GatewayProject struct {
	Upstream string
	Policies []Policy
	Inbound  []string
}

// WriteGatewayProject writes into dir an mcpgate project whose one route, POST /mcp, forwards to
// upstreamURL with the McpProxyHandler and no policies: what the benchmark measures mcpgate with.
func WriteGatewayProject(dir, upstreamURL string) error {
	return GatewayProject{Upstream: upstreamURL}.Write(dir)
}

// StaticKeyProject forwards to upstreamURL with a static upstream credential
// (set-upstream-api-key-inbound: "Authorization: Bearer <key>" on every forwarded request).
func StaticKeyProject(upstreamURL, key string) GatewayProject {
	return GatewayProject{Upstream: upstreamURL, Inbound: []string{"upstream-key"}, Policies: []Policy{{
		Name: "upstream-key", Type: "set-upstream-api-key-inbound",
		Handler: PolicyHandler{Module: "$import(@zuplo/runtime)", Export: "SetUpstreamApiKeyInboundPolicy"},
		Options: map[string]any{"value": "Bearer " + key},
	}}}
}

// APIKeyOAuthProject authenticates callers by an mcpgate API key (api-key-inbound) and sends each
// caller's own upstream OAuth token (mcp-token-exchange-inbound, user-oauth) to upstreamURL.
func APIKeyOAuthProject(upstreamURL string) GatewayProject {
	return GatewayProject{Upstream: upstreamURL, Inbound: []string{"api-key", TokenExchangePolicyName}, Policies: []Policy{{
		Name: "api-key", Type: "api-key-inbound",
		Handler: PolicyHandler{Module: "$import(@zuplo/runtime)", Export: "ApiKeyInboundPolicy"},
		Options: map[string]any{},
	}, tokenExchange()}}
}

// SignInOAuthProject makes mcpgate the callers' OAuth authorization server (mcp-oauth-inbound with
// the development login, access tokens of accessTokenTTL seconds) and sends each caller's own
// upstream OAuth token (mcp-token-exchange-inbound, user-oauth) to upstreamURL.
func SignInOAuthProject(upstreamURL string, accessTokenTTL int) GatewayProject {
	return GatewayProject{Upstream: upstreamURL, Inbound: []string{"signin", TokenExchangePolicyName}, Policies: []Policy{{
		Name: "signin", Type: "mcp-oauth-inbound",
		Handler: PolicyHandler{Module: "$import(@zuplo/runtime/mcp-gateway)", Export: "McpOAuthInboundPolicy"},
		Options: map[string]any{"browserLogin": map[string]any{"devLogin": true}, "gateway": map[string]any{"accessTokenTtlSeconds": accessTokenTTL}},
	}, tokenExchange()}}
}

// TokenExchangePolicyName names the token-exchange policy (and so the upstream id, "bench").
const TokenExchangePolicyName = "mcp-token-exchange-bench"

// TokenExchangeDisplayName is the upstream's name on the consent pages.
const TokenExchangeDisplayName = "Bench upstream"

func tokenExchange() Policy {
	return Policy{
		Name: TokenExchangePolicyName, Type: "mcp-token-exchange-inbound",
		Handler: PolicyHandler{Module: "$import(@zuplo/runtime/mcp-gateway)", Export: "McpTokenExchangeInboundPolicy"},
		Options: map[string]any{"displayName": TokenExchangeDisplayName, "authMode": "user-oauth"},
	}
}

// Write writes the project into dir (zuplo.jsonc, config/policies.json, config/routes.oas.json).
func (p GatewayProject) Write(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "config"), 0o755); err != nil {
		return err
	}
	policies := make([]Policy, len(p.Policies))
	for i, pol := range p.Policies {
		pol.Handler.Options = pol.Options
		policies[i] = pol
	}
	pj, err := json.MarshalIndent(map[string]any{"policies": policies, "corsPolicies": []any{}}, "", "  ")
	if err != nil {
		return err
	}
	inbound := p.Inbound
	if inbound == nil {
		inbound = []string{}
	}
	ib, err := json.Marshal(inbound)
	if err != nil {
		return err
	}
	up, err := json.Marshal(p.Upstream)
	if err != nil {
		return err
	}
	files := map[string]string{
		"zuplo.jsonc":          `{"version": 1, "compatibilityDate": "2026-03-01"}` + "\n",
		"config/policies.json": string(pj) + "\n",
		"config/routes.oas.json": `{
  "openapi": "3.1.0",
  "info": {"title": "mcpgate benchmark", "version": "1.0.0"},
  "paths": {
    "/mcp": {
      "post": {
        "operationId": "bench-mcp-server",
        "summary": "Bench upstream",
        "x-zuplo-route": {
          "corsPolicy": "none",
          "handler": {
            "module": "$import(@zuplo/runtime/mcp-gateway)",
            "export": "McpProxyHandler",
            "options": {"rewritePattern": ` + string(up) + `}
          },
          "policies": {"inbound": ` + string(ib) + `}
        }
      }
    }
  }
}
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
