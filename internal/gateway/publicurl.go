package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// PublicBase returns the externally visible scheme://host of the gateway for r: the configured
// public URL when set; else the request's own host, with X-Forwarded-Proto/Host honoured only when
// the direct peer is a trusted proxy (anyone else could forge them to poison redirect URIs).
func (s *Server) PublicBase(r *http.Request) *url.URL {
	if s.settings.PublicURL != nil {
		u := *s.settings.PublicURL
		u.Path = strings.TrimSuffix(u.Path, "/")
		return &u
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if s.fromTrustedProxy(r) {
		if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
			scheme = p
		}
		if h := firstValue(r.Header.Get("X-Forwarded-Host")); h != "" {
			host = h
		}
	}
	return &url.URL{Scheme: scheme, Host: host}
}

// PublicURL joins the public base with path.
func (s *Server) PublicURL(r *http.Request, path string) string {
	u := s.PublicBase(r)
	return u.Scheme + "://" + u.Host + u.Path + path
}

func (s *Server) fromTrustedProxy(r *http.Request) bool {
	if len(s.settings.TrustedProxies) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range s.settings.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func firstValue(v string) string {
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

// originAllowed reports whether a browser Origin may call an MCP route: its CORS policy allows
// it, or it is the gateway's own public origin.
func (s *Server) originAllowed(rt *route, r *http.Request, origin string) bool {
	if rt.cors != nil && rt.cors.allowsOrigin(origin) {
		return true
	}
	pub := s.PublicBase(r)
	return strings.EqualFold(origin, pub.Scheme+"://"+pub.Host)
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
