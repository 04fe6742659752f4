package signin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/policy/authcommon"
	"github.com/mcpgate/mcpgate/internal/problem"
)

// inbound authenticates an MCP request by a gateway-issued access token (the request step of
// mcp-oauth-inbound). It sets the user exactly as the other auth policies do and removes the
// caller's bearer, which never reaches the upstream.
type inbound struct {
	s    *Server
	spec *policy.SignInSpec
}

// HandleRequest implements policy.Inbound.
func (in *inbound) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	s := in.s
	rt := s.routeByPath(c.Route.Path)
	if rt == nil {
		return nil, problem.New(http.StatusInternalServerError, "The route's sign-in is not set up.", errors.New("signin: route not attached")).WithReason("gateway_configuration")
	}
	tok, present, ok := authcommon.Credential(r, "Authorization", "Bearer")
	var (
		u      *policy.User
		reason string
		detail string
		cause  error
	)
	switch {
	case !present:
		reason, detail = authcommon.ReasonMissingToken, "Sign in: this MCP server uses OAuth; your client starts the sign-in from the WWW-Authenticate challenge."
	case !ok:
		reason, detail = authcommon.ReasonInvalidToken, "The Authorization header must be \"Bearer <access token>\"."
	default:
		u, reason, detail, cause = in.validate(c, r, rt, tok)
		if u == nil && reason == "" {
			return nil, problem.New(http.StatusServiceUnavailable, "The gateway could not check the sign-in; try again.", cause).
				WithReason("store_unavailable").WithHeader("Retry-After", "5")
		}
	}
	err := authcommon.Conclude(c, r, "Authorization", u, present, false, func() error {
		params := []authcommon.Param{{Name: "realm", Value: "OAuth"}, {Name: "resource_metadata", Value: s.urls.URL(r, wellKnownPRM+rt.info.Path)},
			{Name: "scope", Value: Scope}}
		if reason != authcommon.ReasonMissingToken {
			params = append(params, authcommon.Param{Name: "error", Value: "invalid_token"}, authcommon.Param{Name: "error_description", Value: detail})
		}
		return authcommon.Refuse(c, r, s.audit, authcommon.Refusal{Policy: in.spec.Name, Reason: reason, Detail: detail,
			Challenge: authcommon.Challenge("Bearer", params...), Cause: cause})
	})
	if err != nil {
		return nil, err
	}
	return nil, nil
}

// validate checks an access token for route rt: sealed by this gateway, not expired, issued for
// this route, and its grant not revoked (checked at most every RevocationCheck per replica). A
// token that passed once is remembered (tokenCache), so the steady state is a map lookup and the
// grant-state check; User.Data is shared by the requests of one token and must not be modified.
func (in *inbound) validate(c *policy.Context, r *http.Request, rt *route, tok string) (*policy.User, string, string, error) {
	s := in.s
	v := s.tokens.get(tok)
	if v == nil {
		claims, err := s.openAccess(tok)
		if err != nil {
			s.metrics.SignIn("token_validated", "invalid")
			return nil, authcommon.ReasonInvalidToken, "The access token was not issued by this gateway.", err
		}
		ns, sub := claims.Subject.Split()
		data := map[string]any{}
		if len(claims.UserData) > 0 {
			_ = json.Unmarshal(claims.UserData, &data)
		}
		data["clientId"] = claims.Client
		v = &validToken{grant: claims.Grant, resource: claims.Resource, operationID: claims.OperationID,
			expires: time.Unix(claims.Expires, 0), sub: sub, ns: ns, data: data}
		s.tokens.put(tok, v, s.now())
	}
	if !s.now().Before(v.expires) {
		s.metrics.SignIn("token_validated", "expired")
		return nil, authcommon.ReasonExpired, "The access token expired; refresh it.", nil
	}
	if v.operationID != rt.info.OperationID || v.resource != s.resourceOf(r, rt) {
		s.metrics.SignIn("token_validated", "invalid_audience")
		return nil, authcommon.ReasonInvalidAudience, "The access token was issued for another MCP server of this gateway.", nil
	}
	usable, err := s.grantUsable(r.Context(), v.grant)
	if err != nil {
		return nil, "", "", fmt.Errorf("reading grant %s: %w", v.grant, err)
	}
	if !usable {
		s.metrics.SignIn("token_validated", "revoked")
		return nil, authcommon.ReasonRevoked, "The sign-in was revoked; sign in again.", nil
	}
	s.metrics.SignIn("token_validated", "success")
	return &policy.User{Sub: v.sub, Namespace: v.ns, Data: v.data}, "", "", nil
}

// validToken is an access token that opened: what its seal said.
type validToken struct {
	grant, resource, operationID string
	expires                      time.Time
	sub, ns                      string
	data                         map[string]any
}

// tokenCache remembers opened access tokens until they expire, bounded in size.
type tokenCache struct {
	mu    sync.RWMutex
	items map[string]*validToken
}

// maxCachedTokens bounds tokenCache; past it, expired entries go, then the cache is reset.
const maxCachedTokens = 50_000

func (c *tokenCache) get(tok string) *validToken {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.items[tok]
}

func (c *tokenCache) put(tok string, v *validToken, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil || len(c.items) >= maxCachedTokens {
		for k, e := range c.items {
			if !now.Before(e.expires) {
				delete(c.items, k)
			}
		}
		if c.items == nil || len(c.items) >= maxCachedTokens {
			c.items = map[string]*validToken{}
		}
	}
	c.items[tok] = v
}

var _ policy.Inbound = (*inbound)(nil)
