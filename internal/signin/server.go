// Package signin is the gateway's OAuth authorization server for MCP clients (the runtime of
// mcp-oauth-inbound): protected-resource and authorization-server metadata per route, client
// registration (RFC 7591 DCR and client ID metadata documents), the browser login at the
// organisation's IdP (or the loopback-only development login, or an API key typed into a form),
// the consent page where the person also connects the route's upstreams, the token endpoint
// (authorization code with PKCE, rotating refresh tokens), revocation, and the inbound step that
// authenticates each MCP request by a gateway-issued access token. It also tells the connect
// pages who a browser is signed in as (connect.BrowserSessions). docs/sign-in.md describes the
// flows; docs/architecture.md#sign-in the records.
package signin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/browsersession"
	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/limiter"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/safehttp"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/vault"
	"github.com/mcpgate/mcpgate/internal/web"
)

// Scope is the one scope the gateway's tokens carry and its metadata advertises.
const Scope = "mcp:tools"

// Fixed lifetimes (the configurable ones are in policy.SignInSpec).
const (
	// CodeTTL is the authorization code's lifetime; codes are single use.
	CodeTTL = 60 * time.Second
	// ClientTTL is how long a dynamically registered client lives.
	ClientTTL = 90 * 24 * time.Hour
	// RefreshGrace is how long a rotated refresh token is still accepted, so two concurrent
	// refreshes from one client both succeed (they get the same new refresh token).
	RefreshGrace = 30 * time.Second
	// RevocationCheck is how old a cached grant state may be before a request re-reads it: a
	// revoked grant stops working on every replica within this time.
	RevocationCheck = 5 * time.Second
	// DevSubject is the subject of the development login.
	DevSubject = "dev-browser-user"
)

// Store is the part of the gateway's store sign-in uses.
type Store interface {
	store.OAuthClients
	store.SignInRequests
	store.OAuthGrants
	store.ClientConsents
	LookupAPIKey(ctx context.Context, hash []byte) (*store.APIKey, error)
}

// Upstreams is what the consent page needs from the connection manager: the upstreams of a
// route, each with the person's connection state and a link that connects it and comes back.
type Upstreams interface {
	RouteUpstreams(r *http.Request, operationID string, sub subject.Subject, returnTo string) []connect.RouteUpstream
}

// Deps are what a Server is built from.
type Deps struct {
	Store     Store
	Ring      *vault.Ring
	Audit     *audit.Recorder
	URLs      *publicurl.URLs
	Upstreams Upstreams
	// SafeHTTPAllow lists hosts/CIDRs for which client metadata documents may be fetched over
	// http or from private addresses (development and tests).
	SafeHTTPAllow []string
	Logger        *slog.Logger
	Metrics       *telemetry.Metrics
	// TLSConfig, when set, is what client metadata documents are fetched with (tests trust their
	// own certificate authority); nil means the system's roots.
	TLSConfig *tls.Config
	// Now is the clock (default time.Now; tests move it past codes' and grants' lifetimes).
	Now func() time.Time
}

// Server is the gateway's authorization server. Safe for concurrent use once mounted.
type Server struct {
	store     Store
	ring      *vault.Ring
	audit     *audit.Recorder
	urls      *publicurl.URLs
	upstreams Upstreams
	sessions  *browsersession.Sessions
	csrf      *web.CSRF
	rotateKey []byte
	metrics   *telemetry.Metrics
	log       *slog.Logger
	fetch     *http.Client // client metadata documents (SSRF-safe)
	limiter   *limiter.Memory
	now       func() time.Time

	mu     sync.RWMutex
	routes map[string]*route // by route path
	byOp   map[string]*route
	idps   map[string]*idp // by issuer

	cimd   cimdCache
	grants grantCache
	tokens tokenCache
}

// route is one MCP route protected by a sign-in policy.
type route struct {
	info *policy.RouteInfo
	spec *policy.SignInSpec
	idp  *idp // nil: development login only
}

