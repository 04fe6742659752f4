// Package connect owns users' upstream connections at run time: it finds a caller's credential
// for an upstream (from memory when fresh, else the store), refreshes it once per connection across
// every caller and replica, builds connect-required answers with signed browser tickets, and serves
// the browser flow (consent page, approve, OAuth callback) that creates connections.
package connect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/safehttp"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/upstream"
	"github.com/mcpgate/mcpgate/internal/vault"
	"github.com/mcpgate/mcpgate/internal/web"
)

// Tunables with named defaults.
const (
	// DefaultRefreshSkew refreshes a token this long before it expires.
	DefaultRefreshSkew = 60 * time.Second
	// RefreshTimeout bounds one refresh (lease wait included); it runs detached from any one caller.
	RefreshTimeout = 20 * time.Second
	// LeaseTTL outlives one token request, so a live holder never loses its lease mid-call, and a
	// crashed holder's lease frees soon.
	LeaseTTL = 30 * time.Second
	// RetryAfterSeconds is what a transient failure tells the client.
	RetryAfterSeconds = 5
)

// Upstream is one upstream as the token-exchange policy configured it (policy.UpstreamSpec), with
// what the manager learns of it at run time.
type Upstream struct {
	policy.UpstreamSpec

	mu        sync.Mutex
	challenge upstream.BearerChallenge // the upstream's latest challenge (resource_metadata, scope)
}

// AuthProfileID is "<id>:<authMode>", as Zuplo names it.
func (u *Upstream) AuthProfileID() string { return u.ID + ":" + u.AuthMode() }

// AuthMode is the token-exchange authMode the upstream was configured with: user-oauth or
// shared-oauth.
func (u *Upstream) AuthMode() string { return string(u.Mode) + "-oauth" }

// RememberChallenge keeps the upstream's latest challenge for discovery and scope selection.
func (u *Upstream) RememberChallenge(c upstream.BearerChallenge) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if c.ResourceMetadata != "" {
		u.challenge.ResourceMetadata = c.ResourceMetadata
	}
	if c.Scope != "" {
		u.challenge.Scope = c.Scope
	}
	u.challenge.Error = c.Error
}

// Challenge returns the latest remembered challenge.
func (u *Upstream) Challenge() upstream.BearerChallenge {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.challenge
}

// Store is the part of the gateway's store the connection manager uses.
type Store interface {
	GetConnection(ctx context.Context, k store.ConnectionKey) (*store.Connection, error)
	PutConnection(ctx context.Context, c *store.Connection) error
	ListConnections(ctx context.Context, f store.ConnectionFilter) ([]store.Connection, error)
	store.ClientRegistrations
	CreatePending(ctx context.Context, state string, p *store.PendingAuthorization) error
	ConsumePending(ctx context.Context, state string) (*store.PendingAuthorization, error)
	UseTicket(ctx context.Context, id string, expiresAt time.Time) error
	TryAcquireLease(ctx context.Context, name, holder string, ttl time.Duration) error
	ReleaseLease(ctx context.Context, name, holder string) error
	QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, error)
}

// Deps are what a Manager is built from.
type Deps struct {
	Store Store
	Ring  *vault.Ring
	Audit *audit.Recorder
	URLs  *publicurl.URLs
	// SafeHTTPAllow lists hosts/CIDRs for which outbound OAuth calls may use http and private
	// addresses (MCPGATE_SAFEHTTP_ALLOW; development and tests).
	SafeHTTPAllow []string
	Logger        *slog.Logger
}

// Manager is the gateway-wide connection manager. Safe for concurrent use.
type Manager struct {
	store  Store
	audit  *audit.Recorder
	urls   *publicurl.URLs
	signer *Signer
	csrf   *web.CSRF
	engine *upstream.Engine
	regs   upstream.RegistrationCache
	log    *slog.Logger
	holder string
	skew   time.Duration
	now    func() time.Time
	// forcedInterval spaces forced refreshes (0: ForcedRefreshInterval; tests shorten it).
	forcedInterval time.Duration

	mu        sync.RWMutex
	upstreams map[string]*Upstream

	entries sync.Map // store.ConnectionKey → *entry: cached credentials, recent use (cache.go)
	sf      singleflight.Group

	stepMu sync.Mutex
	steps  map[string][]time.Time // step-up authorizations per (subject, upstream, scope set)
	authz  map[string][]time.Time // authorization requests per connection key (limits.go)

	fixed      *upstream.Endpoints // the endpoints under a configured public URL (nil: derived per request)
	binding    BindingOptions      // set by Mount
	sessionKey []byte              // MACs the gateway's Mcp-Session-Id values (session.go)
}

