package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
)

// waitTimeout bounds every wait on a channel in these tests; nothing sleeps.
const waitTimeout = 10 * time.Second

// upstreamServer is a real Go SDK Streamable HTTP server with test tools, behind a middleware
// that records what arrived (headers, query, request context end).
type upstreamServer struct {
	*httptest.Server
	URL *url.URL

	mu   sync.Mutex
	reqs []recorded

	// release unblocks the "block" and "slow" tools; toolDone is closed when "slow" returns.
	release     chan struct{}
	releaseOnce sync.Once
	toolDone    chan struct{}
	// reqDone receives once per upstream request whose context ended before it returned.
	reqDone chan struct{}
	// resumed is closed when the first stream resumption (GET with Last-Event-ID) arrives; the
	// "poll" tool answers only then.
	resumed     chan struct{}
	resumedOnce sync.Once
	// before, when set, may answer a request itself (return true) before the SDK sees it.
	before func(w http.ResponseWriter, r *http.Request) bool
}

type recorded struct {
	Method string
	Proto  string
	Path   string
	Query  string
	Host   string
	Header http.Header
}

type echoIn struct {
	Text string `json:"text"`
}

func newUpstream(t testing.TB, opts *mcp.StreamableHTTPOptions) *upstreamServer {
	t.Helper()
	return newUpstreamServer(t, opts, false)
}

// newUpstreamServer is newUpstream, served over TLS with HTTP/2 enabled when h2 is set.
func newUpstreamServer(t testing.TB, opts *mcp.StreamableHTTPOptions, h2 bool) *upstreamServer {
	t.Helper()
	u := &upstreamServer{release: make(chan struct{}), toolDone: make(chan struct{}), reqDone: make(chan struct{}, 16), resumed: make(chan struct{})}
	srv := mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "v1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "echoes text"},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "slow", Description: "reports progress, waits for the test, reports again"},
		func(ctx context.Context, req *mcp.CallToolRequest, _ echoIn) (*mcp.CallToolResult, any, error) {
			defer close(u.toolDone)
			tok := req.Params.GetProgressToken()
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: 1, Total: 2, Message: "first"})
			select {
			case <-u.release:
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: 2, Total: 2, Message: "second"})
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "block", Description: "waits for the test"},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ echoIn) (*mcp.CallToolResult, any, error) {
			select {
			case <-u.release:
			case <-ctx.Done():
			}
			return &mcp.CallToolResult{}, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "poll", Description: "closes its SSE stream (SEP-1699), answers once the client resumed it"},
		func(ctx context.Context, req *mcp.CallToolRequest, _ echoIn) (*mcp.CallToolResult, any, error) {
			if req.Extra == nil || req.Extra.CloseSSEStream == nil {
				return nil, nil, errors.New("poll: the server has no event store, so it cannot close the stream")
			}
			req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: time.Millisecond})
			select {
			case <-u.resumed:
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "completed after resumption"}}}, nil, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, opts)
	mux := http.NewServeMux()
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, recorded{Method: r.Method, Proto: r.Proto, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Header: r.Header.Clone()})
		before := u.before
		u.mu.Unlock()
		if r.Method == http.MethodGet && r.Header.Get("Last-Event-ID") != "" {
			u.resumedOnce.Do(func() { close(u.resumed) })
		}
		// Report a request whose context ends while the handler still runs (the gateway
		// cancelled it), not the normal end of every request.
		// Either side may see it first: the watcher while the handler still runs, or the handler
		// itself when it returns because its context ended (under load the watcher can be
		// scheduled only after the handler returned).
		var returned atomic.Bool
		var once sync.Once
		signal := func() { once.Do(func() { u.reqDone <- struct{}{} }) }
		defer func() {
			returned.Store(true)
			if r.Context().Err() != nil {
				signal()
			}
		}()
		go func() {
			<-r.Context().Done()
			if !returned.Load() {
				signal()
			}
		}()
		if before != nil && before(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	u.Server = httptest.NewUnstartedServer(mux)
	if h2 {
		u.EnableHTTP2 = true
		u.StartTLS()
	} else {
		u.Start()
	}
	t.Cleanup(func() {
		u.unblock()
		u.Close()
	})
	u.URL, _ = url.Parse(u.Server.URL + "/mcp")
	return u
}

