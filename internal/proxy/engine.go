package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/internal/mcpwire"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/tracing"
	"go.opentelemetry.io/otel/trace"
)

// Problem reason codes the engine returns.
const (
	ReasonUnreachable   = "upstream_unreachable"
	ReasonTimeout       = "upstream_timeout"
	ReasonTooLarge      = "request_too_large"
	ReasonClientClosed  = "client_closed_request"
	ReasonBodyUnread    = "request_body_unreadable"
	ReasonBodyTimeout   = "request_body_timeout"
	ReasonNoUpstreamURL = "upstream_not_configured"
	// ReasonResumeWithoutSession: a stream resumption without the caller's session id.
	ReasonResumeWithoutSession = "resume_without_session"
)

// StatusClientClosedRequest is the nginx-style status for a client that went away before the
// upstream answered. Nobody receives it; it keeps such requests out of the 5xx error log.
const StatusClientClosedRequest = 499

// getDetail is the client-facing text of the 405 an MCP route answers to GET, word for word as
// Zuplo's McpProxyHandler sends it.
const getDetail = "MCP Gateway routes support stateless Streamable HTTP requests over POST. Server-sent event GET streams are not supported."

// errHeaderTimeout is the cancellation cause when the upstream sends no response headers in time.
var errHeaderTimeout = errors.New("proxy: no response headers from upstream within the timeout")

// engine forwards requests for one route. It is built once, by Provision, and
// is safe for concurrent use; per-request state lives in a call.
type engine struct {
	mcp bool // McpProxyHandler: POST only, upstream challenges stripped
	// caps is the route's capability metrics (analytics.go), resolved on first use.
	caps          atomic.Pointer[telemetry.RouteCapabilities]
	forwardSearch bool
	target        *url.URL // fallback when the route info carries no parsed upstream
	headerTimeout time.Duration
	maxBody       int64
	bodyTimeout   time.Duration // bounds reading the request body
	streamWrite   time.Duration
	transport     http.RoundTripper // what sends the request; follows redirects when configured
	follow        bool              // transport is a redirectFollower
	// transportTimes: the transport itself bounds the wait for response headers
	// (ResponseHeaderTimeout, timedTransport), so a call needs no header timer and no cancellable
	// context of its own (which would register a child in the server's request context).
	transportTimes bool
	sessionKey     []byte // binds session ids to the caller (bindsSession)
	rp             httputil.ReverseProxy
}

