package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// originAllowed reports whether a browser Origin may call an MCP route: its CORS policy allows
// it, or it is the gateway's own origin. The gateway's own origin is the configured public URL;
// without one it cannot be derived from the request — a DNS-rebinding page sends its own name as
// Host — so only a loopback origin calling a loopback Host (local development) counts as own.
func (s *Server) originAllowed(rt *route, r *http.Request, origin string) bool {
	if rt.cors != nil && rt.cors.allowsOrigin(origin) {
		return true
	}
	if pub := s.settings.PublicURL; pub != nil {
		return strings.EqualFold(origin, pub.Scheme+"://"+pub.Host)
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return isLoopbackHost(u.Hostname()) && isLoopbackHost(hostOnly(r.Host)) && strings.EqualFold(u.Host, r.Host)
}

// isLoopbackHost reports whether a host name or address is the local machine.
func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil && a.Unmap().IsLoopback()
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}
