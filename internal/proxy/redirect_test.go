package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
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

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/safehttp"
)

// dialRecorder is the upstream transport's dialer in these tests: it connects only to loopback
// addresses and records every address it is asked for. Anything else is refused without a
// packet being sent, so a test that fails (a redirect the engine wrongly followed through the
// upstream transport) never reaches another network either.
type dialRecorder struct {
	mu    sync.Mutex
	addrs []string
}

func (d *dialRecorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	d.mu.Unlock()
	host, _, _ := net.SplitHostPort(addr)
	if host != "127.0.0.1" && host != "localhost" && host != "::1" {
		return nil, errors.New("test dialer: refusing to dial " + addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func (d *dialRecorder) dialled() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// recordingTransport is an upstream transport that dials through rec.
func recordingTransport(rec *dialRecorder) *http.Transport {
	return &http.Transport{DialContext: rec.dial, DisableCompression: true}
}

// redirectingUpstream is a real MCP upstream whose /old answers status with Location location.
func redirectingUpstream(t *testing.T, status int, location string) (*upstreamServer, *url.URL) {
	t.Helper()
	up := newUpstream(t, jsonStateless)
	up.before = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/old" {
			w.Header().Set("Location", location)
			w.WriteHeader(status)
			return true
		}
		return false
	}
	old := *up.URL
	old.Path = "/old"
	return up, &old
}

// countingServer is a real listener that counts the connections it accepts and the requests it
// serves: a redirect target that must never be reached.
type countingServer struct {
	*httptest.Server
	conns, reqs atomic.Int32
}

func newCountingServer(t *testing.T, tls bool) *countingServer {
	t.Helper()
	c := &countingServer{}
	c.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c.reqs.Add(1)
		_, _ = io.WriteString(w, "reached")
	}))
	c.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}
	if tls {
		c.StartTLS()
	} else {
		c.Start()
	}
	t.Cleanup(c.Close)
	return c
}

// port returns the server's port.
func (c *countingServer) port() string {
	_, p, _ := net.SplitHostPort(c.Listener.Addr().String())
	return p
}

// redirectProblem posts an initialize through gw, expects a problem+json answer with status and returns
// its body and the error the handler returned.
func redirectProblem(t *testing.T, gw *gateway, status int) (problem.Body, *problem.Error) {
	t.Helper()
	resp := post(t, t.Context(), gw.url(), initializeBody, nil)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != problem.ContentType {
		t.Fatalf("got %d %s %s, want a %d problem", resp.StatusCode, resp.Header.Get("Content-Type"), raw, status)
	}
	var b problem.Body
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("problem body %s: %v", raw, err)
	}
	return b, wait(t, gw.errs, "the handler's error")
}

// A redirect to another host is refused with a 502 naming why, unless the route allows it; the
// other host is never contacted.
func TestRedirectAcrossHostsRefused(t *testing.T) {
	other := newCountingServer(t, false)
	// localhost is another host than the upstream's 127.0.0.1, though both are this machine.
	_, old := redirectingUpstream(t, http.StatusTemporaryRedirect, "http://localhost:"+other.port()+"/mcp")
	rec := &dialRecorder{}
	h := &MCPProxy{Options: Options{RewritePattern: old.String(), FollowRedirects: true}, Settings: Settings{Transport: recordingTransport(rec)}}
	gw := newGateway(t, h, old, nil)

	b, pe := redirectProblem(t, gw, http.StatusBadGateway)
	if b.Reason != ReasonRedirectRefused || !strings.Contains(b.Detail, "another host") || !strings.Contains(b.Detail, "followRedirectsAcrossHosts") ||
		!strings.Contains(b.Detail, "http://localhost:"+other.port()+"/mcp") {
		t.Errorf("problem = %+v, want %s naming the target and followRedirectsAcrossHosts", b, ReasonRedirectRefused)
	}
	if _, ok := errors.AsType[*redirectError](pe); !ok {
		t.Errorf("cause = %v, want the redirect refusal", pe.Err)
	}
	if n := other.conns.Load(); n != 0 {
		t.Errorf("the other host accepted %d connections", n)
	}
	if got := rec.dialled(); len(got) != 1 || got[0] != old.Host {
		t.Errorf("upstream transport dialled %v, want only the upstream %s", got, old.Host)
	}
}