func newEngine(mcp bool, o *Options, s Settings, env *policy.Env) *engine {
	if env.Host != nil {
		s = merge(s, env.Host.Proxy)
	}
	s = merge(s, Settings{
		HeaderTimeout:      DefaultHeaderTimeout,
		MaxRequestBody:     DefaultMaxRequestBody,
		StreamWriteTimeout: DefaultStreamWriteTimeout,
		Transport:          sharedTransport,
	})
	log := slog.Default()
	if env.Logger != nil {
		log = env.Logger
	}
	e := &engine{
		mcp:           mcp,
		forwardSearch: o.forwardSearch(),
		target:        literalURL(o.RewritePattern),
		headerTimeout: s.HeaderTimeout,
		maxBody:       s.MaxRequestBody,
		bodyTimeout:   bodyReadTimeout,
		streamWrite:   s.StreamWriteTimeout,
		transport:     s.Transport,
		sessionKey:    s.SessionKey,
	}
	for _, ri := range env.Routes {
		if ri != nil && ri.UpstreamURL != nil {
			e.target = ri.UpstreamURL
			break
		}
	}
	base := s.Transport
	if t, ok := base.(*http.Transport); ok {
		base, e.transportTimes = timedTransport(t, s.HeaderTimeout), true
		e.transport = base
	}
	if o.FollowRedirects {
		e.transport, e.follow = newRedirectFollower(e.target, base, s.RedirectAllow, o.FollowRedirectsAcrossHosts), true
	}
	e.rp = httputil.ReverseProxy{
		Rewrite:        e.rewrite,
		Transport:      e.transport,
		ModifyResponse: e.modifyResponse,
		ErrorHandler:   e.errorHandler,
		BufferPool:     buffers,
		// ReverseProxy only logs what the error handler and the panic on a broken stream already
		// report; keep it at debug.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return e
}

// merge fills s's zero fields from d.
func merge(s, d Settings) Settings {
	if s.HeaderTimeout <= 0 {
		s.HeaderTimeout = d.HeaderTimeout
	}
	if s.MaxRequestBody <= 0 {
		s.MaxRequestBody = d.MaxRequestBody
	}
	if s.StreamWriteTimeout <= 0 {
		s.StreamWriteTimeout = d.StreamWriteTimeout
	}
	if s.Transport == nil {
		s.Transport = d.Transport
	}
	if s.RedirectAllow.IsEmpty() {
		s.RedirectAllow = d.RedirectAllow
	}
	if len(s.SessionKey) == 0 {
		s.SessionKey = d.SessionKey
	}
	return s
}

// Provision implements policy.Provisioner.
func (p *MCPProxy) Provision(_ context.Context, env *policy.Env) error {
	p.eng = newEngine(true, &p.Options, p.Settings, env)
	return nil
}

// Handle implements policy.Handler. GET (and every method but POST) answers 405 with Allow: POST.
func (p *MCPProxy) Handle(c *policy.Context, w http.ResponseWriter, r *http.Request) error {
	if p.eng == nil {
		return errNotProvisioned
	}
	return p.eng.serve(c, w, r)
}

// Provision implements policy.Provisioner.
func (p *URLRewrite) Provision(_ context.Context, env *policy.Env) error {
	p.eng = newEngine(false, &p.Options, p.Settings, env)
	return nil
}

// Handle implements policy.Handler: every method is forwarded.
func (p *URLRewrite) Handle(c *policy.Context, w http.ResponseWriter, r *http.Request) error {
	if p.eng == nil {
		return errNotProvisioned
	}
	return p.eng.serve(c, w, r)
}

// errNotProvisioned: a handler used without Provision would forward without the host's settings
// (timeouts, body limit), so it refuses instead.
var errNotProvisioned = problem.New(http.StatusInternalServerError, "The route's handler was not provisioned.",
	errors.New("proxy: Handle called before Provision")).WithReason("gateway_configuration")

// errResumeWithoutSession refuses a stream resumption on an authenticated route that carries no
// session id the gateway issued to the caller.
func errResumeWithoutSession() *problem.Error {
	return problem.New(http.StatusBadRequest,
		"A stream resumption (GET with Last-Event-ID) on a route with gateway authentication must carry the Mcp-Session-Id the gateway issued to the caller.", nil).
		WithReason(ReasonResumeWithoutSession)
}

// MethodNotAllowed is the 405 an MCP route answers to anything but POST.
func MethodNotAllowed() *problem.Error {
	return problem.New(http.StatusMethodNotAllowed, getDetail, nil).WithHeader("Allow", http.MethodPost)
}

// callKey finds the call in a request context.
type callKey struct{}

// call is the state of one forwarded request. It is also the context the forwarded request runs
// under (the client's request context plus the header-timeout cause), so the ReverseProxy
// callbacks find it without another allocation.
type call struct {
	context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer

	eng    *engine
	pc     *policy.Context
	in     *http.Request // the request as the pipeline saw it
	target *url.URL
	body   []byte

	out      *http.Request // the forwarded request, kept for Replay
	replays  []context.CancelCauseFunc
	replayed []*http.Response // responses Replay returned, to recognise upstream responses
	err      error            // set by the error handler; nothing was written
	w        streamWriter
	br       bytes.Reader // the forwarded body
	// small holds a request body of up to smallBody bytes (most MCP messages), so it shares the
	// call's allocation; the call is never reused, so the body stays valid for as long as the
	// transport holds it.
	small [smallBody]byte
	// bindSession: the upstream's session id is wrapped for the caller (engine.bindsSession).
	bindSession bool
	// client is what the caller's MCP client declared (its bound session id, or this initialize).
	client mcpwire.ClientInfo
	// sessionIn is the gateway session id the request presented, sessionUps the upstream's id
	// inside it (both empty when none was presented or it held none).
	sessionIn, sessionUps string
	// cap: what the capability analytics follow of this request (analytics.go), when capOn.
	cap   capCall
	capOn bool
	watch answerWatch // the answer's watcher, when capOn (in the call: no allocation of its own)
	span  trace.Span  // the upstream call's span (trace.go); nil when not traced
}

// Value implements context.Context.
func (cl *call) Value(k any) any {
	if k == (callKey{}) {
		return cl
	}
	return cl.Context.Value(k)
}

func callFrom(ctx context.Context) *call { return ctx.Value(callKey{}).(*call) }

// finish releases the call's timers and contexts when the handler returns (or panics).
func (cl *call) finish() {
	if cl.timer != nil {
		cl.timer.Stop()
	}
	for _, cancel := range cl.replays {
		cancel(context.Canceled)
	}
	if cl.cancel != nil {
		cl.cancel(context.Canceled)
	}
}

func (e *engine) serve(c *policy.Context, w http.ResponseWriter, r *http.Request) error {
	cl, out, err := e.prepare(c, w, r)
	if err != nil {
		return err
	}
	defer cl.finish()
	if cl.capOn {
		cl.invoked()
	}
	e.rp.ServeHTTP(&cl.w, out)
	if cl.err != nil && cl.capOn {
		pe := problem.From(cl.err)
		cl.failed(pe.Status, pe.Reason)
	}
	tracing.End(cl.span, cl.err)
	return cl.err
}

// prepare checks the request against the route's session rules, reads its body and builds the
// call and the outgoing request. It is apart from serve so that its locals take no room in the
// frame an open stream keeps on its stack while ReverseProxy copies: Go shrinks a parked stack
// only when less than a quarter of it is in use, so every frame under the copy counts.
//
//go:noinline
func (e *engine) prepare(c *policy.Context, w http.ResponseWriter, r *http.Request) (*call, *http.Request, error) {
	resume := false
	if e.mcp && r.Method != http.MethodPost {
		// The one GET an MCP route forwards: a stream resumption (SEP-1699), through the same
		// policy chain as a POST. A bare GET (the standalone server stream) stays 405, as Zuplo.
		if !mcpwire.IsResumption(r.Method, r.Header) {
			return nil, nil, MethodNotAllowed()
		}
		resume = true
	}
	target := e.target
	if c.Route != nil && c.Route.UpstreamURL != nil {
		target = c.Route.UpstreamURL
	}
	if target == nil {
		return nil, nil, problem.New(http.StatusInternalServerError, "The route has no upstream URL.",
			errors.New("proxy: route has no parsed rewritePattern")).WithReason(ReasonNoUpstreamURL)
	}
	bind := e.bindsSession(c)
	presented := c.SessionPresented()
	var (
		client             mcpwire.ClientInfo
		sessionIn, upsSess string
	)
	if bind {
		sessionIn = r.Header.Get(mcpwire.SessionHeader)
		info, ups, present, err := mcpwire.OpenSession(e.sessionKey, c.User.Subject(), r.Header)
		if err != nil {
			return nil, nil, policy.ErrSessionNotFound("session id not issued to this caller by the gateway (an upstream's own id is never accepted on a route with gateway authentication)")
		}
		presented, client, upsSess = present, info, ups
		if c.ClientName == "" {
			c.ClientName = info.Name
		}
	}
	if resume && c.User != nil && !presented {
		// Event ids are the upstream's; what keeps one caller from resuming another's stream is
		// the upstream session the gateway bound to the caller. Without one, nothing does.
		return nil, nil, errResumeWithoutSession()
	}
	cl := &call{eng: e, pc: c, in: r, target: target, bindSession: bind}
	if presented && upsSess != "" {
		cl.sessionIn, cl.sessionUps = sessionIn, upsSess
	}
	body, err := e.readBody(w, r, &cl.small)
	if err != nil {
		return nil, nil, err
	}
	cl.body = body
	if bind && !presented {
		// The session starts with this initialize: what the client declared goes into the id.
		if info, ok := mcpwire.InitializeInfo(body); ok {
			client = info
			c.ClientName = info.Name
		}
	}
	cl.client = client
	if e.mcp && !resume {
		if cl.cap, cl.capOn = observeRequest(body); cl.capOn {
			cl.cap.client = c.ClientName
		}
	}
	// The controller lives in the call (copied from NewResponseController): no allocation of
	// its own.
	cl.w = streamWriter{ResponseWriter: w, rc: *http.NewResponseController(w), timeout: e.streamWrite}
	// Without full duplex an HTTP/1 server closes an unread request body once response headers go
	// out, which tears down upstream streams (golang/go#40747, docs/architecture.md#proxy-rules).
	// The body is buffered before forwarding today, so this guards the day a path streams it
	// instead.
	_ = cl.w.rc.EnableFullDuplex()
	ctx := r.Context()
	if parent := trace.SpanFromContext(ctx); parent.IsRecording() {
		ctx = cl.startSpan(ctx, parent)
	}
	if e.transportTimes {
		// The transport times the headers; the server cancels the request's context when the
		// client goes or the handler returns, which ends the upstream request with it.
		cl.Context = ctx
	} else {
		cl.Context, cl.cancel = context.WithCancelCause(ctx)
		cl.timer = time.AfterFunc(e.headerTimeout, func() { cl.cancel(errHeaderTimeout) })
	}
	c.SetReplayer(cl)

	out := r.WithContext(cl)
	out.TransferEncoding = nil
	if len(body) > 0 {
		cl.br.Reset(body)
		// io.NopCloser over a *bytes.Reader is a body net/http knows is in memory: the request
		// line, headers and body leave in one write instead of a header flush and a second
		// write (one syscall less per request than a proxy that streams the body).
		out.Body = io.NopCloser(&cl.br)
		out.ContentLength = int64(len(body))
	} else {
		out.Body = http.NoBody
		out.ContentLength = 0
	}
	return cl, out, nil
}

// Body reading bounds.
const (
	// preallocBody is the largest declared body allocated up front (typical MCP messages are a
	// few KiB); larger ones grow as they arrive.
	preallocBody = 64 << 10
	// smallBody is the largest declared body read into the call's own memory (call.small): an
	// initialize, a tools/list or a small tools/call, without an allocation of its own. Small, as
	// an open stream keeps its call.
	smallBody = 512
)

// bodyReadTimeout bounds reading a request body; engines take it when they are built (a
// variable for tests).
var bodyReadTimeout = 30 * time.Second

// readBody buffers the request body, bounded by the limit, so it can be forwarded with a
// Content-Length and replayed once.
func (e *engine) readBody(w http.ResponseWriter, r *http.Request, small *[smallBody]byte) (_ []byte, err error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, nil
	}
	if r.ContentLength > e.maxBody {
		return nil, tooLarge(e.maxBody, nil)
	}
	// A client that declares a body and then stalls must not hold the connection (and its
	// buffer) forever: the body has its own read deadline, cleared once it is in. A body that
	// failed keeps it, so net/http's discard of the unread rest (before the error answer's
	// headers go out) fails at once and closes the connection, instead of reading a trickle with
	// no deadline at all.
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(e.bodyTimeout)) == nil {
		defer func() {
			if err == nil {
				_ = rc.SetReadDeadline(time.Time{})
			}
		}()
	}
	if r.ContentLength > 0 && r.ContentLength <= preallocBody {
		var buf []byte
		if r.ContentLength <= smallBody {
			buf = small[:r.ContentLength]
		} else {
			buf = make([]byte, r.ContentLength)
		}
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, e.bodyError(r, err)
		}
		return buf, nil
	}
	if r.ContentLength > 0 {
		// Larger declared bodies grow as bytes arrive: a declaration alone allocates nothing.
		buf, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength))
		if err != nil {
			return nil, e.bodyError(r, err)
		}
		if int64(len(buf)) != r.ContentLength {
			return nil, e.bodyError(r, io.ErrUnexpectedEOF)
		}
		return buf, nil
	}
	buf, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.maxBody))
	if err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge(e.maxBody, mbe)
		}
		return nil, e.bodyError(r, err)
	}
	return buf, nil
}

