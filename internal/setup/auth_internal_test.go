package setup

import (
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/publicurl"
)

func TestClientAddr(t *testing.T) {
	h := &Handler{urls: &publicurl.URLs{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, tc := range []struct {
		name, remote, xff, want string
	}{
		{"direct", "192.0.2.7:5555", "", "192.0.2.7"},
		{"untrusted peer cannot pick its address", "192.0.2.7:5555", "198.51.100.1", "192.0.2.7"},
		{"behind a trusted proxy", "10.1.2.3:5555", "198.51.100.1", "198.51.100.1"},
		{"client-supplied hops before the proxy are ignored", "10.1.2.3:5555", "203.0.113.9, 198.51.100.1", "198.51.100.1"},
		{"two trusted proxies", "10.1.2.3:5555", "198.51.100.1, 10.9.9.9", "198.51.100.1"},
		{"only proxies", "10.1.2.3:5555", "10.9.9.9", "10.9.9.9"},
		{"trusted proxy without the header", "10.1.2.3:5555", "", "10.1.2.3"},
		{"ipv6", "[2001:db8::1]:443", "", "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := h.clientAddr(r); got != tc.want {
				t.Errorf("clientAddr = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLimiterWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLoginThrottle(func() time.Time { return now })
	for range MaxFailedLogins - 1 {
		l.fail("a")
		now = now.Add(time.Minute)
	}
	if w := l.check("a"); w != 0 {
		t.Fatalf("after %d failures: wait %s", MaxFailedLogins-1, w)
	}
	l.fail("a")
	if w := l.check("a"); w != FailedLoginWindow-time.Duration(MaxFailedLogins-1)*time.Minute {
		t.Fatalf("after %d failures: wait %s", MaxFailedLogins, w)
	}
	if w := l.check("b"); w != 0 {
		t.Errorf("another address waits %s", w)
	}
	now = now.Add(FailedLoginWindow - time.Duration(MaxFailedLogins-1)*time.Minute)
	if w := l.check("a"); w != 0 {
		t.Errorf("after the window opened by the first failure ended: wait %s", w)
	}
	l.fail("a")
	l.succeed("a")
	if w := l.check("a"); w != 0 || l.failures.Len() != 0 {
		t.Errorf("a success clears the address: wait %s, %d entries", w, l.failures.Len())
	}
}
