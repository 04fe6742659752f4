// Package upstream is mcpgate's OAuth client towards upstream MCP servers: discovery (RFC 9728
// protected-resource metadata, RFC 8414 / OpenID authorization-server metadata), scope selection,
// client registration (manual, RFC 7591 DCR, client ID metadata documents), the authorization
// request with PKCE S256 and RFC 8707 resource, code exchange, one refresh_token grant with its
// failure classification, and RFC 7009 revocation.
//
// Every request to a URL learned from metadata goes through internal/safehttp. Every failure is an
// *Error with a bucket and a stable code (docs/errors.md). Orchestration (connections, leases,
// singleflight, pending authorizations) belongs to the callers; this package performs single steps
// and remembers only discovery results and client registrations.
package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mcpgate/mcpgate/internal/safehttp"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Defaults for Options fields left zero.
const (
	DefaultDiscoveryTTL = time.Hour
	// DefaultFailureTTL keeps a failed discovery briefly
	// (docs/architecture.md#caches-and-invalidation), so a broken upstream is not hammered by every
	// request, yet an operator's fix shows up quickly.
	DefaultFailureTTL = 30 * time.Second
	// DefaultReregisterWindow: a second invalid_client within this time after re-registering is
	// reported instead of re-registering again (re-register once, no loop).
	DefaultReregisterWindow = 10 * time.Minute
	// DefaultScopeDelimiter joins scopes.
	DefaultScopeDelimiter = " "
)