func tooLarge(limit int64, cause error) *problem.Error {
	return problem.New(http.StatusRequestEntityTooLarge,
		"The request body is larger than the gateway's limit of "+formatBytes(limit)+".", cause).
		WithReason(ReasonTooLarge).
		// The rest of the body is not read; the connection cannot be reused.
		WithHeader("Connection", "close")
}

func (e *engine) bodyError(r *http.Request, err error) *problem.Error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The read deadline passed (which also ends the request's context): the client is
		// there, it is just too slow.
		return problem.New(http.StatusRequestTimeout, "The request body did not arrive within "+e.bodyTimeout.String()+".", err).
			WithReason(ReasonBodyTimeout).WithHeader("Connection", "close")
	}
	if r.Context().Err() != nil {
		return problem.New(StatusClientClosedRequest, "The client closed the request.", err).WithReason(ReasonClientClosed)
	}
	return problem.New(http.StatusBadRequest, "The request body could not be read.", err).WithReason(ReasonBodyUnread)
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// rewrite points the outbound request at the upstream and applies the header rules: the
// client's Authorization and Cookie never leave the gateway; a policy-chosen upstream
// Authorization replaces them.
func (e *engine) rewrite(pr *httputil.ProxyRequest) {
	cl := callFrom(pr.In.Context())
	t := cl.target
	u := pr.Out.URL
	in := u.RawQuery // already cleaned of unparsable parameters by ReverseProxy
	*u = url.URL{Scheme: t.Scheme, User: t.User, Host: t.Host, Path: t.Path, RawPath: t.RawPath, RawQuery: t.RawQuery}
	if e.forwardSearch && in != "" {
		if u.RawQuery == "" {
			u.RawQuery = in
		} else {
			u.RawQuery += "&" + in
		}
	}
	pr.Out.Host = "" // Host is the upstream's
	pr.Out.RequestURI = ""
	if len(cl.body) > 0 {
		// ReverseProxy wraps the outgoing body in a reader of its own, which net/http does not
		// know is in memory: the transport would flush the request's headers and write the body
		// in a second write. The body (pr.In's, set by prepare) is the call's buffered copy, whose
		// Close does nothing and which stays valid as long as the transport holds it, so it goes
		// out as it is: headers and body in one write (TestForwardedRequestIsOneWrite).
		pr.Out.Body = pr.In.Body
	}

	h := pr.Out.Header
	h.Del("Authorization")
	if v, ok := cl.pc.UpstreamAuthorization(); ok {
		h.Set("Authorization", v)
	}
	// The gateway's own cookies (browser login, consent CSRF) are not the upstream's business.
	h.Del("Cookie")
	injectTraceparent(pr.In.Context(), h)
	// The body is already buffered: waiting for the upstream's 100 Continue only adds a round trip.
	h.Del("Expect")
	if _, ok := h["User-Agent"]; !ok {
		// ReverseProxy would set an empty User-Agent (so Go's default is not sent) with a slice of
		// its own per request; the transport only reads this shared one.
		h["User-Agent"] = noUserAgent
	}
	if !e.mcp {
		// A URL-rewrite backend is usually the operator's own service and may want the client
		// address. MCP upstreams are typically third parties: they get none (Rewrite mode has
		// already dropped any client-supplied X-Forwarded-*).
		pr.SetXForwarded()
	}
	if e.follow && len(cl.body) > 0 {
		pr.Out.GetBody = cl.getBody // 307/308 re-send the body
	}
	cl.out = pr.Out
}

