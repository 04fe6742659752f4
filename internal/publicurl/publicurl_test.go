package publicurl

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
)

// TestBaseReadsTheRightmostForwardedValue: of X-Forwarded-Proto/Host the value the nearest
// trusted proxy set counts — the rightmost, across repeated header lines — never one a client put
// in front of it; from an untrusted peer none counts.
func TestBaseReadsTheRightmostForwardedValue(t *testing.T) {
	s := &URLs{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	for _, tc := range []struct {
		name   string
		remote string
		header http.Header
		want   string
	}{
		{"no forwarded headers", "10.1.1.1:1", nil, "http://gw.internal"},
		{"one value each", "10.1.1.1:1", http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"mcp.example.com"}}, "https://mcp.example.com"},
		{"client value before the proxy's", "10.1.1.1:1", http.Header{"X-Forwarded-Proto": {"http, https"}, "X-Forwarded-Host": {"evil.example, mcp.example.com"}}, "https://mcp.example.com"},
		{"repeated lines", "10.1.1.1:1", http.Header{"X-Forwarded-Proto": {"http", "https"}, "X-Forwarded-Host": {"evil.example", "mcp.example.com"}}, "https://mcp.example.com"},
		{"trailing empty element", "10.1.1.1:1", http.Header{"X-Forwarded-Host": {"evil.example, mcp.example.com, "}}, "http://mcp.example.com"},
		{"rightmost proto not http(s)", "10.1.1.1:1", http.Header{"X-Forwarded-Proto": {"https, gopher"}}, "http://gw.internal"},
		{"proto case", "10.1.1.1:1", http.Header{"X-Forwarded-Proto": {"HTTPS"}}, "https://gw.internal"},
		{"host with a path is ignored", "10.1.1.1:1", http.Header{"X-Forwarded-Host": {"mcp.example.com/evil"}}, "http://gw.internal"},
		{"host with userinfo is ignored", "10.1.1.1:1", http.Header{"X-Forwarded-Host": {"a@evil.example"}}, "http://gw.internal"},
		{"ipv6 literal with port", "10.1.1.1:1", http.Header{"X-Forwarded-Host": {"[2001:db8::1]:8443"}}, "http://[2001:db8::1]:8443"},
		{"untrusted peer", "192.0.2.1:1", http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil.example"}}, "http://gw.internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://gw.internal/x", nil)
			r.RemoteAddr = tc.remote
			for k, vs := range tc.header {
				r.Header[k] = vs
			}
			if got := s.Base(r).String(); got != tc.want {
				t.Errorf("Base = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestBaseOverTLS: a request that came over TLS (serve --tls-cert) derives https URLs; an
// untrusted peer cannot turn them into http, a trusted proxy still sets the host.
func TestBaseOverTLS(t *testing.T) {
	s := &URLs{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	for _, tc := range []struct {
		name   string
		remote string
		header http.Header
		want   string
	}{
		{"no forwarded headers", "192.0.2.1:1", nil, "https://gw.internal"},
		{"http forged by an untrusted peer", "192.0.2.1:1", http.Header{"X-Forwarded-Proto": {"http"}}, "https://gw.internal"},
		{"host from a trusted proxy", "10.1.1.1:1", http.Header{"X-Forwarded-Host": {"mcp.example.com"}}, "https://mcp.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://gw.internal/x", nil)
			r.RemoteAddr = tc.remote
			for k, vs := range tc.header {
				r.Header[k] = vs
			}
			if r.TLS == nil {
				t.Fatal("httptest.NewRequest with an https URL sets no TLS state")
			}
			if got := s.Base(r).String(); got != tc.want || !s.HTTPS(r) {
				t.Errorf("Base = %s (HTTPS %v), want %s", got, s.HTTPS(r), tc.want)
			}
		})
	}
}

func TestConfiguredPublicURLWins(t *testing.T) {
	pub, _ := url.Parse("https://mcp.example.com/")
	s := &URLs{Public: pub, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, BasePath: "/__mcpgate"}
	r := httptest.NewRequest("GET", "http://evil.example/x", nil)
	r.Header.Set("X-Forwarded-Host", "evil.example")
	if got := s.Gateway(r, "/setup"); got != "https://mcp.example.com/__mcpgate/setup" {
		t.Errorf("Gateway = %s", got)
	}
	if s.Derived() || !(&URLs{}).Derived() || !(*URLs)(nil).Derived() {
		t.Error("Derived: want false with a public URL, true without")
	}
}

func TestClientAddr(t *testing.T) {
	s := &URLs{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	for _, tc := range []struct{ remote, xff, want string }{
		{"192.0.2.7:5555", "", "192.0.2.7"},
		{"192.0.2.7:5555", "198.51.100.1", "192.0.2.7"},
		{"10.1.2.3:5555", "203.0.113.9, 198.51.100.1", "198.51.100.1"},
		{"10.1.2.3:5555", "198.51.100.1, 10.9.9.9", "198.51.100.1"},
		{"10.1.2.3:5555", "", "10.1.2.3"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := s.ClientAddr(r); got != tc.want {
			t.Errorf("ClientAddr(%s, %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
		if got := (*URLs)(nil).ClientAddr(r); got != tc.remote[:len(tc.remote)-5] {
			t.Errorf("nil URLs: ClientAddr = %s, want the peer", got)
		}
	}
}

func TestAddrKey(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.7":                "192.0.2.7",
		"::ffff:192.0.2.7":         "192.0.2.7",
		"2001:db8:1:2:aaaa::1":     "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ff::99": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":          "2001:db8:1:3::/64",
		"fe80::1%eth0":             "fe80::/64",
		"not-an-address":           "not-an-address",
	} {
		if got := AddrKey(addr); got != want {
			t.Errorf("AddrKey(%s) = %s, want %s", addr, got, want)
		}
	}
}
