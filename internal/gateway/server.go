// Package gateway serves a loaded configuration: it matches routes, runs the inbound policies in
// order, calls the route handler, runs outbound policies and the chained response hooks, and renders
// every error in one place as problem+json carrying the request id.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/mcpwire"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/requestid"
	"github.com/mcpgate/mcpgate/internal/tracing"
	"go.opentelemetry.io/otel/trace"
)

// DefaultBasePath is where the gateway's own endpoints live unless --base-path says otherwise.
const DefaultBasePath = "/__mcpgate"

// Settings are the gateway-level settings that do not come from the Zuplo files.
type Settings struct {
	// PublicURL is the externally visible base URL (scheme://host[:port]); when nil it is derived
	// from the request, honouring X-Forwarded-Proto/Host only from TrustedProxies.
	PublicURL *url.URL
	// BasePath prefixes the gateway's own endpoints (default /__mcpgate).
	BasePath       string
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
	// Host is handed to every module's Provision as policy.Env.Host; New fills its URLs,
	// Register and Authenticate when they are nil. Nil means an empty Host.
	Host *policy.Host
	// BodyReadTimeout bounds reading a request body (DefaultBodyReadTimeout when zero); see
	// boundBody.
	BodyReadTimeout time.Duration
	// Tracer starts the request spans (docs/architecture.md#traces); nil is tracing off.
	Tracer trace.Tracer
}

// Server is an http.Handler for one loaded project.
type Server struct {
	settings Settings
	log      *slog.Logger
	routes   []*route
	own      *http.ServeMux // health, base-path endpoints, well-known documents
	ownIndex atomic.Pointer[ownIndex]
	urls     *publicurl.URLs
	ready    atomic.Bool
	cleanups []policy.CleanerUpper
	now      func() time.Time
	tracer   trace.Tracer // Settings.Tracer; nil: no spans
}

type route struct {
	cfg      *config.Route
	info     *policy.RouteInfo
	match    matcher
	methods  map[string]bool
	allow    string // Allow header value
	mcp      bool
	inbound  []policy.Inbound
	spans    []policySpan // per inbound policy, in step with inbound
	outbound []policy.Outbound
	handler  policy.Handler
	cors     *corsPolicy // nil means "none"
}

// New provisions every module the project uses and returns a server ready to serve. On error,
// whatever was provisioned is cleaned up.
func New(ctx context.Context, p *config.Project, s Settings) (*Server, error) {
	if s.BasePath == "" {
		s.BasePath = DefaultBasePath
	}
	s.BasePath = "/" + strings.Trim(s.BasePath, "/")
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Host == nil {
		s.Host = &policy.Host{}
	}
	if s.BodyReadTimeout <= 0 {
		s.BodyReadTimeout = DefaultBodyReadTimeout
	}
	srv := &Server{settings: s, log: s.Logger, own: http.NewServeMux(), now: time.Now, tracer: s.Tracer}
	h := s.Host
	if h.URLs == nil {
		h.URLs = &publicurl.URLs{Public: s.PublicURL, TrustedProxies: s.TrustedProxies, BasePath: s.BasePath}
	}
	if h.Register == nil {
		h.Register = srv.Handle
	}
	if h.Authenticate == nil {
		h.Authenticate = srv.authenticate
	}
	if h.Logger == nil {
		h.Logger = s.Logger
	}
	srv.urls = h.URLs
	// What the configuration allows but the operator must hear about (config.Project.Warnings),
	// once, at start.
	for _, w := range p.Warnings {
		s.Logger.Warn(w.Message, "file", w.File, "path", w.Path, "concerns", w.Subject)
	}
	if err := srv.build(ctx, p); err != nil {
		_ = srv.Close()
		return nil, err
	}
	srv.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	}))
	srv.Handle("GET /readyz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !srv.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	}))
	return srv, nil
}

