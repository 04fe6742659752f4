package gateway

import (
	"errors"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
)

// Authenticator authenticates a request to a gateway endpoint exactly as the first route (in
// config order) whose operationId is in operationIDs would: it runs that route's inbound
// policies in order until one of them sets the request's user. It returns the user, or false
// after it has written the refusal (the policy's own answer, a 401 with its WWW-Authenticate, or
// a problem). Policies after the one that authenticated (the token exchange, say) do not run.
//
// It lets an endpoint that acts on a user's own state (DELETE {base}/connections/{id}) accept
// exactly the credential the user's MCP client already sends to that upstream's routes, with no
// second authentication configuration.
type Authenticator func(w http.ResponseWriter, r *http.Request, operationIDs map[string]bool) (*policy.User, bool)

// errNoUser is the cause when a route's inbound policies ran without authenticating anyone.
var errNoUser = errors.New("no inbound policy of the route authenticated the request")

// authenticate implements Authenticator for s.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, operationIDs map[string]bool) (*policy.User, bool) {
	var rt *route
	for _, cand := range s.routes {
		if operationIDs[cand.info.OperationID] {
			rt = cand
			break
		}
	}
	if rt == nil {
		s.Fail(w, r, problem.New(http.StatusNotFound, "No route uses this upstream.", nil).WithReason("route_not_found"))
		return nil, false
	}
	log := s.Logger(r.Context())
	c := &policy.Context{RequestID: RequestID(r.Context()), Route: rt.info, Log: log, Start: s.now()}
	for _, in := range rt.inbound {
		resp, err := in.HandleRequest(c, r)
		if err != nil {
			s.Fail(w, r, err)
			return nil, false
		}
		if resp != nil {
			if resp, err = c.RunHooks(r, resp); err != nil {
				s.Fail(w, r, err)
				return nil, false
			}
			writeResponse(w, resp)
			return nil, false
		}
		if c.User != nil {
			return c.User, true
		}
	}
	s.Fail(w, r, problem.New(http.StatusUnauthorized,
		"This endpoint needs the credential your MCP client uses for "+rt.info.Path+".", errNoUser).WithReason("unauthenticated"))
	return nil, false
}