func (cl *call) getBody() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(cl.body)), nil
}

// modifyResponse runs once the upstream's headers are in: the header timer stops, the outbound
// policies and response hooks see the response (a hook may replace it), and streamed responses
// are marked so neither a buffering proxy in front nor a server write timeout cuts them.
func (e *engine) modifyResponse(resp *http.Response) error {
	cl := callFrom(resp.Request.Context())
	if cl.timer != nil && !cl.timer.Stop() {
		return errHeaderTimeout // the timer fired as the headers arrived; the context is gone
	}
	// Upstream cookies would be set on the gateway's origin, where they could shadow the
	// gateway's own, and would never be sent back (Cookie is not forwarded).
	resp.Header.Del("Set-Cookie")
	if cl.span != nil {
		cl.span.SetAttributes(attrStatus.Int(resp.StatusCode))
	}

	final, err := cl.pc.ProcessResponse(cl.in, resp)
	if err != nil {
		// A policy's or hook's failure is the gateway's, not an unreachable upstream: a
		// *problem.Error keeps its status, anything else is a 500.
		return problem.From(err)
	}
	// Whether the final response came from the upstream (the first answer or a replay) is decided
	// before it is copied into resp, which would lose its identity.
	upstreamAnswer := cl.fromUpstream(final)
	if final != resp {
		// ReverseProxy writes the response it handed us; a hook that replaced it owns the old
		// body (it may be streaming from it).
		*resp = *final
		if resp.Body == nil {
			resp.Body = http.NoBody
		}
	}
	if e.mcp && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) && upstreamAnswer {
		// An upstream challenge must not reach the MCP client, which would start OAuth against the
		// upstream's authorization server (docs/architecture.md#proxy-rules). The token-exchange
		// hook has already had its chance to turn it into connect-required.
		resp.Header.Del("WWW-Authenticate")
	}
	if cl.bindSession && upstreamAnswer {
		switch ups := resp.Header.Get(mcpwire.SessionHeader); {
		case ups == "":
		case ups == cl.sessionUps:
			// The upstream kept the session: the id the client presented is what WrapSession
			// would make again (mcpwire TestSessionBoundToSubject), sent back without another MAC.
			resp.Header.Set(mcpwire.SessionHeader, cl.sessionIn)
		default:
			resp.Header.Set(mcpwire.SessionHeader, mcpwire.WrapSession(e.sessionKey, cl.pc.User.Subject(), cl.client, ups))
		}
	}
	if isEventStream(resp.Header) {
		resp.Header.Set("X-Accel-Buffering", "no")
		cl.w.startStream()
	}
	if cl.capOn {
		cl.watchAnswer(resp)
	}
	return nil
}

