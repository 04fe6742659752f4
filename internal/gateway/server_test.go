package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
	_ "github.com/mcpgate/mcpgate/internal/proxy" // registers McpProxyHandler, the export mcpRoute names: what makes a route an MCP route
	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/requestid"
)

// fakeMCP stands in for the MCP proxy handler: it echoes what the pipeline gave it and runs the
// response through ProcessResponse like a proxying handler must.
type fakeMCP struct{}

func (fakeMCP) Handle(c *policy.Context, w http.ResponseWriter, r *http.Request) error {
	auth, _ := c.UpstreamAuthorization()
	resp := &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"application/json"}, "Access-Control-Allow-Origin": {"https://evil.example"}},
		Body:       io.NopCloser(strings.NewReader(`{"auth":"` + auth + `","trace":"` + r.Header.Get("X-Trace") + `"}`)),
	}
	resp, err := c.ProcessResponse(r, resp)
	if err != nil {
		return err
	}
	writeResponse(w, resp)
	return nil
}

// tracer appends its name to X-Trace, and may stop or add a hook.
type tracer struct {
	name   string
	stop   int // answer with this status
	hook   func(c *policy.Context, r *http.Request, resp *http.Response) (*http.Response, error)
	setAut string
}

func (t *tracer) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	r.Header.Set("X-Trace", r.Header.Get("X-Trace")+t.name+";")
	if t.setAut != "" {
		c.SetUpstreamAuthorization(t.setAut)
	}
	if t.hook != nil {
		c.AddResponseHook(t.hook)
	}
	if t.stop != 0 {
		return nil, problem.New(t.stop, "stopped by "+t.name, nil).WithReason("stopped")
	}
	return nil, nil
}

func newTestServer(t *testing.T, routes []*config.Route, policies map[string]*config.Policy, s Settings) *Server {
	t.Helper()
	p := &config.Project{Routes: routes, Policies: policies, CORSPolicies: map[string]*config.CORSPolicy{
		"partner": {Name: "partner", AllowedOrigins: []string{"https://app.partner.example", "https://*.tools.example"}, AllowedMethods: []string{"POST"}, AllowedHeaders: []string{"Content-Type", "Mcp-Protocol-Version"}, MaxAge: 300},
	}}
	s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := New(context.Background(), p, s)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv.SetReady(true)
	return srv
}

func mcpRoute(path string, inbound ...string) *config.Route {
	return &config.Route{File: "config/routes.oas.json", Path: path, PathMode: config.PathModeOpenAPI, Methods: []string{"GET", "POST"},
		OperationID: strings.Trim(strings.ReplaceAll(path, "/", "-"), "-"),
		Handler:     config.Handler{Export: "McpProxyHandler", Value: &fakeMCP{}}, Inbound: inbound}
}

func pol(name string, v any) *config.Policy {
	return &config.Policy{Name: name, Handler: config.Handler{Export: "Test", Value: v}}
}

func do(t *testing.T, h http.Handler, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	return resp, body
}

func TestPipelineRunsPoliciesInOrderAndChainsHooks(t *testing.T) {
	var order []string
	hook := func(name string) func(*policy.Context, *http.Request, *http.Response) (*http.Response, error) {
		return func(_ *policy.Context, _ *http.Request, resp *http.Response) (*http.Response, error) {
			order = append(order, name+":"+resp.Header.Get("X-Hook"))
			resp.Header.Set("X-Hook", resp.Header.Get("X-Hook")+name)
			return resp, nil
		}
	}
	srv := newTestServer(t,
		[]*config.Route{mcpRoute("/mcp/a", "first", "second")},
		map[string]*config.Policy{
			"first":  pol("first", &tracer{name: "first", hook: hook("h1")}),
			"second": pol("second", &tracer{name: "second", hook: hook("h2"), setAut: "Bearer upstream"}),
		}, Settings{})
	resp, body := do(t, srv, httptest.NewRequest("POST", "/mcp/a", strings.NewReader("{}")))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if body["trace"] != "first;second;" {
		t.Errorf("policies ran as %q, want first;second;", body["trace"])
	}
	if body["auth"] != "Bearer upstream" {
		t.Errorf("upstream authorization %q", body["auth"])
	}
	// Each hook saw the previous hook's response (compatibilityDate ≥ 2026-03-01).
	if strings.Join(order, ",") != "h1:,h2:h1" || resp.Header.Get("X-Hook") != "h1h2" {
		t.Errorf("hooks ran as %v, final X-Hook %q", order, resp.Header.Get("X-Hook"))
	}
	if resp.Header.Get(requestid.Header) == "" {
		t.Error("no request id header")
	}
}