// unblock releases blocked tools (idempotent).
func (u *upstreamServer) unblock() { u.releaseOnce.Do(func() { close(u.release) }) }

func (u *upstreamServer) requests() []recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recorded(nil), u.reqs...)
}

func (u *upstreamServer) last(t testing.TB) recorded {
	t.Helper()
	reqs := u.requests()
	if len(reqs) == 0 {
		t.Fatal("upstream received no request")
	}
	return reqs[len(reqs)-1]
}

// gateway runs h the way the gateway does: a fresh policy.Context per request, inbound policies
// in order, then the handler, and one problem renderer for returned errors.
type gateway struct {
	*httptest.Server
	errs chan *problem.Error // every error Handle returned, for assertions on 499s
}

func newGateway(t testing.TB, h policy.Handler, upstream *url.URL, inbound []policy.Inbound, hooks ...policy.ResponseHook) *gateway {
	t.Helper()
	return newGatewayServer(t, nil, h, upstream, inbound, hooks...)
}

// newGatewayServer is newGateway with a hook to configure the http.Server before it starts.
func newGatewayServer(t testing.TB, configure func(*http.Server), h policy.Handler, upstream *url.URL, inbound []policy.Inbound, hooks ...policy.ResponseHook) *gateway {
	t.Helper()
	g := &gateway{errs: make(chan *problem.Error, 16)}
	route := &policy.RouteInfo{Path: "/mcp", Methods: []string{"GET", "POST"}, OperationID: "test", UpstreamURL: upstream}
	if pr, ok := h.(policy.Provisioner); ok {
		env := &policy.Env{Name: "test", Logger: slog.New(slog.DiscardHandler), Routes: []*policy.RouteInfo{route}}
		if err := pr.Provision(context.Background(), env); err != nil {
			t.Fatal(err)
		}
	}
	g.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &policy.Context{RequestID: "req-test", Route: route, Log: slog.New(slog.DiscardHandler), Start: time.Now()}
		for _, hk := range hooks {
			c.AddResponseHook(hk)
		}
		for _, in := range inbound {
			if resp, err := in.HandleRequest(c, r); err != nil || resp != nil {
				t.Errorf("inbound policy answered: %v %v", resp, err)
				return
			}
		}
		if err := h.Handle(c, w, r); err != nil {
			pe := problem.From(err)
			select {
			case g.errs <- pe:
			default:
			}
			problem.Write(w, pe, r.URL.Path, c.RequestID)
		}
	}))
	if configure != nil {
		configure(g.Config)
	}
	g.Start()
	t.Cleanup(g.Close)
	return g
}

func (g *gateway) url() string { return g.Server.URL + "/mcp" }

// mcpProxy returns a McpProxyHandler for upstream with settings s.
func mcpProxy(u *url.URL, s Settings) *MCPProxy {
	return &MCPProxy{Options: Options{RewritePattern: u.String()}, Settings: s}
}

// closedPortURL returns an http URL on which nothing listens.
func closedPortURL(t testing.TB) *url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return &url.URL{Scheme: "http", Host: addr, Path: "/mcp"}
}

// wait fails the test if ch does not yield within waitTimeout.
func wait[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

func toolsCallBody(name string) string {
	return `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"` + name + `","arguments":{"text":"hi"},"_meta":{"progressToken":"p1"}}}`
}

// post sends a raw MCP POST with the usual headers plus extra.
func post(t testing.TB, ctx context.Context, target, body string, extra http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, vs := range extra {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
