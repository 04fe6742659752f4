package tokenexchange

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// Provision attaches the upstream to the gateway's connection manager (Host.Connections), which
// returns the step that applies the caller's credential on each request.
func (p *Policy) Provision(_ context.Context, env *policy.Env) error {
	if env.Host == nil || env.Host.Connections == nil {
		return errors.New("mcp-token-exchange-inbound needs the gateway's connection manager (Host.Connections), and the gateway gave none")
	}
	var upstreamURL string
	ops := map[string]bool{}
	for _, rt := range env.Routes {
		if rt.UpstreamURL == nil {
			return fmt.Errorf("route %s has no upstream URL: the policy needs an McpProxyHandler route with a rewritePattern", rt.Path)
		}
		if upstreamURL != "" && rt.UpstreamURL.String() != upstreamURL {
			return fmt.Errorf("routes using upstream %q forward to different URLs (%s and %s); use one policy per upstream URL", p.UpstreamID(), upstreamURL, rt.UpstreamURL)
		}
		upstreamURL = rt.UpstreamURL.String()
		ops[rt.OperationID] = true
	}
	spec := policy.UpstreamSpec{
		Upstream: upstream.Upstream{
			ID: p.UpstreamID(), URL: upstreamURL, DisplayName: p.DisplayName,
			ProtectedResourceMetadataURL: p.ProtectedResourceMetadataURL,
			Scopes:                       p.Scopes, ScopeDelimiter: p.Delimiter(),
			Prompt:       p.Prompt,
			Registration: p.Registration(),
		},
		Summary: p.Summary, Mode: store.ModeUser, OperationIDs: ops,
	}
	if p.AuthMode == AuthModeShared {
		spec.Mode = store.ModeShared
	}
	in, err := env.Host.Connections.Attach(spec)
	if err != nil {
		return err
	}
	p.inject = in
	return nil
}

// HandleRequest applies the caller's upstream credential (the connection manager's step).
func (p *Policy) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	return p.inject.HandleRequest(c, r)
}

var (
	_ policy.Inbound     = (*Policy)(nil)
	_ policy.Provisioner = (*Policy)(nil)
	_ policy.Validator   = (*Policy)(nil)
	_ policy.Namer       = (*Policy)(nil)
)
