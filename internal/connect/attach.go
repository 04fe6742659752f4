package connect

import (
	"errors"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/store"
)

// Attach implements policy.Connections: it registers the upstream a token-exchange policy serves
// and returns the inbound step that applies the caller's credential on its routes.
func (m *Manager) Attach(spec policy.UpstreamSpec) (policy.Inbound, error) {
	up := &Upstream{UpstreamSpec: spec}
	if err := m.Add(up); err != nil {
		return nil, err
	}
	return &inject{m: m, up: up, authProfileID: up.AuthProfileID()}, nil
}

// inject is the run-time half of mcp-token-exchange-inbound for one upstream.
type inject struct {
	m             *Manager
	up            *Upstream
	authProfileID string // up.AuthProfileID(), built once for the per-request event
}

// HandleRequest injects the caller's upstream credential when there is a usable one, and always
// registers the response hook that handles the upstream's 401/403.
func (p *inject) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	caller := callerSubject(c) // built once: the session id and the connection key both need it
	var subject string
	if p.up.Mode == store.ModeUser {
		if c.User == nil {
			return nil, problem.New(http.StatusInternalServerError,
				"The route's mcp-token-exchange-inbound policy for "+p.up.DisplayName+" runs before any gateway authentication, so there is no user to connect. Put an authentication policy (api-key-inbound, open-id-jwt-auth-inbound) before it.",
				errors.New("token exchange without request user")).WithReason("gateway_configuration")
		}
		subject = caller
	}
	sess, err := p.m.openSession(c, r, caller)
	if err != nil {
		return nil, err
	}
	ep := p.m.Endpoints(r)
	lk, err := p.m.Lookup(r.Context(), ep, p.up, Key(p.up, subject), c.RequestID)
	if err != nil {
		return nil, err
	}
	if lk.Token != nil {
		c.SetUpstreamAuthorization(lk.Token.Authorization.Reveal())
		p.m.audit.RecordAccepted(r.Context(), audit.Event{Event: audit.RequestAccepted, Outcome: audit.OutcomeSuccess,
			SubjectID: lk.Key.Subject, UpstreamID: p.up.ID, OperationID: c.Route.OperationID, AuthProfileID: p.authProfileID,
			RequestID: c.RequestID, Actor: caller})
	}
	c.AddResponseHook(p.m.Hook(ep, p.up, lk, sess))
	return nil, nil
}

var (
	_ policy.Connections = (*Manager)(nil)
	_ policy.Inbound     = (*inject)(nil)
)
