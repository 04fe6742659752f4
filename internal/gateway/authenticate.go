package gateway

import (
	"errors"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/requestid"
)

// errNoUser is the cause when a route's inbound policies ran without authenticating anyone.
var errNoUser = errors.New("no inbound policy of the route authenticated the request")

// authenticate implements policy.Authenticator for s.
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
	c := &policy.Context{RequestID: requestid.From(r.Context()), Route: rt.info, Log: log, Start: s.now()}
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
