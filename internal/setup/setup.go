// Package setup is the administrator's side of the gateway: the admin API (JSON, Bearer admin key
// or admin JWT) and the setup UI (server-rendered pages, session cookie after a login form) that
// is a client of the same functions. Both list every upstream with its discovery status step by
// step, run "Check now", connect and revoke the shared grant of a shared-oauth upstream, show the
// health of every user's connection with counts and filters, revoke one or all, and page through
// the audit log. Neither ever shows a token, secret or ciphertext: the views are built from
// connection metadata (store.ListConnections never decrypts).
//
// Endpoints, under the gateway's base path (default /__mcpgate):
//
//	browser (session cookie; every POST checks the same origin and a CSRF token bound to the session)
//	  GET  /setup                         upstreams, discovery, shared connections, health counts
//	  GET  /setup/login  POST /setup/login  POST /setup/logout
//	  POST /setup/upstreams/{id}/check    rerun discovery, back to /setup with the steps shown
//	  POST /setup/upstreams/{id}/connect  303 to the consent page with a shared-mode ticket
//	  POST /setup/upstreams/{id}/disconnect
//	  GET  /setup/connections             health view (?upstream=&state=&user=)
//	  POST /setup/connections/revoke      POST /setup/connections/revoke-all
//	  GET  /setup/tools                   per-route, per-tool calls of this instance since start
//	  GET  /setup/audit                   audit log (?user=&upstream=&event=&outcome=&since=&until=&before=)
//
//	API (Authorization: Bearer <admin API key or admin JWT>; JSON)
//	  GET  /admin/api/routes              every MCP route, with its upstream and auth mode
//	  GET  /admin/api/upstreams           GET /admin/api/upstreams/{id}
//	  POST /admin/api/upstreams/{id}/check
//	  GET  /admin/api/connections         POST /admin/api/connections/revoke   POST /admin/api/connections/revoke-all
//	  GET  /admin/api/audit
//
// Browser and API are separate handler sets: the API never reads the session cookie (no CSRF
// exposure), the UI never accepts a bearer token.
package setup

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/policy/jwtauth"
	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/vault"
	"github.com/mcpgate/mcpgate/internal/web"
)

// Handler serves the admin API and the setup UI.
type Handler struct {
	m      *connect.Manager
	store  Store
	audit  *audit.Recorder
	urls   *publicurl.URLs
	csrf   *web.CSRF
	sealer *sealer
	limit  *loginThrottle
	jwt    []*jwtauth.Policy
	mcp    []*config.Route // the project's MCP routes, in config order
	log    *slog.Logger
	now    func() time.Time
}

// Store is the part of the gateway's store the setup UI and admin API use.
type Store interface {
	LookupAPIKey(ctx context.Context, hash []byte) (*store.APIKey, error)
	ListAPIKeys(ctx context.Context) ([]store.APIKey, error)
	ListConnections(ctx context.Context, f store.ConnectionFilter) ([]store.Connection, error)
	QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, error)
}

// Deps are what the setup UI is built from.
type Deps struct {
	Store    Store
	Ring     *vault.Ring
	Audit    *audit.Recorder
	URLs     *publicurl.URLs
	Manager  *connect.Manager
	Register func(pattern string, h http.Handler)
	Logger   *slog.Logger
}

// Mount builds the handler and registers its endpoints. project is the loaded configuration: its
// JWT policies (open-id-jwt-auth-inbound) also authenticate admins whose token is for the
// MCPGATE_ADMIN_AUDIENCE audience and carries the MCPGATE_ADMIN_CLAIM claim (jwtauth.AdminToken).
// Call it after gateway.New (the policies are provisioned).
func Mount(d Deps, project *config.Project) (*Handler, error) {
	if d.Store == nil || d.Ring == nil || d.URLs == nil || d.Register == nil || d.Manager == nil {
		return nil, errors.New("setup: needs a store, a key ring, the public URLs, the endpoint registry and the connection manager")
	}
	seal, err := newSealer(d.Ring.DeriveKey("admin-session"))
	if err != nil {
		return nil, err
	}
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	h := &Handler{m: d.Manager, store: d.Store, audit: d.Audit, urls: d.URLs, csrf: web.NewCSRF(d.Ring.DeriveKey("admin-csrf")),
		sealer: seal, log: log.With("component", "setup"), now: time.Now}
	h.limit = newLoginThrottle(func() time.Time { return h.now() })
	if project != nil {
		for _, rc := range project.Routes {
			if policy.IsMCPHandler(rc.Handler.Export) {
				h.mcp = append(h.mcp, rc)
			}
		}
		for _, name := range project.PolicyOrder {
			p := project.Policies[name]
			if p == nil {
				continue
			}
			if v, ok := p.Handler.Value.(*jwtauth.Policy); ok {
				h.jwt = append(h.jwt, v)
			}
		}
	}
	h.routes(d.Register)
	return h, nil
}

func (h *Handler) routes(register func(string, http.Handler)) {
	base := h.urls.BasePath
	ui := func(pattern string, f func(http.ResponseWriter, *http.Request, *session)) {
		register(pattern, h.browser(f))
	}
	register("GET "+base+"/setup/login", http.HandlerFunc(h.serveLoginPage))
	register("POST "+base+"/setup/login", http.HandlerFunc(h.serveLogin))
	ui("POST "+base+"/setup/logout", h.serveLogout)
	ui("GET "+base+"/setup", h.serveUpstreamsPage)
	ui("POST "+base+"/setup/upstreams/{id}/check", h.serveCheckForm)
	ui("POST "+base+"/setup/upstreams/{id}/connect", h.serveConnectForm)
	ui("POST "+base+"/setup/upstreams/{id}/disconnect", h.serveDisconnectForm)
	ui("GET "+base+"/setup/connections", h.serveConnectionsPage)
	ui("GET "+base+"/setup/tools", h.serveToolsPage)
	ui("POST "+base+"/setup/connections/revoke", h.serveRevokeForm)
	ui("POST "+base+"/setup/connections/revoke-all", h.serveRevokeAllForm)
	ui("GET "+base+"/setup/audit", h.serveAuditPage)

	api := func(pattern string, f func(http.ResponseWriter, *http.Request, *Admin)) {
		register(pattern, h.bearer(f))
	}
	api("GET "+base+"/admin/api/routes", h.apiRoutes)
	api("GET "+base+"/admin/api/upstreams", h.apiUpstreams)
	api("GET "+base+"/admin/api/upstreams/{id}", h.apiUpstream)
	api("POST "+base+"/admin/api/upstreams/{id}/check", h.apiCheck)
	api("GET "+base+"/admin/api/connections", h.apiConnections)
	api("POST "+base+"/admin/api/connections/revoke", h.apiRevoke)
	api("POST "+base+"/admin/api/connections/revoke-all", h.apiRevokeAll)
	api("GET "+base+"/admin/api/audit", h.apiAudit)
}

// detached bounds work an admin started (a discovery, a revoke at the AS) independently of the
// browser that may go away.
func detached(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}