// build compiles routes and provisions policies (each policy instance once, shared by its routes).
func (s *Server) build(ctx context.Context, p *config.Project) error {
	usedBy := map[string][]*policy.RouteInfo{}
	for _, rc := range p.Routes {
		for _, n := range append(append([]string{}, rc.Inbound...), rc.Outbound...) {
			usedBy[n] = append(usedBy[n], rc.Info)
		}
	}
	provisioned := map[string]bool{}
	provision := func(name string, v any, routes []*policy.RouteInfo) error {
		if provisioned[name] {
			return nil
		}
		provisioned[name] = true
		if pr, ok := v.(policy.Provisioner); ok {
			env := &policy.Env{Name: name, Logger: s.log.With("policy", name), Routes: routes, Host: s.settings.Host}
			if err := pr.Provision(ctx, env); err != nil {
				cleanupFailed(v)
				return fmt.Errorf("provisioning policy %q: %w", name, err)
			}
		}
		if c, ok := v.(policy.CleanerUpper); ok {
			s.cleanups = append(s.cleanups, c)
		}
		return nil
	}

	for _, rc := range p.Routes {
		m, err := compilePath(rc.Path, rc.PathMode)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", rc.File, rc.JSONPath, err)
		}
		rt := &route{cfg: rc, info: rc.Info, match: m, methods: map[string]bool{}, mcp: policy.IsMCPHandler(rc.Handler.Export)}
		if rt.info == nil {
			rt.info = &policy.RouteInfo{Path: rc.Path, Methods: rc.Methods, OperationID: rc.OperationID, Summary: rc.Summary, File: rc.File}
		}
		for _, meth := range rc.Methods {
			rt.methods[strings.ToUpper(meth)] = true
		}
		rt.allow = strings.Join(rc.Methods, ", ")
		for _, n := range rc.Inbound {
			pol := p.Policies[n]
			if pol == nil {
				return fmt.Errorf("%s: route %s: unknown policy %q", rc.File, rc.Path, n)
			}
			in, ok := pol.Handler.Value.(policy.Inbound)
			if !ok {
				return fmt.Errorf("%s: route %s: policy %q (%s) cannot run inbound", rc.File, rc.Path, n, pol.Handler.Export)
			}
			if err := provision(n, pol.Handler.Value, usedBy[n]); err != nil {
				return err
			}
			rt.inbound = append(rt.inbound, in)
			rt.spans = append(rt.spans, newPolicySpan(n, pol.Handler.Export))
		}
		for _, n := range rc.Outbound {
			pol := p.Policies[n]
			if pol == nil {
				return fmt.Errorf("%s: route %s: unknown policy %q", rc.File, rc.Path, n)
			}
			out, ok := pol.Handler.Value.(policy.Outbound)
			if !ok {
				return fmt.Errorf("%s: route %s: policy %q (%s) cannot run outbound", rc.File, rc.Path, n, pol.Handler.Export)
			}
			if err := provision(n, pol.Handler.Value, usedBy[n]); err != nil {
				return err
			}
			rt.outbound = append(rt.outbound, out)
		}
		h, ok := rc.Handler.Value.(policy.Handler)
		if !ok {
			return fmt.Errorf("%s: route %s: handler %q is not available in this build", rc.File, rc.Path, rc.Handler.Export)
		}
		if pr, ok := rc.Handler.Value.(policy.Provisioner); ok {
			env := &policy.Env{Name: rc.OperationID, Logger: s.log.With("route", rc.Path), Routes: []*policy.RouteInfo{rt.info}, Host: s.settings.Host}
			if err := pr.Provision(ctx, env); err != nil {
				cleanupFailed(rc.Handler.Value)
				return fmt.Errorf("%s: route %s: provisioning handler %s: %w", rc.File, rc.Path, rc.Handler.Export, err)
			}
		}
		if c, ok := rc.Handler.Value.(policy.CleanerUpper); ok {
			s.cleanups = append(s.cleanups, c)
		}
		rt.handler = h
		cp, err := resolveCORS(rc.CORSPolicy, p.CORSPolicies)
		if err != nil {
			return fmt.Errorf("%s: route %s: %w", rc.File, rc.Path, err)
		}
		rt.cors = cp
		s.routes = append(s.routes, rt)
	}
	return nil
}

