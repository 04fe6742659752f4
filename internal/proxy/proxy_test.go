package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/policy/headers"
	"github.com/mcpgate/mcpgate/internal/problem"
)

var (
	jsonStateless = &mcp.StreamableHTTPOptions{JSONResponse: true, Stateless: true}
	sseStateless  = &mcp.StreamableHTTPOptions{Stateless: true}
	sseStateful   = &mcp.StreamableHTTPOptions{}
)

func connect(t *testing.T, endpoint string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "v1"}, opts)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: endpoint, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connecting through the gateway: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func TestSDKClientThroughProxy(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts *mcp.StreamableHTTPOptions
	}{
		{"json stateless upstream", jsonStateless},
		{"sse stateful upstream", sseStateful},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, tc.opts)
			gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, nil)
			cs := connect(t, gw.url(), nil)

			tools, err := cs.ListTools(t.Context(), nil)
			if err != nil {
				t.Fatalf("tools/list: %v", err)
			}
			var names []string
			for _, tl := range tools.Tools {
				names = append(names, tl.Name)
			}
			slices.Sort(names)
			if got, want := strings.Join(names, ","), "block,echo,poll,slow"; got != want {
				t.Errorf("tools = %s, want %s", got, want)
			}

			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hello through the gateway"}})
			if err != nil {
				t.Fatalf("tools/call: %v", err)
			}
			if got := res.Content[0].(*mcp.TextContent).Text; got != "hello through the gateway" {
				t.Errorf("echo = %q", got)
			}
			for _, r := range up.requests() {
				if r.Method != http.MethodPost {
					continue
				}
				if r.Path != "/mcp" || r.Host != up.URL.Host {
					t.Errorf("upstream saw %s %s (Host %s), want POST /mcp on %s", r.Method, r.Path, r.Host, up.URL.Host)
				}
			}
		})
	}
}

func TestProgressReachesClientBeforeToolFinishes(t *testing.T) {
	up := newUpstream(t, sseStateful)
	gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, nil)
	progress := make(chan *mcp.ProgressNotificationParams, 4)
	cs := connect(t, gw.url(), &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			progress <- req.Params
		},
	})

	type result struct {
		res *mcp.CallToolResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{
			Name: "slow", Arguments: map[string]any{"text": "x"}, Meta: mcp.Meta{"progressToken": "tok-1"},
		})
		done <- result{res, err}
	}()

	first := wait(t, progress, "the first progress notification")
	if first.Progress != 1 || first.Message != "first" {
		t.Errorf("first progress = %+v", first)
	}
	// The tool is still blocked on up.release: the event was streamed, not buffered to the end.
	select {
	case <-up.toolDone:
		t.Fatal("the upstream tool finished before the client saw its first progress event")
	case r := <-done:
		t.Fatalf("tools/call returned before the tool was released: %+v", r)
	default:
	}
	up.unblock()
	r := wait(t, done, "the tools/call result")
	if r.err != nil {
		t.Fatalf("tools/call: %v", r.err)
	}
	if got := r.res.Content[0].(*mcp.TextContent).Text; got != "done" {
		t.Errorf("result = %q", got)
	}
	if second := wait(t, progress, "the second progress notification"); second.Progress != 2 {
		t.Errorf("second progress = %+v", second)
	}
}

func TestSSEResponseHeaders(t *testing.T) {
	up := newUpstream(t, sseStateless)
	gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, nil)
	resp := post(t, t.Context(), gw.url(), toolsCallBody("echo"), nil)
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type = %q, want text/event-stream", ct)
	}
	if got := resp.Header.Get("X-Accel-Buffering"); got != "no" {
		t.Errorf("X-Accel-Buffering = %q, want no", got)
	}
	if got := resp.Header.Get("Content-Encoding"); got != "" {
		t.Errorf("Content-Encoding = %q, want none", got)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `"text":"hi"`) {
		t.Errorf("SSE body misses the result: %s", body)
	}
}