// With followRedirectsAcrossHosts a redirect to another host on the operator's allow list
// (MCPGATE_SAFEHTTP_ALLOW, handed over as Host.Proxy.RedirectAllow) is followed, over http and
// to a loopback address.
func TestRedirectAcrossHostsAllowed(t *testing.T) {
	target := newUpstream(t, jsonStateless)
	_, port, _ := net.SplitHostPort(target.Listener.Addr().String())
	_, old := redirectingUpstream(t, http.StatusTemporaryRedirect, "http://localhost:"+port+"/mcp")
	allow, err := safehttp.ParseAllowList("localhost")
	if err != nil {
		t.Fatal(err)
	}
	rec := &dialRecorder{}
	h := &MCPProxy{Options: Options{RewritePattern: old.String(), FollowRedirects: true, FollowRedirectsAcrossHosts: true}}
	srv := serveProvisioned(t, h, old, &policy.Host{Proxy: policy.ProxySettings{RedirectAllow: allow, Transport: recordingTransport(rec)}})

	resp := post(t, t.Context(), srv.URL+"/mcp", initializeBody, nil)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"protocolVersion"`) {
		t.Fatalf("got %d %s, want the initialize result from the redirect target", resp.StatusCode, body)
	}
	if got := target.last(t); got.Method != http.MethodPost || got.Path != "/mcp" || got.Header.Get("Referer") != "" {
		t.Errorf("redirect target got %s %s Referer %q", got.Method, got.Path, got.Header.Get("Referer"))
	}
	if got := rec.dialled(); len(got) != 1 || got[0] != old.Host {
		t.Errorf("upstream transport dialled %v, want only the upstream %s (hops go through the guard)", got, old.Host)
	}
}

// A redirect to a private, link-local or cloud-metadata address is refused by the safehttp guard
// before anything is dialled, even when the route follows redirects across hosts.
func TestRedirectToPrivateAddressRefused(t *testing.T) {
	tlsTarget := newCountingServer(t, true)
	cases := []struct {
		name, location string
		reason         safehttp.Reason
		detail         string
	}{
		{"private https", "https://10.0.0.1/mcp", safehttp.ReasonAddress, "not public"},
		{"cloud metadata https", "https://169.254.169.254/latest/meta-data/", safehttp.ReasonAddress, "not public"},
		{"private http", "http://10.0.0.1/mcp", safehttp.ReasonScheme, "https"},
		{"cloud metadata http", "http://169.254.169.254/latest/meta-data/", safehttp.ReasonScheme, "https"},
		// A name that resolves to loopback: refused at dial time, after DNS, before the connection.
		{"name resolving to loopback", "https://localhost:" + tlsTarget.port() + "/mcp", safehttp.ReasonAddress, "not public"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, old := redirectingUpstream(t, http.StatusTemporaryRedirect, tc.location)
			rec := &dialRecorder{}
			h := &MCPProxy{Options: Options{RewritePattern: old.String(), FollowRedirects: true, FollowRedirectsAcrossHosts: true},
				Settings: Settings{Transport: recordingTransport(rec)}}
			gw := newGateway(t, h, old, nil)

			start := time.Now()
			b, pe := redirectProblem(t, gw, http.StatusBadGateway)
			if b.Reason != ReasonRedirectRefused || !strings.Contains(b.Detail, tc.detail) {
				t.Errorf("problem = %+v, want %s saying %q", b, ReasonRedirectRefused, tc.detail)
			}
			se, ok := errors.AsType[*safehttp.Error](pe)
			if !ok || se.Reason != tc.reason {
				t.Fatalf("cause = %v, want a safehttp refusal %s", pe.Err, tc.reason)
			}
			// The guard refused it, not a failed connection: nothing waited on a dial.
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("refusal took %s", d)
			}
			if got := rec.dialled(); len(got) != 1 || got[0] != old.Host {
				t.Errorf("upstream transport dialled %v, want only the upstream %s", got, old.Host)
			}
		})
	}
	if n := tlsTarget.conns.Load(); n != 0 {
		t.Errorf("the loopback target behind localhost accepted %d connections", n)
	}
}

// A redirect on the upstream's own host is followed through the guard (the upstream's host may
// be loopback and plain http, as the operator wrote it): 307 and 308 re-send the body, the
// upstream credential goes along, and no Referer is invented.
func TestRedirectSameHostFollowed(t *testing.T) {
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			up, old := redirectingUpstream(t, status, "/mcp")
			rec := &dialRecorder{}
			h := &MCPProxy{Options: Options{RewritePattern: old.String(), FollowRedirects: true}, Settings: Settings{Transport: recordingTransport(rec)}}
			gw := newGateway(t, h, old, []policy.Inbound{setAuthorization("Bearer upstream-cred")})
			resp := post(t, t.Context(), gw.url(), initializeBody, nil)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"protocolVersion"`) {
				t.Fatalf("got %d %s, want the initialize result", resp.StatusCode, body)
			}
			got := up.last(t)
			if got.Path != "/mcp" || got.Method != http.MethodPost || got.Header.Get("Authorization") != "Bearer upstream-cred" || got.Header.Get("Referer") != "" {
				t.Errorf("upstream got %s %s Authorization %q Referer %q", got.Method, got.Path, got.Header.Get("Authorization"), got.Header.Get("Referer"))
			}
			// The hop went through the guard's own transport, not the upstream transport.
			if d := rec.dialled(); len(d) != 1 {
				t.Errorf("upstream transport dialled %v, want only the first request", d)
			}
		})
	}
}