// bindsSession reports whether the engine binds the request's session ids to its caller: an MCP
// route whose caller is authenticated, where no policy (the token exchange) claimed the session.
// Every authenticated caller of such a route reaches the upstream with the same credential (a
// static key, or none), so the upstream cannot tell whose session an id is; the gateway can.
// Anonymous routes have no one to bind to: their ids pass through.
func (e *engine) bindsSession(c *policy.Context) bool {
	return e.mcp && len(e.sessionKey) > 0 && c.User != nil && !c.SessionClaimed()
}

// noUserAgent is the User-Agent value of a forwarded request whose client sent none: empty, so
// the transport sends no User-Agent at all. Shared and never written.
var noUserAgent = []string{""}

// fromUpstream reports whether resp is the upstream's (not a hook's synthetic answer).
func (cl *call) fromUpstream(resp *http.Response) bool {
	return resp.Request != nil && (resp.Request == cl.out || resp.Request.Context().Value(callKey{}) == cl || slices.Contains(cl.replayed, resp))
}

// isEventStream reports whether the Content-Type is text/event-stream, without
// mime.ParseMediaType's allocations on every response.
func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(textproto.TrimString(ct), "text/event-stream")
}

// errorHandler records the failure for Handle to return; the gateway renders it. Nothing has
// been written to the client at this point.
func (e *engine) errorHandler(_ http.ResponseWriter, r *http.Request, err error) {
	cl := callFrom(r.Context())
	cl.err = e.classify(err, context.Cause(cl), cl.in.Context().Err() != nil)
}