func TestHeaderHygiene(t *testing.T) {
	clientHeaders := http.Header{
		"Authorization":        {"Bearer client-token"},
		"Cookie":               {"__Host-mcpgate=session"},
		"Mcp-Protocol-Version": {"2025-11-25"},
		"Mcp-Session-Id":       {"sess-1"},
		"Last-Event-Id":        {"ev-7"},
		"Mcp-Method":           {"initialize"},
		"Mcp-Name":             {"thing"},
		"Mcp-Param-Region":     {"eu-west"},
		"X-Forwarded-For":      {"203.0.113.9"},
		"Forwarded":            {"for=203.0.113.9"},
		"X-Custom":             {"kept"},
		"Proxy-Authorization":  {"Basic c2VjcmV0"},
	}
	upstream := func(t *testing.T) *upstreamServer {
		up := newUpstream(t, jsonStateless)
		// The SDK refuses Last-Event-ID on POST; it is recorded before this runs.
		up.before = func(_ http.ResponseWriter, r *http.Request) bool { r.Header.Del("Last-Event-Id"); return false }
		return up
	}
	checkCommon := func(t *testing.T, up *upstreamServer, got recorded) {
		t.Helper()
		for _, h := range []string{"Mcp-Protocol-Version", "Mcp-Session-Id", "Last-Event-Id", "Mcp-Method", "Mcp-Name", "Mcp-Param-Region", "X-Custom"} {
			if g, w := got.Header.Get(h), clientHeaders.Get(h); g != w {
				t.Errorf("upstream %s = %q, want %q", h, g, w)
			}
		}
		if g := got.Header.Get("Accept"); g != "application/json, text/event-stream" {
			t.Errorf("upstream Accept = %q", g)
		}
		if g := got.Header.Get("Content-Type"); g != "application/json" {
			t.Errorf("upstream Content-Type = %q", g)
		}
		if got.Host != up.URL.Host {
			t.Errorf("upstream Host = %q, want %q", got.Host, up.URL.Host)
		}
		for _, h := range []string{"Cookie", "Proxy-Authorization"} {
			if v := got.Header.Values(h); len(v) > 0 {
				t.Errorf("upstream received %s: %q", h, v)
			}
		}
	}

	t.Run("client credential and cookies removed", func(t *testing.T) {
		up := upstream(t)
		gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, nil)
		resp := post(t, t.Context(), gw.url(), initializeBody, clientHeaders)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d", resp.StatusCode)
		}
		got := up.last(t)
		checkCommon(t, up, got)
		if v := got.Header.Values("Authorization"); len(v) > 0 {
			t.Errorf("client Authorization reached the upstream: %q", v)
		}
		for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"} {
			if v := got.Header.Values(h); len(v) > 0 {
				t.Errorf("MCP upstream received %s: %q", h, v)
			}
		}
	})

	t.Run("policy credential sent instead", func(t *testing.T) {
		up := upstream(t)
		key := &headers.SetUpstreamAPIKey{Value: "Bearer upstream-key"}
		gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, []policy.Inbound{key})
		resp := post(t, t.Context(), gw.url(), initializeBody, clientHeaders)
		resp.Body.Close()
		got := up.last(t)
		checkCommon(t, up, got)
		if v := got.Header.Values("Authorization"); !slices.Equal(v, []string{"Bearer upstream-key"}) {
			t.Errorf("upstream Authorization = %q, want the policy's", v)
		}
	})

	t.Run("url rewrite adds X-Forwarded-For from the connection only", func(t *testing.T) {
		up := upstream(t)
		gw := newGateway(t, &URLRewrite{Options: Options{RewritePattern: up.URL.String()}}, up.URL, nil)
		resp := post(t, t.Context(), gw.url(), initializeBody, clientHeaders)
		resp.Body.Close()
		got := up.last(t)
		checkCommon(t, up, got)
		if g := got.Header.Get("X-Forwarded-For"); g != "127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q, want 127.0.0.1 (client-supplied value dropped)", g)
		}
		if v := got.Header.Values("Authorization"); len(v) > 0 {
			t.Errorf("client Authorization reached the upstream: %q", v)
		}
	})
}

