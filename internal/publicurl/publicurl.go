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
// the direct peer is a trusted proxy (anyone else could forge them to poison redirect URIs).
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
		if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
			scheme = p
		}
		if h := firstValue(r.Header.Get("X-Forwarded-Host")); h != "" {
			host = h
		}
	}
	return &url.URL{Scheme: scheme, Host: host}
}

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
	if len(s.TrustedProxies) == 0 {
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
	for _, p := range s.TrustedProxies {
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