// cleanupFailed releases what a module whose Provision failed had already acquired, as Caddy
// does; the modules provisioned before it are cleaned up by New (Close).
func cleanupFailed(v any) {
	if c, ok := v.(policy.CleanerUpper); ok {
		_ = c.Cleanup()
	}
}

// Handle registers a gateway endpoint (pattern as http.ServeMux, e.g. "GET /__mcpgate/setup").
// Endpoints are matched before routes.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.own.Handle(pattern, h) // panics on a conflicting pattern, before the index learns it
	s.indexOwn(pattern)
}

// SetReady marks the server ready (or draining) for /readyz.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Close runs every module's Cleanup.
func (s *Server) Close() error {
	var errs []error
	for _, c := range s.cleanups {
		errs = append(errs, c.Cleanup())
	}
	return errors.Join(errs...)
}

// Logger returns the request's logger (every line carries the request id).
func (s *Server) Logger(ctx context.Context) *slog.Logger {
	if id := requestid.From(ctx); id != "" {
		return s.log.With("requestId", id)
	}
	return s.log
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// ServeHTTP's own frame is kept small (its work is in begin and end): an open stream keeps it
	// on its stack while the proxy copies (docs/architecture.md#proxy-rules).
	st, r := s.begin(w, r)
	defer st.recoverAbort(r)
	st.rt = s.serve(&st.rec, r, st.rid, &st.log, &st.pc)
	s.end(st, r)
}

// begin allocates the request's state (one allocation), gives it its id, its context, its trace
// span and its logger, and bounds its body.
//
//go:noinline
func (s *Server) begin(w http.ResponseWriter, r *http.Request) (*request, *http.Request) {
	st := &request{rec: recorder{ResponseWriter: w}, start: s.now()}
	rid := requestid.NewIn(&st.ridBuf) // the id's bytes live in st: no allocation of their own
	st.rid = rid
	st.logh = requestHandler{Handler: s.log.Handler(), rid: rid}
	st.ridValue[0] = rid
	w.Header()[requestid.Header] = st.ridValue[:] // Header.Set would allocate the slice

	st.ctx.Init(r.Context(), rid)
	r = r.WithContext(&st.ctx)
	if s.tracer != nil && !isProbe(r.URL.Path) {
		r, st.span = s.startRequest(r, rid)
		if st.span.IsRecording() {
			st.logh.traceID = st.span.SpanContext().TraceID().String()
		}
	}
	st.log = *slog.New(&st.logh) // inlined: the Logger is built in place, not allocated
	s.boundBody(&st.rec, r)
	return st, r
}

// recoverAbort, deferred by ServeHTTP: a stream the client broke mid-copy ends the handler with
// http.ErrAbortHandler; the request is logged, then the panic goes on to net/http, which closes
// the connection quietly.
func (st *request) recoverAbort(r *http.Request) {
	p := recover()
	if p == nil {
		return
	}
	if p != http.ErrAbortHandler {
		st.log.Error("handler panicked", "panic", p, "path", r.URL.Path)
	}
	st.log.Info("request aborted", "method", r.Method, "path", r.URL.Path, "status", st.rec.statusOrOK(), "bytes", st.rec.bytes)
	if st.span != nil {
		endRequest(st.span, r, st.rt, st.rec.statusOrOK())
	}
	panic(p)
}

// end closes the request's span and writes its access log line.
//
//go:noinline
func (s *Server) end(st *request, r *http.Request) {
	if st.span != nil {
		endRequest(st.span, r, st.rt, st.rec.statusOrOK())
	}
	if st.log.Enabled(r.Context(), slog.LevelInfo) {
		s.logRequest(&st.log, r, st.rt, &st.rec, st.start)
	}
}

// logRequest writes the access log line.
func (s *Server) logRequest(log *slog.Logger, r *http.Request, rt *route, rec *recorder, start time.Time) {
	// LogAttrs with typed attributes: no value is boxed, the line costs the handler's own work.
	dur := slog.Float64("durationMs", float64(s.now().Sub(start).Microseconds())/1000)
	if rt != nil && rt.info.OperationID != "" {
		log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.statusOrOK()), slog.Int64("bytes", rec.bytes), dur, slog.String("operationId", rt.info.OperationID))
		return
	}
	log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", rec.statusOrOK()), slog.Int64("bytes", rec.bytes), dur)
}

