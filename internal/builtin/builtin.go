// Package builtin registers every built-in module (handlers and policies) with the policy
// registry. Import it once, for its side effect, wherever config is loaded.
package builtin

import (
	_ "github.com/mcpgate/mcpgate/internal/policy/apikey"        // ApiKeyInboundPolicy
	_ "github.com/mcpgate/mcpgate/internal/policy/capfilter"     // McpCapabilityFilterInboundPolicy
	_ "github.com/mcpgate/mcpgate/internal/policy/headers"       // SetHeadersInboundPolicy, RemoveHeadersInboundPolicy, SetUpstreamApiKeyInboundPolicy
	_ "github.com/mcpgate/mcpgate/internal/policy/jwtauth"       // OpenIdJwtInboundPolicy
	_ "github.com/mcpgate/mcpgate/internal/policy/oauthinbound"  // McpOAuthInboundPolicy and its provider wrappers
	_ "github.com/mcpgate/mcpgate/internal/policy/ratelimit"     // RateLimitInboundPolicy
	_ "github.com/mcpgate/mcpgate/internal/policy/tokenexchange" // McpTokenExchangeInboundPolicy
	_ "github.com/mcpgate/mcpgate/internal/proxy"                // McpProxyHandler, urlRewriteHandler
)
