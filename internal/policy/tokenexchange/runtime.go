package tokenexchange

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// Provision registers the upstream with the gateway's connection manager.
func (p *Policy) Provision(_ context.Context, env *policy.Env) error {
	m, err := connect.FromServices(gateway.ServicesFrom(env.Services))
	if err != nil {
		return err
	}
	var upstreamURL string
	ops := map[string]bool{}
	for _, rt := range env.Routes {
		if rt.Upstream == nil {
			return fmt.Errorf("route %s has no upstream URL: the policy needs an McpProxyHandler route with a rewritePattern", rt.Path)
		}
		if upstreamURL != "" && rt.Upstream.String() != upstreamURL {
			return fmt.Errorf("routes using upstream %q forward to different URLs (%s and %s); use one policy per upstream URL", p.UpstreamID(), upstreamURL, rt.Upstream)
		}
		upstreamURL = rt.Upstream.String()
		ops[rt.OperationID] = true
	}
	reg := p.Registration()
	up := &connect.Upstream{
		Upstream: upstream.Upstream{
			ID: p.UpstreamID(), URL: upstreamURL, DisplayName: p.DisplayName,
			ProtectedResourceMetadataURL: p.ProtectedResourceMetadataURL,
			Scopes:                       p.Scopes, ScopeDelimiter: p.Delimiter(),
			Prompt: upstream.Prompt{Value: p.Prompt.Value, Disabled: p.Prompt.Disabled},
			Registration: upstream.RegistrationConfig{Mode: reg.Mode, ClientID: reg.ClientID, ClientSecret: reg.ClientSecret,
				TokenEndpointAuthMethod: reg.AuthMethod},
		},
		Summary: p.Summary, Mode: store.ModeUser, AuthMode: p.AuthMode, OperationIDs: ops,
	}
	if p.AuthMode == AuthModeShared {
		up.Mode = store.ModeShared
	}
	if err := m.Add(up); err != nil {
		return err
	}
	p.m, p.up = m, up
	p.audit = gateway.ServicesFrom(env.Services).Audit
	return nil
}

// actorOf names the caller when it differs from the connection's subject (shared mode).
func actorOf(c *policy.Context) string {
	if c.User == nil {
		return ""
	}
	return c.User.Subject()
}

// HandleRequest injects the caller's upstream credential when there is a usable one, and always
// registers the response hook that handles the upstream's 401/403.
func (p *Policy) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	var subject string
	if p.up.Mode == store.ModeUser {
		if c.User == nil {
			return nil, problem.New(http.StatusInternalServerError,
				"The route's "+PolicyType+" policy for "+p.up.DisplayName+" runs before any gateway authentication, so there is no user to connect. Put an authentication policy (api-key-inbound, open-id-jwt-auth-inbound) before it.",
				errors.New("token exchange without request user")).WithReason("gateway_configuration")
		}
		subject = c.User.Subject()
	}
	ep := p.m.Endpoints(r)
	lk, err := p.m.Lookup(r.Context(), ep, p.up, connect.Key(p.up, subject), c.RequestID)
	if err != nil {
		return nil, err
	}
	if lk.Token != nil {
		c.SetUpstreamAuthorization(lk.Token.Authorization.Reveal())
		p.audit.RecordAsync(r.Context(), audit.Event{Event: audit.RequestAccepted, Outcome: audit.OutcomeSuccess,
			SubjectID: lk.Key.Subject, UpstreamID: p.up.ID, OperationID: c.Route.OperationID, AuthProfileID: p.up.AuthProfileID(),
			RequestID: c.RequestID, Actor: actorOf(c)})
	}
	c.AddResponseHook(p.m.Hook(ep, p.up, lk))
	return nil, nil
}

var (
	_ policy.Inbound     = (*Policy)(nil)
	_ policy.Provisioner = (*Policy)(nil)
	_ policy.Validator   = (*Policy)(nil)
	_ policy.Namer       = (*Policy)(nil)
)