// classify turns a transport failure into the problem the client sees.
func (e *engine) classify(err, cause error, clientGone bool) *problem.Error {
	if pe, ok := errors.AsType[*problem.Error](err); ok {
		return pe
	}
	switch {
	case errors.Is(err, errHeaderTimeout) || errors.Is(cause, errHeaderTimeout) || (e.transportTimes && isHeaderTimeout(err)):
		return problem.New(http.StatusGatewayTimeout,
			"The upstream server did not answer within "+e.headerTimeout.String()+".", err).WithReason(ReasonTimeout)
	case clientGone:
		return problem.New(StatusClientClosedRequest, "The client closed the request.", err).WithReason(ReasonClientClosed)
	}
	return problem.New(http.StatusBadGateway, "The upstream server could not be reached.", err).WithReason(ReasonUnreachable)
}

// Replay implements policy.Replayer: the forwarded request again, with another upstream
// Authorization, under the same header timeout. The caller owns the response body.
func (cl *call) Replay(ctx context.Context, authorization string) (*http.Response, error) {
	if cl.out == nil {
		return nil, policy.ErrNoReplay
	}
	ctx, cancel := context.WithCancelCause(ctx)
	cl.replays = append(cl.replays, cancel)
	timer := time.AfterFunc(cl.eng.headerTimeout, func() { cancel(errHeaderTimeout) })

	req := cl.out.Clone(ctx)
	req.Header.Del("Authorization")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	req.Body, req.ContentLength = http.NoBody, 0
	if len(cl.body) > 0 {
		req.Body, _ = cl.getBody()
		req.ContentLength = int64(len(cl.body))
		req.GetBody = cl.getBody
	}
	resp, err := cl.eng.transport.RoundTrip(req)
	if !timer.Stop() {
		if err == nil {
			_ = resp.Body.Close()
		}
		return nil, cl.eng.classify(errHeaderTimeout, nil, false)
	}
	if err != nil {
		return nil, cl.eng.classify(err, context.Cause(ctx), cl.in.Context().Err() != nil)
	}
	removeHopByHop(resp.Header)
	resp.Header.Del("Set-Cookie")
	cl.replayed = append(cl.replayed, resp)
	return resp, nil
}

