package connect

import (
	"net/http"

	"github.com/mcpgate/mcpgate/internal/mcpwire"
	"github.com/mcpgate/mcpgate/internal/policy"
)

// The gateway issues its own Mcp-Session-Id on token-exchange routes: it carries what the client
// declared in its initialize (whether it can open a connect link itself) and the upstream's own
// session id, bound by an HMAC to the caller's subject. No session state is kept: every replica
// reads it, and a session id presented by another caller does not open (404, as for an unknown
// session). The upstream sees only its own session id, and the client only the gateway's: an
// upstream's own session id presented on these routes is refused the same way (404).

// clientSession is what the request's gateway session id says.
type clientSession struct {
	// known: the client's initialize was seen (now, or when the session was issued).
	known    bool
	info     mcpwire.ClientInfo
	upstream string
	// issued: the request carried a gateway session id; presented is that id.
	issued    bool
	presented string
	// caller is the subject session ids are bound to (callerSubject).
	caller string
}

// openSession reads and removes the request's gateway session id, putting the upstream's own
// session id (if any) in its place. Every session id an upstream issues on these routes reaches
// the client wrapped (wrapSession), so an unwrapped one was never issued to this caller by the
// gateway: it may be another user's upstream session id (readable inside their wrapped id, or
// leaked from a log), and the upstream — which in shared mode sees every caller with the same
// token — could not tell them apart. It is refused like an unknown session (404), and the
// client starts a new session.
func (m *Manager) openSession(c *policy.Context, r *http.Request, caller string) (clientSession, error) {
	presented := r.Header.Get(mcpwire.SessionHeader)
	info, ups, present, err := mcpwire.OpenSession(m.sessionKey, caller, r.Header)
	c.ClaimSession(present && err == nil)
	if err != nil {
		return clientSession{}, policy.ErrSessionNotFound("session id not issued to this caller by the gateway (an upstream's own id is never accepted on a token-exchange route)")
	}
	if !present {
		return clientSession{caller: caller}, nil
	}
	c.ClientName = info.Name
	return clientSession{known: true, info: info, upstream: ups, issued: true, presented: presented, caller: caller}, nil
}

// learn reads the client's declaration when the request is an initialize.
func (s *clientSession) learn(c *policy.Context) {
	if s.issued {
		return
	}
	if info, ok := mcpwire.InitializeInfo(c.RequestBody()); ok {
		s.known, s.info = true, info
		c.ClientName = info.Name
	}
}

// wrapSession replaces the upstream's session id in a successful answer with the gateway's, and
// issues one on an initialize answer even when the upstream (stateless) issued none, so what the
// client declared reaches its later requests.
func (m *Manager) wrapSession(resp *http.Response, s clientSession) {
	ups := resp.Header.Get(mcpwire.SessionHeader)
	if ups == "" && (s.issued || !s.known) {
		return
	}
	if ups == "" && resp.StatusCode >= 300 {
		return
	}
	if s.issued && ups == s.upstream {
		// The upstream kept the session: the id the client presented is the one WrapSession
		// would make again (same caller, client and upstream id; the id opened only in its
		// canonical form), so it is sent back as it came, without another MAC.
		resp.Header.Set(mcpwire.SessionHeader, s.presented)
		return
	}
	resp.Header.Set(mcpwire.SessionHeader, mcpwire.WrapSession(m.sessionKey, s.caller, s.info, ups))
}

// connectRequiredAnswer is the connect-required answer for the request: the fallback a client
// without URL elicitation can show its user, or the usual -32042 / input_required answer.
func (m *Manager) connectRequiredAnswer(c *policy.Context, r *http.Request, env mcpwire.Envelope, s clientSession, up *Upstream, cr mcpwire.ConnectRequired) *http.Response {
	if s.known && !s.info.URLElicitation && mcpwire.HasFallback(env) {
		var sid string
		if env.Method() == "initialize" {
			sid = mcpwire.WrapSession(m.sessionKey, s.caller, s.info, "")
		}
		return mcpwire.Fallback(env, r.Header.Get("Accept"), up.DisplayName, "mcpgate", sid, s.info, cr)
	}
	return mcpwire.ConnectRequiredResponse(env, r.Header.Get("Accept"), r.Header.Get(mcpwire.ProtocolVersionHeader), c.RequestID, cr)
}

// callerSubject is the subject a session id is bound to ("" for an anonymous caller).
func callerSubject(c *policy.Context) string {
	if c.User == nil {
		return ""
	}
	return c.User.Subject()
}
