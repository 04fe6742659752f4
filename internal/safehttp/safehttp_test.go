package safehttp

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func tlsServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *tls.Config) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv, srv.Client().Transport.(*http.Transport).TLSClientConfig
}

func mustAllow(t *testing.T, s string) AllowList {
	t.Helper()
	a, err := ParseAllowList(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func refusal(t *testing.T, err error, want Reason) *Error {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("error = %v, want *safehttp.Error with reason %s", err, want)
	}
	if se.Reason != want {
		t.Fatalf("reason = %s (%v), want %s", se.Reason, se, want)
	}
	return se
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"ok":true}`) }

func TestHTTPRefusedUnlessAllowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(ok))
	t.Cleanup(srv.Close)

	_, err := New(Options{}).Get("http://example.com/.well-known/x?code=secret")
	se := refusal(t, err, ReasonScheme)
	if !strings.Contains(se.Error(), "http://example.com/.well-known/x") || strings.Contains(se.Error(), "secret") {
		t.Errorf("error %q should name the URL without its query", se.Error())
	}

	// Trusted (the configured upstream) lifts the address check, not the https rule.
	_, err = New(Options{TrustedHosts: []string{"127.0.0.1"}}).Get(srv.URL)
	refusal(t, err, ReasonScheme)

	for _, allow := range []string{"127.0.0.1", "127.0.0.0/8", " localhost , 127.0.0.1 "} {
		resp, err := New(Options{Allow: mustAllow(t, allow)}).Get(srv.URL)
		if err != nil {
			t.Fatalf("allow %q: %v", allow, err)
		}
		_ = resp.Body.Close()
	}

	_, err = New(Options{Allow: mustAllow(t, "127.0.0.1")}).Get("ftp://127.0.0.1/x")
	refusal(t, err, ReasonScheme)
	_, err = New(Options{}).Get("https://user:pw@example.com/")
	refusal(t, err, ReasonInvalidURL)
}

func TestLoopbackRefusedAtDial(t *testing.T) {
	srv, tc := tlsServer(t, ok)
	u, _ := url.Parse(srv.URL)

	// An IP literal and a name that resolves to loopback are both caught after resolution.
	for _, target := range []string{srv.URL, "https://localhost:" + u.Port()} {
		_, err := New(Options{TLSConfig: tc}).Get(target + "/.well-known/oauth-authorization-server")
		se := refusal(t, err, ReasonAddress)
		if !strings.Contains(se.Error(), target+"/.well-known/oauth-authorization-server") || !strings.Contains(se.Error(), "loopback") {
			t.Errorf("error %q should name the URL and say loopback", se.Error())
		}
	}

	for name, o := range map[string]Options{
		"trusted host": {TLSConfig: tc, TrustedHosts: []string{"127.0.0.1"}},
		"allowed host": {TLSConfig: tc, Allow: mustAllow(t, "127.0.0.1")},
		"allowed cidr": {TLSConfig: tc, Allow: mustAllow(t, "127.0.0.0/8")},
	} {
		resp, err := New(o).Get(srv.URL)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_ = resp.Body.Close()
	}
	// A trusted host name does not extend to other names resolving to the same address.
	_, err := New(Options{TLSConfig: tc, TrustedHosts: []string{"upstream.example"}}).Get("https://localhost:" + u.Port())
	refusal(t, err, ReasonAddress)
}

func TestRedirectNotFollowed(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path == "/start" {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data?x=1", http.StatusFound)
			return
		}
		ok(w, r)
	}))
	t.Cleanup(srv.Close)
	_, err := New(Options{Allow: mustAllow(t, "127.0.0.1")}).Get(srv.URL + "/start?state=s3cret")
	se := refusal(t, err, ReasonRedirect)
	if se.URL != srv.URL+"/start" || !strings.Contains(se.Error(), "http://169.254.169.254/latest/meta-data") || strings.Contains(se.Error(), "s3cret") {
		t.Errorf("error %q should name both URLs without queries", se.Error())
	}
	if hits != 1 {
		t.Errorf("server hits = %d, want 1", hits)
	}
}

func TestBodyLimit(t *testing.T) {
	big := strings.Repeat("x", 2048)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length: the limit must hold while reading
		}
		_, _ = io.WriteString(w, big)
	}))
	t.Cleanup(srv.Close)
	c := New(Options{Allow: mustAllow(t, "127.0.0.1"), MaxBodyBytes: 1024})

	_, err := c.Get(srv.URL + "/sized")
	refusal(t, err, ReasonBodyTooLarge)

	resp, err := c.Get(srv.URL + "/chunked")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("read err = %v, want ErrBodyTooLarge", err)
	}
	if len(b) != 1024 {
		t.Errorf("read %d bytes before the error, want 1024", len(b))
	}

	exact := New(Options{Allow: mustAllow(t, "127.0.0.1"), MaxBodyBytes: 2048})
	resp, err = exact.Get(srv.URL + "/chunked")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, err := io.ReadAll(resp.Body); err != nil || len(b) != 2048 {
		t.Fatalf("exact limit: %d bytes, %v", len(b), err)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	start := time.Now()
	_, err := New(Options{Allow: mustAllow(t, "127.0.0.1"), Timeout: 200 * time.Millisecond}).Get(srv.URL)
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestBlockedKind(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		public bool
	}{
		{"8.8.8.8", true},
		{"2606:4700:4700::1111", true},
		{"127.0.0.1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false},
		{"169.254.1.1", false},
		{"100.64.0.1", false},
		{"0.0.0.0", false},
		{"::1", false},
		{"::", false},
		{"fe80::1", false},
		{"fc00::1", false},
		{"fd00:ec2::254", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"64:ff9b::a00:1", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
	} {
		if got := IsPublicAddr(netip.MustParseAddr(tc.ip)); got != tc.public {
			t.Errorf("IsPublicAddr(%s) = %v (%s), want %v", tc.ip, got, blockedKind(netip.MustParseAddr(tc.ip)), tc.public)
		}
	}
}

func TestParseAllowList(t *testing.T) {
	a, err := ParseAllowList("127.0.0.1,localhost,::1,10.0.0.0/8,[::1],Dev.Example.")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"127.0.0.1", "localhost", "::1", "[::1]", "10.9.8.7", "dev.example", "::ffff:127.0.0.1"} {
		if !a.allowsHost(h) {
			t.Errorf("%s should be allowed", h)
		}
	}
	for _, h := range []string{"127.0.0.2", "example.com", "11.0.0.1"} {
		if a.allowsHost(h) {
			t.Errorf("%s should not be allowed", h)
		}
	}
	_, err = ParseAllowList("10.0.0.0/33,bad host,http://x")
	if err == nil || !strings.Contains(err.Error(), `"10.0.0.0/33"`) || !strings.Contains(err.Error(), `"bad host"`) || !strings.Contains(err.Error(), `"http://x"`) {
		t.Errorf("err = %v, want each bad item named", err)
	}
	if empty, _ := ParseAllowList(" , "); !empty.IsEmpty() {
		t.Error("blank list should be empty")
	}
}
