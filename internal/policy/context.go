package policy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/subject"
)

// RouteInfo is what policies and handlers may know about the route they serve.
type RouteInfo struct {
	Path        string   // the path as written in config
	Methods     []string // upper case
	OperationID string
	Summary     string
	// UpstreamURL is the resolved rewritePattern of an MCP or URL-rewrite route; nil otherwise.
	UpstreamURL *url.URL
	// File is the config file that defines the route, for messages.
	File string
}

// User is the authenticated caller, as Zuplo's request.user.
type User struct {
	// Sub is the subject as the authenticating policy names it (API-key consumer, JWT sub).
	Sub string
	// Data is the consumer metadata or the token's claims. It may be shared by every request of
	// one key or token (decoded once, cached): read it, never modify it.
	Data map[string]any
	// Namespace says how the subject was authenticated: "apikey", "jwt:<issuer>" or "dev" (see
	// package subject). Two equal Subs from different namespaces are different people
	// (docs/architecture.md#subjects).
	Namespace string
	// Admin is true when the caller may use the admin API and setup UI.
	Admin bool
}

// Subject is the namespaced subject used for every stored record: "<namespace>|<sub>".
func (u *User) Subject() string {
	if u == nil {
		return ""
	}
	return subject.New(u.Namespace, u.Sub).String()
}

// Env is what Provision gets.
type Env struct {
	Name   string // the policy or route it is configured under
	Logger *slog.Logger
	// Routes are the routes that use this policy (for a handler: its own route).
	Routes []*RouteInfo
	// Host holds the gateway-wide components, typed (see Host). The gateway never passes nil.
	Host *Host
}

// Context is the per-request state shared by the pipeline. It is not safe for concurrent use
// across requests; one request, one Context.
type Context struct {
	RequestID string
	Route     *RouteInfo
	User      *User
	Log       *slog.Logger
	Start     time.Time
	// ClientName is the MCP client's name from its initialize, when the gateway knows it (the
	// request is the initialize, or its session id carries it): the analytics' clientName.
	ClientName string

	// upstreamAuth is the Authorization value a policy chose for the upstream request. The
	// client's own Authorization is never forwarded (no token passthrough).
	upstreamAuth    string
	upstreamAuthSet bool

	outbound []Outbound
	hooks    []ResponseHook
	replayer Replayer

	sessionClaimed bool
	// sessionPresented: the claiming policy opened a session id it had issued to this caller.
	sessionPresented bool
}

// ClaimSession marks the request's Mcp-Session-Id as handled by a policy (the token exchange
// issues and opens its own); the MCP proxy handler then forwards the header as the policy left it.
// Without a claim the handler binds session ids to the authenticated caller itself
// (docs/architecture.md#the-mcp-session-id).
// presented reports whether the request carried a session id the policy issued to this caller
// (a stream resumption on an authenticated route must: docs/architecture.md#stream-resumption).
func (c *Context) ClaimSession(presented bool) {
	c.sessionClaimed, c.sessionPresented = true, presented
}

// SessionPresented reports whether the claiming policy opened a session id it had issued to the
// caller.
func (c *Context) SessionPresented() bool { return c.sessionPresented }

// SessionClaimed reports whether a policy called ClaimSession.
func (c *Context) SessionClaimed() bool { return c.sessionClaimed }

// ErrSessionNotFound is the answer to a gateway session id that does not open for the caller: 404,
// as the MCP transport answers an unknown session, so the client starts a new one.
func ErrSessionNotFound(why string) *problem.Error {
	return problem.New(http.StatusNotFound, "This MCP session is unknown: start a new session (initialize).",
		errors.New(why)).WithReason("session_not_found")
}

// Replayer re-sends the request a proxying handler forwarded (same method, URL, headers and
// buffered body) with another upstream Authorization value; an empty value sends none. The
// response is the upstream's raw response: the caller (a response hook) owns its body.
type Replayer interface {
	Replay(ctx context.Context, authorization string) (*http.Response, error)
}

// ErrNoReplay is returned by Context.Replay when the handler did not register a Replayer (the
// response did not come from a proxied upstream).
var ErrNoReplay = errors.New("policy: this request cannot be replayed")

// SetReplayer is called by a proxying handler before it forwards, so a response hook can replay
// the request once (refresh-and-retry on an upstream 401).
func (c *Context) SetReplayer(r Replayer) { c.replayer = r }

// Replay re-sends the forwarded request with the given upstream Authorization and returns the
// upstream's response, or ErrNoReplay. It also records authorization as the upstream credential.
func (c *Context) Replay(ctx context.Context, authorization string) (*http.Response, error) {
	if c.replayer == nil {
		return nil, ErrNoReplay
	}
	c.SetUpstreamAuthorization(authorization)
	return c.replayer.Replay(ctx, authorization)
}

// SetUpstreamAuthorization sets the Authorization header the upstream receives. An empty value
// clears it.
func (c *Context) SetUpstreamAuthorization(v string) { c.upstreamAuth, c.upstreamAuthSet = v, v != "" }

// UpstreamAuthorization returns the value a policy set, if any.
func (c *Context) UpstreamAuthorization() (string, bool) { return c.upstreamAuth, c.upstreamAuthSet }

// SetOutbound sets the route's outbound policies; the gateway calls it.
func (c *Context) SetOutbound(p []Outbound) { c.outbound = p }

// AddResponseHook registers a hook; hooks run in registration order, each on the previous one's
// response.
func (c *Context) AddResponseHook(h ResponseHook) { c.hooks = append(c.hooks, h) }

// ProcessResponse runs the outbound policies, then the response hooks, and returns the response
// to send. If a step fails, the response it was given is closed.
func (c *Context) ProcessResponse(r *http.Request, resp *http.Response) (*http.Response, error) {
	for _, p := range c.outbound {
		next, err := p.HandleResponse(c, r, resp)
		if err != nil {
			closeBody(resp, next)
			return nil, err
		}
		resp = next
	}
	return c.RunHooks(r, resp)
}

// RunHooks runs only the response hooks (for responses answered by an inbound policy).
func (c *Context) RunHooks(r *http.Request, resp *http.Response) (*http.Response, error) {
	for _, h := range c.hooks {
		next, err := h(c, r, resp)
		if err != nil {
			closeBody(resp, next)
			return nil, err
		}
		if next != nil {
			resp = next
		}
	}
	return resp, nil
}

func closeBody(old, next *http.Response) {
	if old != nil && old.Body != nil {
		_ = old.Body.Close()
	}
	if next != nil && next != old && next.Body != nil {
		_ = next.Body.Close()
	}
}

// RequestBody returns the request body the handler buffered before forwarding (the MCP proxy
// buffers it, bounded, for Replay), or nil. Response hooks use it to answer the JSON-RPC ids of
// the request without reading the body a second time.
func (c *Context) RequestBody() []byte {
	if b, ok := c.replayer.(interface{ RequestBody() []byte }); ok {
		return b.RequestBody()
	}
	return nil
}