func TestGETAnswers405(t *testing.T) {
	up := newUpstream(t, jsonStateless)
	gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, nil)
	for _, method := range []string{http.MethodGet, http.MethodDelete, http.MethodPut} {
		t.Run(method, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), method, gw.url(), nil)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("status = %d, want 405", resp.StatusCode)
			}
			if got := resp.Header.Get("Allow"); got != "POST" {
				t.Errorf("Allow = %q, want POST", got)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/problem+json" {
				t.Errorf("Content-Type = %q", got)
			}
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{
				"type":   "https://httpproblems.com/http-status/405",
				"title":  "Method Not Allowed",
				"status": float64(405),
				"detail": "MCP Gateway routes support stateless Streamable HTTP requests over POST. Server-sent event GET streams are not supported.",
			}
			for k, v := range want {
				if body[k] != v {
					t.Errorf("body.%s = %v, want %v", k, body[k], v)
				}
			}
		})
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream received %d requests", n)
	}
}

// problemOf reads a problem+json response.
func problemOf(t *testing.T, resp *http.Response) problem.Body {
	t.Helper()
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("Content-Type = %q, body %s", ct, b)
	}
	var b problem.Body
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRequestTooLarge(t *testing.T) {
	const limit = 1024
	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("x", 2*limit) + `"}}}`
	up := newUpstream(t, jsonStateless)
	gw := newGateway(t, mcpProxy(up.URL, Settings{MaxRequestBody: limit}), up.URL, nil)

	for _, tc := range []struct {
		name    string
		chunked bool
	}{{"content-length", false}, {"chunked", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(big)
			if tc.chunked {
				body = io.MultiReader(body) // unknown length: the client sends it chunked
			}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, gw.url(), body)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status = %d, want 413", resp.StatusCode)
			}
			if p := problemOf(t, resp); p.Reason != ReasonTooLarge || p.Detail != "The request body is larger than the gateway's limit of 1 KiB." {
				t.Errorf("problem = %+v", p)
			}
		})
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream received %d requests for oversized bodies", n)
	}

	t.Run("chunked under the limit is forwarded with a length", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, gw.url(), io.MultiReader(strings.NewReader(initializeBody)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d", resp.StatusCode)
		}
		if got := up.last(t).Header.Get("Transfer-Encoding"); got != "" {
			t.Errorf("upstream Transfer-Encoding = %q", got)
		}
	})
}

func TestUpstreamUnreachable(t *testing.T) {
	dead := closedPortURL(t)
	gw := newGateway(t, mcpProxy(dead, Settings{}), dead, nil)
	resp := post(t, t.Context(), gw.url(), initializeBody, nil)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status = %d, want 502", resp.StatusCode)
	}
	p := problemOf(t, resp)
	if p.Reason != ReasonUnreachable || p.Trace.RequestID != "req-test" {
		t.Errorf("problem = %+v", p)
	}
	if strings.Contains(p.Detail, dead.Host) {
		t.Errorf("detail leaks the upstream address: %q", p.Detail)
	}
}

// roundTripperFunc is a RoundTripper that is not an *http.Transport.
type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestUpstreamHeaderTimeout(t *testing.T) {
	// The JSON-mode SDK server sends no headers until the tool returns; "block" never does
	// until the test ends. An *http.Transport times the headers itself (timedTransport); any
	// other RoundTripper gets the call's own timer and cancellable context.
	for name, tr := range map[string]http.RoundTripper{
		"transport times the headers": nil, // the shared transport
		"call's own timer":            roundTripperFunc(func(r *http.Request) (*http.Response, error) { return sharedTransport.RoundTrip(r) }),
	} {
		t.Run(name, func(t *testing.T) {
			up := newUpstream(t, jsonStateless)
			gw := newGateway(t, mcpProxy(up.URL, Settings{HeaderTimeout: 200 * time.Millisecond, Transport: tr}), up.URL, nil)
			resp := post(t, t.Context(), gw.url(), toolsCallBody("block"), nil)
			if resp.StatusCode != http.StatusGatewayTimeout {
				t.Fatalf("status = %d, want 504", resp.StatusCode)
			}
			p := problemOf(t, resp)
			if p.Reason != ReasonTimeout || !strings.Contains(p.Detail, "within 200ms") {
				t.Errorf("problem = %+v", p)
			}
			wait(t, up.reqDone, "the upstream request to be cancelled")
		})
	}
}