// New builds the server. Its endpoints are added by Mount.
func New(d Deps) (*Server, error) {
	if d.Store == nil || d.Ring == nil || d.URLs == nil {
		return nil, errors.New("signin: needs a store, a key ring and the public URLs")
	}
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	allow, err := safehttp.ParseAllowList(strings.Join(d.SafeHTTPAllow, ","))
	if err != nil {
		return nil, fmt.Errorf("MCPGATE_SAFEHTTP_ALLOW: %w", err)
	}
	m := d.Metrics
	if m == nil {
		m = telemetry.Default
	}
	s := &Server{
		store: d.Store, ring: d.Ring, audit: d.Audit, urls: d.URLs, upstreams: d.Upstreams,
		sessions:  browsersession.New(d.Ring),
		csrf:      web.NewCSRF(d.Ring.DeriveKey("signin-csrf")),
		rotateKey: d.Ring.DeriveKey("signin-refresh-rotation"),
		metrics:   m,
		log:       log.With("component", "signin"),
		fetch:     safehttp.New(safehttp.Options{Allow: allow, Timeout: 10 * time.Second, TLSConfig: d.TLSConfig}),
		now:       d.Now,
		routes:    map[string]*route{},
		byOp:      map[string]*route{},
		idps:      map[string]*idp{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.limiter = limiter.NewMemory(limiter.MemoryOptions{MaxKeys: maxLimiterKeys, Now: s.now})
	s.cimd.items = map[string]*cimdEntry{}
	s.grants.items = map[string]*grantState{}
	return s, nil
}

// Attach implements policy.SignIn.
func (s *Server) Attach(spec policy.SignInSpec) (policy.Inbound, error) {
	if spec.IdP == nil && !spec.DevLogin {
		return nil, fmt.Errorf("policy %q has no way to sign people in: configure oidc and browserLogin, or browserLogin.devLogin", spec.Name)
	}
	var p *idp
	if spec.IdP != nil {
		var err error
		if p, err = s.idpFor(spec.IdP); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := spec
	for _, ri := range spec.Routes {
		if strings.ContainsAny(ri.Path, ":*()") {
			return nil, fmt.Errorf("route %s: sign-in needs a route path without parameters or wildcards (it is the OAuth resource and issuer)", ri.Path)
		}
		if prev, ok := s.routes[ri.Path]; ok && prev.spec.Name != spec.Name {
			return nil, fmt.Errorf("route %s is protected by two sign-in policies (%s and %s)", ri.Path, prev.spec.Name, spec.Name)
		}
		rt := &route{info: ri, spec: &sp, idp: p}
		s.routes[ri.Path] = rt
		s.byOp[ri.OperationID] = rt
	}
	return &inbound{s: s, spec: &sp}, nil
}

// idpFor returns the one idp of an issuer, so two policies of one IdP share its discovery and
// keys. Two policies naming the same issuer with different clients are allowed: each login uses
// its route's client.
func (s *Server) idpFor(spec *policy.IdPSpec) (*idp, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := spec.Issuer + "\x00" + spec.ClientID
	if p, ok := s.idps[key]; ok {
		return p, nil
	}
	p := newIdP(spec, s.log)
	s.idps[key] = p
	return p, nil
}

// Mount registers the sign-in endpoints. Without any sign-in policy only the API-key sign-in form
// (used by the connect pages) is served.
func (s *Server) Mount(register func(pattern string, h http.Handler)) {
	base := s.urls.BasePath
	register("GET "+base+"/oauth/login/api-key", http.HandlerFunc(s.serveAPIKeyLogin))
	register("POST "+base+"/oauth/login/api-key", http.HandlerFunc(s.serveAPIKeyLogin))
	register("GET "+base+"/oauth/login", http.HandlerFunc(s.serveLogin))
	s.mu.RLock()
	n := len(s.routes)
	s.mu.RUnlock()
	if n == 0 {
		return
	}
	s.mountMetadata(register)
	register("POST "+base+"/oauth/register", http.HandlerFunc(s.serveRegister))
	register("OPTIONS "+base+"/oauth/register", http.HandlerFunc(serveCORSPreflight))
	register("GET "+base+"/oauth/authorize", http.HandlerFunc(s.serveAuthorize))
	register("GET "+base+"/oauth/authorize/{route...}", http.HandlerFunc(s.serveAuthorize))
	register("GET "+base+"/oauth/callback", http.HandlerFunc(s.serveCallback))
	register("GET "+base+"/oauth/dev-login", http.HandlerFunc(s.serveDevLogin))
	register("GET "+base+"/oauth/setup", http.HandlerFunc(s.serveSetup))
	register("POST "+base+"/oauth/setup", http.HandlerFunc(s.serveSetup))
	register("POST "+base+"/oauth/token", http.HandlerFunc(s.serveToken))
	register("OPTIONS "+base+"/oauth/token", http.HandlerFunc(serveCORSPreflight))
	register("POST "+base+"/oauth/revoke", http.HandlerFunc(s.serveRevoke))
	register("OPTIONS "+base+"/oauth/revoke", http.HandlerFunc(serveCORSPreflight))
}

// routeByPath returns the sign-in route at path.
func (s *Server) routeByPath(path string) *route {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.routes[path]
}

// routeByResource returns the route whose canonical URL is resource.
func (s *Server) routeByResource(r *http.Request, resource string) *route {
	u, err := url.Parse(resource)
	if err != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil
	}
	rt := s.routeByPath(u.EscapedPath())
	if rt == nil || s.resourceOf(r, rt) != resource {
		return nil
	}
	return rt
}

// onlyRoute returns the one sign-in route when there is exactly one.
func (s *Server) onlyRoute() *route {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.routes) != 1 {
		return nil
	}
	for _, rt := range s.routes {
		return rt
	}
	return nil
}

// resourceOf is the route's canonical URL: the OAuth resource and the issuer of its metadata.
func (s *Server) resourceOf(r *http.Request, rt *route) string {
	return s.urls.URL(r, rt.info.Path)
}

// endpoint is the public URL of a sign-in endpoint.
func (s *Server) endpoint(r *http.Request, path string) string {
	return s.urls.Gateway(r, "/oauth"+path)
}

// record counts and audits one sign-in event.
func (s *Server) record(ctx context.Context, e audit.Event, metric string) {
	s.metrics.SignIn(metric, e.Outcome)
	if s.audit != nil {
		s.audit.Record(ctx, e)
	}
}

var _ policy.SignIn = (*Server)(nil)
