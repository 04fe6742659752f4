package safehttp

import (
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// dialLog replaces a guard's dialer: it records every dial the guard attempts and passes it on
// to the real dialer (whose Control runs the address check) only when pass is set.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
	pass  bool
}

func (l *dialLog) dial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	l.mu.Lock()
	l.addrs = append(l.addrs, addr)
	l.mu.Unlock()
	if !l.pass {
		return nil, &net.OpError{Op: "dial", Net: network, Err: io.ErrClosedPipe}
	}
	return d.DialContext(ctx, network, addr)
}

func (l *dialLog) dialled() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.addrs...)
}

func get(t *testing.T, rt http.RoundTripper, target string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rt.RoundTrip(req)
}

// An address literal that is not public is refused before the guard dials anything: no socket,
// no packet.
func TestTransportRefusesLiteralsBeforeDialling(t *testing.T) {
	rt := NewTransport(Options{Allow: mustAllow(t, "127.0.0.1")})
	log := &dialLog{}
	rt.(*guard).dialer = log.dial
	for _, target := range []string{
		"https://10.0.0.1/mcp", "https://169.254.169.254/latest/meta-data/", "https://[fd00:ec2::254]/",
		"https://192.168.1.1:8443/", "https://[::ffff:10.0.0.1]/", "https://100.64.0.1/",
	} {
		_, err := get(t, rt, target)
		se := refusal(t, err, ReasonAddress)
		if !strings.Contains(se.Detail, "address") {
			t.Errorf("%s: detail %q", target, se.Detail)
		}
	}
	// Plain http to a host not on the list is refused for its scheme, also before any dial.
	_, err := get(t, rt, "http://10.0.0.1/mcp")
	refusal(t, err, ReasonScheme)
	if d := log.dialled(); len(d) != 0 {
		t.Errorf("the guard dialled %v", d)
	}
}

// A name is checked after DNS, before the connection: the loopback server behind localhost
// never sees a connection.
func TestTransportRefusesNamesBeforeConnecting(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(ok))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	rt := NewTransport(Options{TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig, TrustedHosts: []string{"upstream.example"}})
	log := &dialLog{pass: true}
	rt.(*guard).dialer = log.dial
	_, err := get(t, rt, "https://localhost:"+u.Port()+"/mcp")
	se := refusal(t, err, ReasonAddress)
	if !strings.Contains(se.Detail, "localhost resolves to") || !strings.Contains(se.Detail, "loopback") {
		t.Errorf("detail %q", se.Detail)
	}
	if len(log.dialled()) == 0 {
		t.Error("the dial-time check was not reached (the test proves nothing)")
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the server accepted %d connections", n)
	}
}

// NewTransport is for streaming callers: trusted hosts may use http when TrustedHostsHTTP is set,
// bodies are not bounded, redirects come back as responses, and it never asks for gzip.
func TestTransportForStreaming(t *testing.T) {
	big := strings.Repeat("x", DefaultMaxBodyBytes+1)
	var acceptEncoding atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acceptEncoding.Store(r.Header.Get("Accept-Encoding"))
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/big", http.StatusTemporaryRedirect)
			return
		}
		if r.URL.Path == "/gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			_, _ = io.WriteString(gz, "zipped")
			_ = gz.Close()
			return
		}
		_, _ = io.WriteString(w, big)
	}))
	t.Cleanup(srv.Close)

	_, err := get(t, NewTransport(Options{TrustedHosts: []string{"127.0.0.1"}}), srv.URL+"/big")
	refusal(t, err, ReasonScheme)

	rt := NewTransport(Options{TrustedHosts: []string{"127.0.0.1"}, TrustedHostsHTTP: true})
	resp, err := get(t, rt, srv.URL+"/big")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || len(b) != len(big) {
		t.Errorf("read %d bytes, %v; want the whole %d-byte body", len(b), err, len(big))
	}
	resp, err = get(t, rt, srv.URL+"/redirect")
	if err != nil || resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("redirect: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	resp, err = get(t, rt, srv.URL+"/gzip")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if ae, _ := acceptEncoding.Load().(string); ae != "" || resp.Header.Get("Content-Encoding") != "gzip" || string(b) == "zipped" {
		t.Errorf("Accept-Encoding sent %q, response encoding %q: the transport must not negotiate or decode compression", ae, resp.Header.Get("Content-Encoding"))
	}
}