func TestClientCancellation(t *testing.T) {
	t.Run("mid-stream", func(t *testing.T) {
		up := newUpstream(t, sseStateless)
		gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, nil)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		resp := post(t, ctx, gw.url(), toolsCallBody("slow"), nil)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data:") && strings.Contains(sc.Text(), "progress") {
				break
			}
		}
		if sc.Err() != nil {
			t.Fatal(sc.Err())
		}
		cancel()
		wait(t, up.reqDone, "the upstream request context to end after the client cancelled")
	})

	t.Run("before headers", func(t *testing.T) {
		up := newUpstream(t, jsonStateless)
		arrived := make(chan struct{}, 1)
		up.before = func(http.ResponseWriter, *http.Request) bool { arrived <- struct{}{}; return false }
		gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, nil)
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw.url(), strings.NewReader(toolsCallBody("block")))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		// Cancel once the upstream has the request.
		wait(t, arrived, "the upstream to receive the request")
		cancel()
		if err := wait(t, errc, "the client to return"); !errors.Is(err, context.Canceled) {
			t.Errorf("client error = %v", err)
		}
		wait(t, up.reqDone, "the upstream request context to end")
		if pe := wait(t, gw.errs, "the handler's error"); pe.Status != StatusClientClosedRequest {
			t.Errorf("handler returned %d %s, want 499", pe.Status, pe.Reason)
		}
	})
}