// New builds the gateway's connection manager. Its browser endpoints are added by Mount, once
// the gateway exists.
func New(d Deps) (*Manager, error) {
	if d.Store == nil || d.Ring == nil || d.URLs == nil {
		return nil, errors.New("connect: a connection manager needs a store, a key ring and the public URLs")
	}
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	allow, err := safehttp.ParseAllowList(strings.Join(d.SafeHTTPAllow, ","))
	if err != nil {
		return nil, fmt.Errorf("MCPGATE_SAFEHTTP_ALLOW: %w", err)
	}
	regs := storeRegistrations{d.Store}
	m := &Manager{
		store:      d.Store,
		audit:      d.Audit,
		urls:       d.URLs,
		signer:     NewSigner(d.Ring.DeriveKey("browser-ticket")),
		csrf:       web.NewCSRF(d.Ring.DeriveKey("csrf")),
		engine:     upstream.New(upstream.Options{Allow: allow, Registrations: regs}),
		regs:       regs,
		log:        log.With("component", "connect"),
		holder:     holderID(),
		skew:       DefaultRefreshSkew,
		now:        time.Now,
		upstreams:  map[string]*Upstream{},
		steps:      map[string][]time.Time{},
		authz:      map[string][]time.Time{},
		sessionKey: d.Ring.DeriveKey("mcp-session"),
	}
	if !d.URLs.Derived() {
		ep := m.endpoints(d.URLs.Base(nil))
		m.fixed = &ep
	}
	return m, nil
}

// Mount registers the browser endpoints (consent, callback, client metadata, disconnect) and the
// disconnect API, which authenticates with auth. b says what binds a connect page to a person.
func (m *Manager) Mount(register func(pattern string, h http.Handler), auth policy.Authenticator, b BindingOptions) {
	if b.Mode == "" {
		b.Mode = BindingSession
	}
	m.binding = b
	m.routes(register)
	m.mountDisconnect(register, auth)
}

// holderID names this process in refresh leases.
func holderID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Add registers an upstream. Two policies may not share an id (config validation already refuses it).
func (m *Manager) Add(u *Upstream) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, ok := m.upstreams[u.ID]; ok && prev != u {
		return fmt.Errorf("upstream id %q is configured twice", u.ID)
	}
	m.upstreams[u.ID] = u
	return nil
}

// Upstream returns a registered upstream.
func (m *Manager) Upstream(id string) (*Upstream, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	u, ok := m.upstreams[id]
	return u, ok
}

// Upstreams lists registered upstreams.
func (m *Manager) Upstreams() []*Upstream {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Upstream, 0, len(m.upstreams))
	for _, u := range m.upstreams {
		out = append(out, u)
	}
	return out
}

// Engine exposes the upstream OAuth engine (the setup UI's "Check now").
func (m *Manager) Engine() *upstream.Engine { return m.engine }

// Endpoints are the gateway's public URLs as seen by the request r (the configured public URL, or
// the request's own host behind trusted proxies).
func (m *Manager) Endpoints(r *http.Request) upstream.Endpoints {
	if m.fixed != nil {
		return *m.fixed // a configured public URL: built once, not on every request
	}
	return m.endpoints(m.urls.Base(r))
}

func (m *Manager) endpoints(public *url.URL) upstream.Endpoints {
	return upstream.Endpoints{PublicURL: public.Scheme + "://" + public.Host + strings.TrimSuffix(public.Path, "/"), BasePath: m.urls.BasePath}
}

// clientSecret finds the secret a connection's client authenticates with: the configured one for
// a manual client, else the cached registration's (a DCR client the AS gave a secret).
func (m *Manager) clientSecret(ctx context.Context, up *Upstream, conn *store.Connection, ep upstream.Endpoints) vault.Secret {
	if conn.AuthMethod == upstream.AuthNone || conn.AuthMethod == "" {
		return ""
	}
	if up.Registration.Mode == upstream.ModeManual && up.Registration.ClientID == conn.ClientID {
		return up.Registration.ClientSecret
	}
	reg, err := m.regs.GetRegistration(ctx, upstream.RegistrationKey{Issuer: conn.Issuer, UpstreamID: up.ID, RedirectURI: ep.RedirectURI(up.ID)})
	if err == nil && reg.ClientID == conn.ClientID {
		return reg.ClientSecret
	}
	return ""
}

// grantOf is the refresh request for conn: exactly what it was issued under
// (docs/architecture.md#refreshed-only-where-issued).
func (m *Manager) grantOf(ctx context.Context, up *Upstream, conn *store.Connection, ep upstream.Endpoints) upstream.RefreshRequest {
	return upstream.RefreshRequest{
		IssuedUnder: upstream.IssuedUnder{Issuer: conn.Issuer, TokenEndpoint: conn.TokenEndpoint, ClientID: conn.ClientID,
			AuthMethod: conn.AuthMethod, Resource: conn.Resource},
		ClientSecret: m.clientSecret(ctx, up, conn, ep),
		RefreshToken: conn.RefreshToken,
		Scopes:       conn.Scopes,
	}
}