// A redirect from https to http is refused even on the upstream's own host.
func TestRedirectHTTPSDowngradeRefused(t *testing.T) {
	up := newUpstreamServer(t, jsonStateless, true)
	plain := newCountingServer(t, false)
	up.before = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "http://127.0.0.1:"+plain.port()+"/mcp", http.StatusTemporaryRedirect)
			return true
		}
		return false
	}
	old := *up.URL
	old.Path = "/old"
	h := &MCPProxy{Options: Options{RewritePattern: old.String(), FollowRedirects: true, FollowRedirectsAcrossHosts: true},
		Settings: Settings{Transport: up.Client().Transport}}
	gw := newGateway(t, h, &old, nil)
	b, _ := redirectProblem(t, gw, http.StatusBadGateway)
	if b.Reason != ReasonRedirectRefused || !strings.Contains(b.Detail, "leaves https") {
		t.Errorf("problem = %+v", b)
	}
	if n := plain.conns.Load(); n != 0 {
		t.Errorf("the http target accepted %d connections", n)
	}
}

func TestFollowRedirectsAcrossHostsNeedsFollowRedirects(t *testing.T) {
	o := Options{RewritePattern: "https://mcp.example.com/mcp", FollowRedirectsAcrossHosts: true}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "options.followRedirectsAcrossHosts") {
		t.Errorf("Validate = %v", err)
	}
}

// setAuthorization is an inbound policy that sets the upstream credential.
type setAuthorization string

func (a setAuthorization) HandleRequest(c *policy.Context, _ *http.Request) (*http.Response, error) {
	c.SetUpstreamAuthorization(string(a))
	return nil, nil
}

// serveProvisioned provisions h for one MCP route to upstream with host as the gateway's Host and
// serves it, rendering returned errors as problems.
func serveProvisioned(t *testing.T, h *MCPProxy, upstream *url.URL, host *policy.Host) *httptest.Server {
	t.Helper()
	route := &policy.RouteInfo{Path: "/mcp", Methods: []string{"GET", "POST"}, OperationID: "test", UpstreamURL: upstream}
	env := &policy.Env{Name: "test", Logger: slog.New(slog.DiscardHandler), Routes: []*policy.RouteInfo{route}, Host: host}
	if err := h.Provision(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &policy.Context{RequestID: "req-test", Route: route, Log: slog.New(slog.DiscardHandler), Start: time.Now()}
		if err := h.Handle(c, w, r); err != nil {
			problem.Write(w, problem.From(err), r.URL.Path, c.RequestID)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A redirect loop is followed 10 times, then refused.
func TestRedirectLoopRefused(t *testing.T) {
	up, old := redirectingUpstream(t, http.StatusTemporaryRedirect, "/old")
	gw := newGateway(t, &MCPProxy{Options: Options{RewritePattern: old.String(), FollowRedirects: true}}, old, nil)
	b, _ := redirectProblem(t, gw, http.StatusBadGateway)
	if b.Reason != ReasonRedirectRefused || !strings.Contains(b.Detail, "more than 10 times") {
		t.Errorf("problem = %+v", b)
	}
	if n := len(up.requests()); n != 1+maxRedirects {
		t.Errorf("upstream saw %d requests, want %d", n, 1+maxRedirects)
	}
}