// request is what the gateway allocates for every request, in one allocation: the response
// recorder, the request id's context and log handler, and the policy context (filled in by serve
// once a route matched).
type request struct {
	rec  recorder
	ctx  requestid.Context
	logh requestHandler
	log  slog.Logger
	pc   policy.Context
	// ridValue backs the X-Request-Id header's value slice.
	ridValue [1]string
	// ridBuf holds the request id's bytes (requestid.NewIn); written once, never changed.
	ridBuf requestid.Buffer
	rid    string
	start  time.Time
	span   trace.Span // nil unless tracing is on
	rt     *route     // the route matched, once serve returned
}

// serve dispatches the request and returns the route it matched, if any. c is the request's
// policy context, zero until a route matched.
//
// Routing (admit) and the route's chain (run) are functions of their own: an open stream keeps
// serve's frame on its stack while the proxy copies, and Go shrinks a parked stack only while
// less than a quarter of it is in use, so the frames under the copy are kept small
// (docs/architecture.md#proxy-rules).
func (s *Server) serve(w *recorder, r *http.Request, rid string, log *slog.Logger, c *policy.Context) *route {
	rt, next := s.admit(w, r, rid, log)
	if next {
		s.run(rt, w, r, rid, log, c)
	}
	return rt
}

// admit routes the request: the gateway's own endpoints, unsupported methods, unknown paths,
// CORS preflights and foreign origins are answered here (next false). It returns the route
// matched, if any, and whether its policies and handler are to run.
//
//go:noinline
func (s *Server) admit(w *recorder, r *http.Request, rid string, log *slog.Logger) (rt *route, next bool) {
	if s.mayBeOwn(r.URL.Path) {
		if _, pattern := s.own.Handler(r); pattern != "" {
			// ServeHTTP (not the handler Handler returned) so path wildcards reach r.PathValue.
			w.own = true
			s.own.ServeHTTP(w, r)
			return nil, false
		}
	}
	if !standardMethods[r.Method] {
		s.fail(w, r, rid, log, problem.New(http.StatusNotImplemented, fmt.Sprintf("The method %s is not supported.", r.Method), nil).WithReason("method_not_supported"))
		return nil, false
	}
	rt, pathMatched := s.match(r)
	if rt == nil {
		if !pathMatched {
			s.fail(w, r, rid, log, problem.New(http.StatusNotFound, "No route matches "+r.URL.Path+".", nil).WithReason("route_not_found"))
			return nil, false
		}
		// The path exists but not for this method.
		s.fail(w, r, rid, log, s.methodNotAllowed(r))
		return nil, false
	}
	w.cors = rt.cors
	w.origin = r.Header.Get("Origin")

	if r.Method == http.MethodOptions && rt.cors != nil && r.Header.Get("Access-Control-Request-Method") != "" && !rt.methods["OPTIONS"] {
		rt.cors.preflight(w, r, rt)
		return rt, false
	}
	if origin := r.Header.Get("Origin"); origin != "" && rt.mcp && !s.originAllowed(rt, r, origin) {
		// DNS-rebinding protection (MCP transport security): a browser page from another origin
		// must not reach an MCP route.
		s.fail(w, r, rid, log, problem.New(http.StatusForbidden, "The request's Origin "+origin+" is not allowed on this route.", nil).WithReason("origin_not_allowed"))
		return rt, false
	}
	return rt, true
}

// run runs the route's inbound policies in order, then its handler, with c (zero) as the
// request's policy context.
func (s *Server) run(rt *route, w *recorder, r *http.Request, rid string, log *slog.Logger, c *policy.Context) {
	c.RequestID, c.Route, c.Log, c.Start = rid, rt.info, log, s.now()
	c.SetOutbound(rt.outbound)
	for i, in := range rt.inbound {
		if !s.inbound(rt, i, in, w, r, rid, log, c) {
			return
		}
	}
	if err := rt.handler.Handle(c, w, r); err != nil {
		s.fail(w, r, rid, log, err)
	}
}