func TestPolicyStopSkipsLaterPoliciesAndRendersProblem(t *testing.T) {
	later := &tracer{name: "later"}
	srv := newTestServer(t,
		[]*config.Route{mcpRoute("/mcp/a", "gate", "later")},
		map[string]*config.Policy{"gate": pol("gate", &tracer{name: "gate", stop: 401}), "later": pol("later", later)}, Settings{})
	resp, body := do(t, srv, httptest.NewRequest("POST", "/mcp/a", nil))
	if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != problem.ContentType {
		t.Fatalf("got %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	trace, _ := body["trace"].(map[string]any)
	if trace["requestId"] != resp.Header.Get(requestid.Header) || trace["requestId"] == "" {
		t.Errorf("problem trace.requestId %v, header %q", trace["requestId"], resp.Header.Get(requestid.Header))
	}
	if body["reasonCode"] != "stopped" || body["detail"] != "stopped by gate" {
		t.Errorf("body %v", body)
	}
}

func TestUnknownRouteMethodAndNonStandardMethod(t *testing.T) {
	srv := newTestServer(t, []*config.Route{mcpRoute("/mcp/{name}")}, nil, Settings{})
	cases := []struct {
		name, method, path string
		status             int
		allow              string
	}{
		{"unknown path", "POST", "/nope", 404, ""},
		{"param route matches", "POST", "/mcp/linear", 200, ""},
		{"param is one segment", "POST", "/mcp/a/b", 404, ""},
		{"method not on route", "DELETE", "/mcp/linear", 405, "GET, POST"},
		{"non-standard method", "PROPFIND", "/mcp/linear", 501, ""},
		{"cors none preflight", "OPTIONS", "/mcp/linear", 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.method == "OPTIONS" {
				req.Header.Set("Origin", "https://a.example")
				req.Header.Set("Access-Control-Request-Method", "POST")
			}
			resp, body := do(t, srv, req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.allow != "" && resp.Header.Get("Allow") != tc.allow {
				t.Errorf("Allow %q, want %q", resp.Header.Get("Allow"), tc.allow)
			}
			if tc.status >= 400 && body["status"] != float64(tc.status) {
				t.Errorf("problem body %v", body)
			}
		})
	}
}

func TestURLPatternPaths(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"/mcp/:id", "/mcp/x", true},
		{"/mcp/:id", "/mcp/x/y", false},
		{"/files/(.*)", "/files/a/b/c", true},
		{"/files/(.*)", "/other/a", false},
		{"/v1/:id(\\d+)", "/v1/42", true},
	} {
		m, err := compilePath(tc.pattern, config.PathModeURLPattern)
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		if got := m.match(tc.path); got != tc.want {
			t.Errorf("%s ~ %s = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

func TestCORSAndOriginCheck(t *testing.T) {
	partner := mcpRoute("/mcp/partner")
	partner.CORSPolicy = "partner"
	anything := mcpRoute("/mcp/open")
	anything.CORSPolicy = "anything-goes"
	srv := newTestServer(t, []*config.Route{mcpRoute("/mcp/none"), partner, anything}, nil,
		Settings{PublicURL: &url.URL{Scheme: "https", Host: "gw.example"}})

	t.Run("none strips upstream CORS headers", func(t *testing.T) {
		resp, _ := do(t, srv, httptest.NewRequest("POST", "/mcp/none", nil))
		if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("Access-Control-Allow-Origin %q leaked", v)
		}
	})
	t.Run("foreign origin refused on MCP route", func(t *testing.T) {
		req := httptest.NewRequest("POST", "/mcp/none", nil)
		req.Header.Set("Origin", "https://evil.example")
		resp, body := do(t, srv, req)
		if resp.StatusCode != 403 || body["reasonCode"] != "origin_not_allowed" {
			t.Fatalf("got %d %v", resp.StatusCode, body)
		}
	})
	t.Run("own public origin allowed", func(t *testing.T) {
		req := httptest.NewRequest("POST", "/mcp/none", nil)
		req.Header.Set("Origin", "https://gw.example")
		if resp, _ := do(t, srv, req); resp.StatusCode != 200 {
			t.Fatalf("got %d", resp.StatusCode)
		}
	})
	t.Run("named policy allows listed and wildcard origins", func(t *testing.T) {
		for _, o := range []string{"https://app.partner.example", "https://x.tools.example"} {
			req := httptest.NewRequest("POST", "/mcp/partner", nil)
			req.Header.Set("Origin", o)
			resp, _ := do(t, srv, req)
			if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != o {
				t.Errorf("%s: %d ACAO=%q", o, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		}
		req := httptest.NewRequest("POST", "/mcp/partner", nil)
		req.Header.Set("Origin", "https://tools.example.evil")
		if resp, _ := do(t, srv, req); resp.StatusCode != 403 {
			t.Errorf("lookalike origin: %d", resp.StatusCode)
		}
	})
	t.Run("preflight", func(t *testing.T) {
		req := httptest.NewRequest("OPTIONS", "/mcp/partner", nil)
		req.Header.Set("Origin", "https://app.partner.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, _ := do(t, srv, req)
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Methods") != "POST" ||
			resp.Header.Get("Access-Control-Allow-Origin") != "https://app.partner.example" || resp.Header.Get("Access-Control-Max-Age") != "300" {
			t.Errorf("preflight %d %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("anything-goes reflects origin", func(t *testing.T) {
		req := httptest.NewRequest("POST", "/mcp/open", nil)
		req.Header.Set("Origin", "https://whatever.example")
		resp, _ := do(t, srv, req)
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://whatever.example" {
			t.Errorf("%d %v", resp.StatusCode, resp.Header)
		}
	})
}

func TestPublicBaseHonoursForwardedHeadersOnlyFromTrustedProxies(t *testing.T) {
	trusted, _ := publicurl.ParseTrustedProxies("10.0.0.0/8, 127.0.0.1")
	srv := newTestServer(t, nil, nil, Settings{TrustedProxies: trusted})
	req := httptest.NewRequest("GET", "/x", nil)
	req.Host = "internal:9000"
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Host", "mcp.example.com")

	req.RemoteAddr = "10.1.2.3:5555"
	if got := srv.urls.URL(req, "/cb"); got != "https://mcp.example.com/cb" {
		t.Errorf("trusted proxy: %s", got)
	}
	req.RemoteAddr = "203.0.113.9:5555"
	if got := srv.urls.URL(req, "/cb"); got != "http://internal:9000/cb" {
		t.Errorf("untrusted peer: %s", got)
	}
	fixed := newTestServer(t, nil, nil, Settings{PublicURL: &url.URL{Scheme: "https", Host: "fixed.example"}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}})
	if got := fixed.urls.URL(req, "/cb"); got != "https://fixed.example/cb" {
		t.Errorf("--public-url must win: %s", got)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	srv := newTestServer(t, nil, nil, Settings{})
	if resp, _ := do(t, srv, httptest.NewRequest("GET", "/healthz", nil)); resp.StatusCode != 200 {
		t.Errorf("healthz %d", resp.StatusCode)
	}
	srv.SetReady(false)
	if resp, _ := do(t, srv, httptest.NewRequest("GET", "/readyz", nil)); resp.StatusCode != 503 {
		t.Errorf("readyz while draining %d", resp.StatusCode)
	}
}

func TestDNSRebindingOriginRefusedWithoutPublicURL(t *testing.T) {
	srv := newTestServer(t, []*config.Route{mcpRoute("/mcp/a")}, nil, Settings{})
	for _, tc := range []struct {
		host, origin string
		status       int
	}{
		{"evil.example", "http://evil.example", 403},     // the rebinding page names itself as Host
		{"127.0.0.1:9000", "http://evil.example", 403},   // a foreign page against the real name
		{"127.0.0.1:9000", "http://127.0.0.1:9000", 200}, // the gateway's own loopback origin
		{"localhost:9000", "http://localhost:9000", 200}, // same, by name
		{"evil.example:9000", "http://evil.example:9000", 403},
	} {
		req := httptest.NewRequest("POST", "/mcp/a", nil)
		req.Host = tc.host
		req.Header.Set("Origin", tc.origin)
		if resp, _ := do(t, srv, req); resp.StatusCode != tc.status {
			t.Errorf("Host %s Origin %s: %d, want %d", tc.host, tc.origin, resp.StatusCode, tc.status)
		}
	}
}
