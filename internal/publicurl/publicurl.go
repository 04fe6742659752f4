// Package publicurl derives the gateway's externally visible URLs (links, redirect URIs, metadata
// documents): from the configured public URL, or else from the request, honouring forwarded
// headers only from trusted proxies.
package publicurl

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// URLs derives the gateway's externally visible URLs.
type URLs struct {
	// Public is the configured public URL (--public-url); nil means derive it from each request.
	Public *url.URL
	// TrustedProxies may set X-Forwarded-Proto/Host.
	TrustedProxies []netip.Prefix
	// BasePath prefixes the gateway's own endpoints.
	BasePath string
}

// Base returns the externally visible scheme://host of the gateway for r: the configured
// public URL when set; else the request's own host, with X-Forwarded-Proto/Host honoured only when
// the direct peer is a trusted proxy (anyone else could forge them to poison redirect URIs). Of a
// forwarded header with several values (a chain of proxies, or a value the client sent that a
// proxy appended to) the rightmost counts: the nearest trusted proxy set it, while everything left
// of it may come from the client.
func (s *URLs) Base(r *http.Request) *url.URL {
	if s.Public != nil {
		u := *s.Public
		u.Path = strings.TrimSuffix(u.Path, "/")
		return &u
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if s.fromTrustedProxy(r) {
		if p := strings.ToLower(lastValue(r.Header.Values("X-Forwarded-Proto"))); p == "http" || p == "https" {
			scheme = p
		}
		if h := lastValue(r.Header.Values("X-Forwarded-Host")); h != "" && validHost(h) {
			host = h
		}
	}
	return &url.URL{Scheme: scheme, Host: host}
}

// Derived reports whether URLs are derived from each request (no configured public URL): answers
// that contain them then depend on Host and the forwarded headers and must not be shared by caches.
func (s *URLs) Derived() bool { return s == nil || s.Public == nil }

// URL joins the public base with path.
func (s *URLs) URL(r *http.Request, path string) string {
	u := s.Base(r)
	return u.Scheme + "://" + u.Host + u.Path + path
}

// Gateway returns the public URL of a gateway endpoint: base path + path.
func (s *URLs) Gateway(r *http.Request, path string) string { return s.URL(r, s.BasePath+path) }

// HTTPS reports whether the public URL for r is https (cookies get Secure and __Host- only then).
func (s *URLs) HTTPS(r *http.Request) bool { return s.Base(r).Scheme == "https" }

func (s *URLs) fromTrustedProxy(r *http.Request) bool {
	return s.trusted(peer(r))
}

// trusted reports whether addr (an IP address) is a trusted proxy.
func (s *URLs) trusted(addr string) bool {
	if s == nil || len(s.TrustedProxies) == 0 {
		return false
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peer is the host part of r's direct peer address.
func peer(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return host
}

// ClientAddr is the address of the client that sent r: the direct peer, or, when that is a trusted
// proxy, the nearest X-Forwarded-For address that is not one (so clients behind one proxy are told
// apart, and a client cannot pick its own address: hops left of the nearest untrusted one are
// ignored). A nil URLs trusts no proxy.
func (s *URLs) ClientAddr(r *http.Request) string {
	host := peer(r)
	if !s.trusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if !s.trusted(hop) {
			return hop
		}
		host = hop
	}
	return host
}

// AddrKey is the key per-address limits and counters use for addr: an IPv6 address counts as its
// /64 (one host usually holds a whole /64, so a key per address would let it take as many keys as
// it likes), written as a prefix ("2001:db8:1:2::/64"); an IPv4 address (also IPv4-mapped IPv6) as
// itself; anything that is no IP address is returned unchanged.
func AddrKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// lastValue is the rightmost non-empty element of the comma-separated values of a header that may
// be sent several times.
func lastValue(values []string) string {
	for i := len(values) - 1; i >= 0; i-- {
		parts := strings.Split(values[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			if v := strings.TrimSpace(parts[j]); v != "" {
				return v
			}
		}
	}
	return ""
}

// validHost reports whether h looks like a host[:port]: letters, digits, '.', '-', '_', ':' and
// the brackets of an IPv6 literal. Anything else (a path, userinfo, spaces) is not a host a proxy sets.
func validHost(h string) bool {
	if len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']':
		default:
			return false
		}
	}
	return true
}

// ParseTrustedProxies parses a comma-separated list of IPs and CIDRs.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, err
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