// hopByHop are the RFC 9110 §7.6.1 connection-specific headers ReverseProxy strips from the
// first response; a replayed response bypasses ReverseProxy's own round trip.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopByHop(h http.Header) {
	for _, f := range h.Values("Connection") {
		for name := range strings.SplitSeq(f, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// streamWriter renews a per-write deadline while a stream is being copied: a stream has no total
// timeout (and a server-wide WriteTimeout must not cut it), but a client that stops reading is
// dropped after timeout.
type streamWriter struct {
	http.ResponseWriter
	rc      http.ResponseController
	timeout time.Duration
	stream  bool
}

func (w *streamWriter) startStream() {
	w.stream = true
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
}

// WriteHeader sends a stream's headers at once, before its first event: the client learns the
// stream is open without waiting for the upstream's first event, and the headers are written
// from ReverseProxy's own frame rather than from under its copy loop, which keeps an open
// stream's goroutine within a stack Go can keep small (docs/architecture.md#proxy-rules).
func (w *streamWriter) WriteHeader(code int) {
	w.ResponseWriter.WriteHeader(code)
	if w.stream {
		_ = w.rc.Flush()
	}
}

func (w *streamWriter) Write(b []byte) (int, error) {
	if w.stream {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap is for http.ResponseController (flush, full duplex, deadlines, hijack).
func (w *streamWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var (
	_ policy.Handler     = (*MCPProxy)(nil)
	_ policy.Handler     = (*URLRewrite)(nil)
	_ policy.Validator   = (*MCPProxy)(nil)
	_ policy.Validator   = (*URLRewrite)(nil)
	_ policy.Provisioner = (*MCPProxy)(nil)
	_ policy.Provisioner = (*URLRewrite)(nil)
	_ policy.Replayer    = (*call)(nil)
)