// inbound runs the route's i-th inbound policy and reports whether the chain goes on: false
// when the policy failed or answered the request itself (its answer passes the response hooks).
//
//go:noinline
func (s *Server) inbound(rt *route, i int, in policy.Inbound, w *recorder, r *http.Request, rid string, log *slog.Logger, c *policy.Context) bool {
	pr := r
	ctx, ps := tracing.Start(r.Context(), rt.spans[i].name, trace.SpanKindInternal, rt.spans[i].attrs...)
	if ps != nil {
		pr = r.WithContext(ctx) // what the policy does (token lookup, refresh) nests under its span
	}
	resp, err := in.HandleRequest(c, pr)
	if ps != nil {
		endPolicy(ps, err)
	}
	if err != nil {
		s.fail(w, r, rid, log, err)
		return false
	}
	if resp != nil {
		resp, err = c.RunHooks(r, resp)
		if err != nil {
			s.fail(w, r, rid, log, err)
			return false
		}
		writeResponse(w, resp)
		return false
	}
	return true
}

// match finds the first route (config order) whose path and method match. pathMatched reports
// whether some route had the path.
func (s *Server) match(r *http.Request) (rt *route, pathMatched bool) {
	for _, cand := range s.routes {
		if !cand.match.match(r.URL.Path) {
			continue
		}
		pathMatched = true
		if cand.methods[r.Method] || (r.Method == http.MethodHead && cand.methods["GET"]) {
			return cand, true
		}
		// A stream resumption reaches an MCP route declared for POST alone: the route's handler
		// forwards it (docs/architecture.md#stream-resumption).
		if cand.mcp && cand.methods["POST"] && mcpwire.IsResumption(r.Method, r.Header) {
			return cand, true
		}
		if r.Method == http.MethodOptions && cand.cors != nil {
			return cand, true
		}
	}
	return nil, pathMatched
}

func (s *Server) methodNotAllowed(r *http.Request) *problem.Error {
	var allow []string
	seen := map[string]bool{}
	for _, cand := range s.routes {
		if cand.match.match(r.URL.Path) {
			for _, m := range cand.cfg.Methods {
				if !seen[m] {
					seen[m] = true
					allow = append(allow, m)
				}
			}
		}
	}
	if r.Method == http.MethodOptions {
		// CORS "none" answers preflights with 404, as Zuplo does.
		return problem.New(http.StatusNotFound, "No route matches OPTIONS "+r.URL.Path+".", nil).WithReason("route_not_found")
	}
	return problem.New(http.StatusMethodNotAllowed, fmt.Sprintf("The method %s is not allowed on %s.", r.Method, r.URL.Path), nil).
		WithReason("method_not_allowed").WithHeader("Allow", strings.Join(allow, ", "))
}

// fail renders err as problem+json unless the response has started, and logs it: 5xx at Error,
// the rest at Debug. The cause never reaches the client.
func (s *Server) fail(w *recorder, r *http.Request, rid string, log *slog.Logger, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		log.Debug("client went away", "path", r.URL.Path)
		return
	}
	pe := problem.From(err)
	if pe.Status >= 500 {
		log.Error("request failed", "status", pe.Status, "reasonCode", pe.Reason, "error", err)
	} else {
		log.Debug("request refused", "status", pe.Status, "reasonCode", pe.Reason, "error", err)
	}
	if w.wroteHeader {
		return
	}
	problem.WriteTraced(w, pe, r.URL.Path, rid, tracing.TraceID(r.Context()))
}

// Fail is fail for gateway endpoints registered with Handle.
func (s *Server) Fail(w http.ResponseWriter, r *http.Request, err error) {
	rec, ok := w.(*recorder)
	if !ok {
		rec = &recorder{ResponseWriter: w}
	}
	rid := requestid.From(r.Context())
	s.fail(rec, r, rid, s.Logger(r.Context()), err)
}