// Options configures an Engine.
type Options struct {
	// Allow is the operator allow list (MCPGATE_SAFEHTTP_ALLOW) for http and private addresses.
	Allow safehttp.AllowList
	// TLSConfig for outbound https (tests pass httptest roots); nil means the system's.
	TLSConfig *tls.Config
	// HTTPTimeout bounds each outbound request (safehttp.DefaultTimeout when zero).
	HTTPTimeout time.Duration
	// Registrations caches client registrations; nil means an in-process memoryRegistrations.
	Registrations RegistrationCache
	// DiscoveryTTL and FailureTTL are how long successful and failed discoveries are cached.
	DiscoveryTTL, FailureTTL time.Duration
	// ClientName is the client_name sent in DCR and CIMD documents ("mcpgate" when empty).
	ClientName string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Upstream is one upstream MCP server as the operator configured it (the token-exchange policy's
// options plus the route's rewritePattern).
type Upstream struct {
	// ID is the upstream connection id (policy option id).
	ID string
	// URL is the upstream MCP endpoint (the handler's rewritePattern, resolved). Trusted: its host may
	// be on a private network.
	URL string
	// DisplayName is shown to people (used in the CIMD client_name).
	DisplayName string
	// ProtectedResourceMetadataURL overrides PRM discovery (option protectedResourceMetadataUrl).
	ProtectedResourceMetadataURL string
	// Scopes are explicit scopes; they win over every discovered source.
	Scopes []string
	// ScopeDelimiter joins scopes in the scope parameter (" " when empty).
	ScopeDelimiter string
	// Prompt is the option prompt.
	Prompt Prompt
	// Registration is how the gateway gets a client at the upstream's AS.
	Registration RegistrationConfig
}

// Prompt is the prompt option: unset, one of PromptValues, or false (send no prompt at all, not
// even the consent prompt added for offline_access). It decodes from config as a string or false.
type Prompt struct {
	Value    string // explicit value; wins
	Disabled bool   // prompt: false — never send prompt
}

// PromptValues are the prompt values an authorization request may carry.
var PromptValues = []string{"none", "login", "consent", "select_account"}

// IsSet reports whether config set the option.
func (p Prompt) IsSet() bool { return p.Value != "" || p.Disabled }

// UnmarshalJSON accepts a string or false.
func (p *Prompt) UnmarshalJSON(b []byte) error {
	switch s := string(bytes.TrimSpace(b)); {
	case s == "false":
		*p = Prompt{Disabled: true}
		return nil
	case s == "null":
		*p = Prompt{}
		return nil
	case strings.HasPrefix(s, `"`):
		*p = Prompt{}
		return json.Unmarshal(b, &p.Value)
	}
	return errors.New("must be one of " + strings.Join(PromptValues, ", ") + " or false")
}

// MarshalJSON writes the config form back.
func (p Prompt) MarshalJSON() ([]byte, error) {
	switch {
	case p.Disabled:
		return []byte("false"), nil
	case p.Value == "":
		return []byte("null"), nil
	}
	return json.Marshal(p.Value)
}

// RegistrationConfig is the policy's client registration.
type RegistrationConfig struct {
	// Mode is auto (default), manual, dcr or cimd.
	Mode         string
	ClientID     string
	ClientSecret vault.Secret
	// TokenEndpointAuthMethod is client_secret_basic, client_secret_post or none (manual only).
	TokenEndpointAuthMethod string
}

// Registration modes.
const (
	ModeAuto   = "auto"
	ModeManual = "manual"
	ModeDCR    = "dcr"
	ModeCIMD   = "cimd"
)

// Token endpoint auth methods.
const (
	AuthBasic = "client_secret_basic"
	AuthPost  = "client_secret_post"
	AuthNone  = "none"
)

// Endpoints are the gateway's own public URLs, which vary with the public base URL (configured, or
// derived per request behind trusted proxies).
type Endpoints struct {
	// PublicURL is scheme://host[/prefix] of the gateway, without trailing slash.
	PublicURL string
	// BasePath is the gateway endpoints' base path (default /__mcpgate).
	BasePath string
}

// RedirectURI is the OAuth callback for an upstream: {public}{base}/auth/connections/{id}/callback.
func (e Endpoints) RedirectURI(upstreamID string) string {
	return e.base() + "/auth/connections/" + url.PathEscape(upstreamID) + "/callback"
}

// ClientMetadataURL is the URL of the gateway's client ID metadata document for an upstream:
// {public}{base}/.well-known/oauth-client/{id}. It is the client_id in CIMD mode.
func (e Endpoints) ClientMetadataURL(upstreamID string) string {
	return e.base() + "/.well-known/oauth-client/" + url.PathEscape(upstreamID)
}

// HTTPS reports whether the public URL is https (CIMD needs it).
func (e Endpoints) HTTPS() bool { return strings.HasPrefix(strings.ToLower(e.PublicURL), "https://") }

func (e Endpoints) base() string {
	return strings.TrimRight(e.PublicURL, "/") + "/" + strings.Trim(e.BasePath, "/")
}

// Engine performs upstream OAuth steps and caches discovery and registrations. Safe for concurrent use.
type Engine struct {
	opts Options
	now  func() time.Time
	regs RegistrationCache

	mu        sync.Mutex
	discovery map[string]*discoveryEntry // key: upstream id \x00 PRM hint
	clients   map[string]clientEntry     // http clients per trusted host set
	redone    map[string]dropped         // upstream id → the registration last dropped for invalid_client
	sf        singleflight.Group
}

// New returns an Engine. It has no side effects.
func New(opts Options) *Engine {
	if opts.DiscoveryTTL <= 0 {
		opts.DiscoveryTTL = DefaultDiscoveryTTL
	}
	if opts.FailureTTL <= 0 {
		opts.FailureTTL = DefaultFailureTTL
	}
	if opts.ClientName == "" {
		opts.ClientName = "mcpgate"
	}
	e := &Engine{
		opts:      opts,
		now:       opts.Now,
		regs:      opts.Registrations,
		discovery: map[string]*discoveryEntry{},
		clients:   map[string]clientEntry{},
		redone:    map[string]dropped{},
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.regs == nil {
		e.regs = newMemoryRegistrations()
	}
	return e
}

type clientEntry struct{ c httpDoer }

// httpClient returns the safehttp client for requests on behalf of up: its own host (and that of an
// operator-configured PRM URL) may be private.
func (e *Engine) httpClient(up Upstream) httpDoer {
	var trusted []string
	for _, raw := range []string{up.URL, up.ProtectedResourceMetadataURL} {
		if u, err := url.Parse(raw); err == nil && u.Hostname() != "" {
			trusted = append(trusted, u.Hostname())
		}
	}
	key := strings.Join(trusted, "\x00")
	e.mu.Lock()
	defer e.mu.Unlock()
	if ce, ok := e.clients[key]; ok {
		return ce.c
	}
	c := safehttp.New(safehttp.Options{Allow: e.opts.Allow, TrustedHosts: trusted, TLSConfig: e.opts.TLSConfig, Timeout: e.opts.HTTPTimeout})
	e.clients[key] = clientEntry{c: c}
	return c
}

// shared runs fn once for all concurrent callers with the same key (fn must detach from the
// caller's context itself). A caller whose ctx ends stops waiting; the work goes on for the others.
func (e *Engine) shared(ctx context.Context, key string, fn func() (any, error)) (any, error) {
	ch := e.sf.DoChan(key, fn)
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, &Error{Bucket: BucketUpstreamResponse, Code: CodeMetadataUnreachable, Reason: "gave up waiting for the upstream's authorization server", Err: ctx.Err()}
	}
}