func TestStatusPassthrough(t *testing.T) {
	type exchange struct {
		status int
		ct     string
		body   string
	}
	do := func(t *testing.T, method, target, body string, h http.Header) exchange {
		req, _ := http.NewRequestWithContext(t.Context(), method, target, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return exchange{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
	}
	for _, tc := range []struct {
		name   string
		opts   *mcp.StreamableHTTPOptions
		rw     bool // urlRewriteHandler (forwards every method)
		method string
		body   string
		header http.Header
		want   int
	}{
		{"202 notification", jsonStateless, false, http.MethodPost, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, nil, http.StatusAccepted},
		{"400 malformed JSON", jsonStateless, false, http.MethodPost, `{"jsonrpc":`, nil, http.StatusBadRequest},
		{"404 unknown session", sseStateful, false, http.MethodPost, `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, http.Header{"Mcp-Session-Id": {"no-such-session"}, "Mcp-Protocol-Version": {"2025-11-25"}}, http.StatusNotFound},
		{"405 DELETE via urlRewriteHandler", jsonStateless, true, http.MethodDelete, ``, nil, http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, tc.opts)
			var h policy.Handler = mcpProxy(up.URL, Settings{})
			if tc.rw {
				h = &URLRewrite{Options: Options{RewritePattern: up.URL.String()}}
			}
			gw := newGateway(t, h, up.URL, nil)
			direct := do(t, tc.method, up.URL.String(), tc.body, tc.header)
			via := do(t, tc.method, gw.url(), tc.body, tc.header)
			if direct.status != tc.want {
				t.Fatalf("direct status = %d, want %d (test setup)", direct.status, tc.want)
			}
			if via != direct {
				t.Errorf("through the gateway %+v, direct %+v", via, direct)
			}
		})
	}
}

func TestRedirects(t *testing.T) {
	up := newUpstream(t, jsonStateless)
	up.before = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/mcp", http.StatusTemporaryRedirect)
			return true
		}
		return false
	}
	old := *up.URL
	old.Path = "/old"
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	send := func(t *testing.T, gw *gateway) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, gw.url(), strings.NewReader(initializeBody))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	t.Run("passed through by default", func(t *testing.T) {
		gw := newGateway(t, mcpProxy(&old, Settings{}), &old, nil)
		resp := send(t, gw)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "/mcp" {
			t.Errorf("got %d Location %q, want 307 /mcp", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("followed with followRedirects", func(t *testing.T) {
		h := &MCPProxy{Options: Options{RewritePattern: old.String(), FollowRedirects: true}}
		gw := newGateway(t, h, &old, nil)
		resp := send(t, gw)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"protocolVersion"`) {
			t.Errorf("got %d %s, want the initialize result", resp.StatusCode, body)
		}
		if got := up.last(t); got.Path != "/mcp" || got.Method != http.MethodPost {
			t.Errorf("last upstream request %s %s", got.Method, got.Path)
		}
	})
}

func TestResponseHooks(t *testing.T) {
	t.Run("a hook replaces the response", func(t *testing.T) {
		up := newUpstream(t, jsonStateless)
		replace := func(_ *policy.Context, _ *http.Request, resp *http.Response) (*http.Response, error) {
			_ = resp.Body.Close()
			return &http.Response{
				StatusCode: http.StatusOK,
				Header:     http.Header{"Content-Type": {"application/json"}},
				Body:       io.NopCloser(strings.NewReader(`{"replaced":true}`)),
			}, nil
		}
		gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, nil, replace)
		resp := post(t, t.Context(), gw.url(), initializeBody, nil)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(body) != `{"replaced":true}` {
			t.Errorf("got %d %s", resp.StatusCode, body)
		}
	})

	// refuse makes the upstream answer 401 with a challenge unless Authorization is "Bearer fresh".
	refuse := func(up *upstreamServer) {
		up.before = func(w http.ResponseWriter, r *http.Request) bool {
			if r.Header.Get("Authorization") == "Bearer fresh" {
				return false
			}
			w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="https://upstream.example/.well-known/oauth-protected-resource"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return true
		}
	}
	stale := &headers.SetUpstreamAPIKey{Value: "Bearer stale"}

	t.Run("a hook replays the request once with a new credential", func(t *testing.T) {
		up := newUpstream(t, jsonStateless)
		refuse(up)
		retry := func(c *policy.Context, r *http.Request, resp *http.Response) (*http.Response, error) {
			if resp.StatusCode != http.StatusUnauthorized {
				return resp, nil
			}
			if got := string(c.RequestBody()); got != initializeBody {
				t.Errorf("RequestBody() = %q, want the forwarded body", got)
			}
			_ = resp.Body.Close()
			return c.Replay(r.Context(), "Bearer fresh")
		}
		gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, []policy.Inbound{stale}, retry)
		resp := post(t, t.Context(), gw.url(), initializeBody, nil)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"protocolVersion"`) {
			t.Fatalf("got %d %s, want the initialize result", resp.StatusCode, body)
		}
		reqs := up.requests()
		if len(reqs) != 2 {
			t.Fatalf("upstream saw %d requests, want 2", len(reqs))
		}
		if a, b := reqs[0].Header.Get("Authorization"), reqs[1].Header.Get("Authorization"); a != "Bearer stale" || b != "Bearer fresh" {
			t.Errorf("Authorization first %q, replay %q", a, b)
		}
		if a, b := reqs[0].Header.Get("Content-Length"), reqs[1].Header.Get("Content-Length"); a != b || a == "" {
			t.Errorf("Content-Length first %q, replay %q", a, b)
		}
	})

	t.Run("a failing hook is the gateway's error, not the upstream's", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			err    error
			status int
			reason string
		}{
			{"problem", problem.New(http.StatusPreconditionRequired, "Connect Linear to continue.", nil).WithReason("connect_required"), http.StatusPreconditionRequired, "connect_required"},
			{"plain error", errors.New("store: connection refused"), http.StatusInternalServerError, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				up := newUpstream(t, jsonStateless)
				fail := func(*policy.Context, *http.Request, *http.Response) (*http.Response, error) { return nil, tc.err }
				gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, nil, fail)
				resp := post(t, t.Context(), gw.url(), initializeBody, nil)
				if resp.StatusCode != tc.status {
					t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
				}
				if p := problemOf(t, resp); p.Reason != tc.reason || strings.Contains(p.Detail, "store:") {
					t.Errorf("problem = %+v", p)
				}
			})
		}
	})

	t.Run("outbound policies run before the hooks", func(t *testing.T) {
		up := newUpstream(t, jsonStateless)
		var order []string
		out := outboundFunc(func(_ *policy.Context, _ *http.Request, resp *http.Response) (*http.Response, error) {
			order = append(order, "outbound")
			resp.Header.Set("X-Outbound", "1")
			return resp, nil
		})
		// An inbound policy is the pipeline stage that knows the route's outbound policies here.
		setOutbound := inboundFunc(func(c *policy.Context, _ *http.Request) (*http.Response, error) {
			c.SetOutbound([]policy.Outbound{out})
			return nil, nil
		})
		hook := func(_ *policy.Context, _ *http.Request, resp *http.Response) (*http.Response, error) {
			order = append(order, "hook:"+resp.Header.Get("X-Outbound"))
			return resp, nil
		}
		gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, []policy.Inbound{setOutbound}, hook)
		resp := post(t, t.Context(), gw.url(), initializeBody, nil)
		resp.Body.Close()
		if got := strings.Join(order, ","); got != "outbound,hook:1" || resp.Header.Get("X-Outbound") != "1" {
			t.Errorf("order %s, X-Outbound %q", got, resp.Header.Get("X-Outbound"))
		}
	})

	t.Run("an upstream challenge never reaches the MCP client", func(t *testing.T) {
		up := newUpstream(t, jsonStateless)
		refuse(up)
		gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, []policy.Inbound{stale})
		resp := post(t, t.Context(), gw.url(), initializeBody, nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status = %d", resp.StatusCode)
		}
		if v := resp.Header.Values("WWW-Authenticate"); len(v) > 0 {
			t.Errorf("upstream challenge passed to the client: %q", v)
		}
	})
}

func TestQueryForwarding(t *testing.T) {
	for _, tc := range []struct {
		name    string
		forward *bool
		want    string
	}{
		{"default forwards", nil, "tenant=a&b=2"},
		{"forwardSearch true", new(true), "tenant=a&b=2"},
		{"forwardSearch false", new(false), "tenant=a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, jsonStateless)
			target, _ := url.Parse(up.URL.String() + "?tenant=a")
			h := &MCPProxy{Options: Options{RewritePattern: target.String(), ForwardSearch: tc.forward}}
			gw := newGateway(t, h, target, nil)
			resp := post(t, t.Context(), gw.url()+"?b=2", initializeBody, nil)
			resp.Body.Close()
			if got := up.last(t); got.Query != tc.want || got.Path != "/mcp" {
				t.Errorf("upstream URL %s?%s, want /mcp?%s", got.Path, got.Query, tc.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"valid", Options{RewritePattern: "https://mcp.example.com/mcp"}, ""},
		{"missing rewritePattern", Options{}, "options.rewritePattern: is required"},
		{"mtls", Options{RewritePattern: "https://x/mcp", MTLSCertificate: "cert-1"},
			"options.mtlsCertificate: mTLS upstream certificates are not supported in this build; remove the option"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&MCPProxy{Options: tc.opts}).Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"McpProxyHandler", "McpVirtualServerHandler", "mcpVirtualServerHandler", "urlRewriteHandler"} {
		m, ok := policy.FindModule(name)
		if !ok || m.Kind != policy.KindHandler {
			t.Errorf("%s not registered as a handler", name)
			continue
		}
		if _, ok := m.New().(policy.Handler); !ok {
			t.Errorf("%s: New() is not a policy.Handler", name)
		}
	}
	if !policy.IsMCPHandler("mcpVirtualServerHandler") || policy.IsMCPHandler("urlRewriteHandler") {
		t.Error("IsMCPHandler disagrees with the registration")
	}
}

func TestStreamOutlivesTimeouts(t *testing.T) {
	// A server-wide WriteTimeout would cut a long SSE stream; the engine replaces it with a
	// per-write deadline once the response is a stream. The header timeout stops when the
	// headers arrive. The property is about elapsed time, so the test lets more than both
	// timeouts pass between the upstream's first and second events.
	const writeTimeout = 100 * time.Millisecond
	up := newUpstream(t, sseStateless)
	gw := newGatewayServer(t, func(s *http.Server) { s.WriteTimeout = writeTimeout },
		mcpProxy(up.URL, Settings{HeaderTimeout: writeTimeout}), up.URL, nil)

	resp := post(t, t.Context(), gw.url(), toolsCallBody("slow"), nil)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var events []string
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data:") {
			continue
		}
		events = append(events, line)
		if len(events) == 1 {
			<-time.After(3 * writeTimeout)
			up.unblock()
		}
	}
	if len(events) != 3 || !strings.Contains(events[2], `"text":"done"`) {
		t.Fatalf("events = %q (scan error %v), want two progress events and the result", events, sc.Err())
	}
}

func TestHTTP2UpstreamStreams(t *testing.T) {
	up := newUpstreamServer(t, sseStateless, true)
	tr := newTransport() // the production tuning, trusting the test certificate
	tr.TLSClientConfig = up.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	t.Cleanup(tr.CloseIdleConnections)
	gw := newGateway(t, mcpProxy(up.URL, Settings{Transport: tr}), up.URL, nil)

	resp := post(t, t.Context(), gw.url(), toolsCallBody("slow"), nil)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var events []string
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data:") {
			events = append(events, line)
			if len(events) == 1 {
				// The first event arrived while the tool is still blocked: streamed over h2.
				up.unblock()
			}
		}
	}
	if len(events) != 3 {
		t.Fatalf("events = %q, want 3", events)
	}
	if got := up.last(t).Proto; got != "HTTP/2.0" {
		t.Errorf("upstream protocol = %s, want HTTP/2.0", got)
	}
}

func TestConcurrentStreams(t *testing.T) {
	// Many clients streaming at once through one engine and one upstream: every stream must
	// complete (golang/go#40747 cut a few percent of them without full duplex).
	const clients = 100
	up := newUpstream(t, sseStateless)
	gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	t.Cleanup(client.CloseIdleConnections)

	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			body := `{"jsonrpc":"2.0","id":` + strconv.Itoa(i+10) + `,"method":"tools/call","params":{"name":"echo","arguments":{"text":"c` + strconv.Itoa(i) + `"}}}`
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, gw.url(), strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			switch {
			case err != nil:
				errs <- fmt.Errorf("client %d: reading stream: %w", i, err)
			case !strings.Contains(string(b), `"text":"c`+strconv.Itoa(i)+`"`):
				errs <- fmt.Errorf("client %d: incomplete stream %q", i, b)
			default:
				errs <- nil
			}
		}()
	}
	failed := 0
	for range clients {
		if err := wait(t, errs, "a client"); err != nil {
			failed++
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d streams failed", failed, clients)
	}
}

type inboundFunc func(c *policy.Context, r *http.Request) (*http.Response, error)

func (f inboundFunc) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	return f(c, r)
}

type outboundFunc func(c *policy.Context, r *http.Request, resp *http.Response) (*http.Response, error)

func (f outboundFunc) HandleResponse(c *policy.Context, r *http.Request, resp *http.Response) (*http.Response, error) {
	return f(c, r, resp)
}
