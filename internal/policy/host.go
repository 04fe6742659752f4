package policy

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/limiter"
	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/safehttp"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// Host is what the gateway provides to the modules it provisions: every field is typed, and a
// module takes the ones it needs in Provision. serve builds one Host (cmd/mcpgate, runServe);
// gateway.New fills URLs, Register and Authenticate when they are nil. A module that needs a
// field the host left nil fails Provision with an error that names it.
type Host struct {
	Logger *slog.Logger
	// URLs derives public URLs (redirect URIs, connect links, metadata documents).
	URLs *publicurl.URLs
	// Audit records audit events (synchronously for security events, queued for per-request ones).
	Audit *audit.Recorder
	// APIKeys is the store's API-key part (api-key-inbound).
	APIKeys store.APIKeys
	// Connections is the gateway's connection manager (mcp-token-exchange-inbound).
	Connections Connections
	// SignIn is the gateway's authorization server for MCP clients (mcp-oauth-inbound).
	SignIn SignIn
	// Register adds a gateway endpoint (pattern as http.ServeMux) served before the routes.
	Register func(pattern string, h http.Handler)
	// Authenticate authenticates a gateway endpoint's request as a route would.
	Authenticate Authenticator
	// Proxy holds the proxying handlers' gateway-level settings; zero fields take their defaults.
	Proxy ProxySettings
	// RateLimits is the Redis server rate-limit-inbound counts in, shared by every replica
	// (MCPGATE_REDIS_URL); nil: each instance counts in its own memory.
	RateLimits *limiter.Redis
	// Now is the clock of modules' in-memory windows (rate-limit-inbound); nil: time.Now. Tests set it.
	Now func() time.Time

	mu     sync.Mutex
	shared map[string]any
}

// ProxySettings are the gateway-level settings of the proxying handlers (flags and MCPGATE_*
// variables, not route options). A zero field means the handler's default.
type ProxySettings struct {
	// HeaderTimeout is how long the upstream may take to send its response headers.
	HeaderTimeout time.Duration
	// MaxRequestBody is the largest request body forwarded.
	MaxRequestBody int64
	// StreamWriteTimeout bounds one write of a streamed response to the client.
	StreamWriteTimeout time.Duration
	// Transport replaces the shared upstream transport (tests, custom TLS). It sends the request
	// to the route's rewritePattern; redirect hops (followRedirects) never use it.
	Transport http.RoundTripper
	// RedirectAllow is the operator allow list (MCPGATE_SAFEHTTP_ALLOW) for redirect hops
	// (followRedirects): hosts and networks a followed redirect may reach over http or on private,
	// loopback or link-local addresses. The route's own upstream host is always allowed.
	RedirectAllow safehttp.AllowList
	// SessionKey MACs the Mcp-Session-Id values the MCP proxy handler issues on routes whose caller
	// is authenticated and whose session no policy claimed (Context.ClaimSession): the upstream's
	// session ids are wrapped and bound to the caller's subject, so one leaked from one user is
	// refused for another (docs/architecture.md#the-mcp-session-id). Empty: ids pass through.
	SessionKey []byte
}

// Authenticator authenticates a request to a gateway endpoint exactly as the first route (in
// config order) whose operationId is in operationIDs would: it runs that route's inbound
// policies in order until one of them sets the request's user. It returns the user, or false
// after it has written the refusal (the policy's own answer, a 401 with its WWW-Authenticate, or
// a problem). Policies after the one that authenticated (the token exchange, say) do not run.
//
// It lets an endpoint that acts on a user's own state (DELETE {base}/connections/{id}) accept
// exactly the credential the user's MCP client already sends to that upstream's routes, with no
// second authentication configuration.
type Authenticator func(w http.ResponseWriter, r *http.Request, operationIDs map[string]bool) (*User, bool)

// Connections is the connection manager as a token-exchange policy uses it.
type Connections interface {
	// Attach registers the upstream a token-exchange policy serves and returns the inbound step
	// that applies the caller's credential to each request of its routes.
	Attach(spec UpstreamSpec) (Inbound, error)
}

// UpstreamSpec is one upstream as a token-exchange policy configures it.
type UpstreamSpec struct {
	upstream.Upstream
	Summary string
	// Mode is whose credential the upstream gets: each caller's own (user-oauth) or one shared by
	// every caller (shared-oauth).
	Mode store.Mode
	// OperationIDs are the routes that use this upstream.
	OperationIDs map[string]bool
}

// Shared returns the component of type T that h keeps under name, building it on first use. It
// is for state that must exist once per gateway however many policies use it (one JWKS cache per
// key-set URL). A name reused for another type is a programming error and panics.
func Shared[T any](h *Host, name string, build func() T) T {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.shared[name]; ok {
		t, ok := v.(T)
		if !ok {
			panic(fmt.Sprintf("policy: shared component %q is a %T, not a %T", name, v, t))
		}
		return t
	}
	v := build()
	if h.shared == nil {
		h.shared = map[string]any{}
	}
	h.shared[name] = v
	return v
}
