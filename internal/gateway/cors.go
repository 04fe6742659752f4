package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/mcpgate/mcpgate/internal/config"
)

// corsPolicy is a resolved CORS policy; nil stands for "none".
type corsPolicy struct {
	anything       bool
	origins        []string // exact origins, "*" or wildcard subdomain patterns "https://*.example.com"
	methods        string
	headers        string
	expose         string
	maxAge         int
	allowCreds     bool
	allowAnyOrigin bool
}

// mcpExposedHeaders are the response headers an MCP client in a browser needs to read.
const mcpExposedHeaders = "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate, X-Request-Id"

func resolveCORS(name string, named map[string]*config.CORSPolicy) (*corsPolicy, error) {
	switch name {
	case "", "none":
		return nil, nil
	case "anything-goes":
		return &corsPolicy{anything: true, allowAnyOrigin: true, expose: mcpExposedHeaders, allowCreds: true, maxAge: 600}, nil
	}
	c, ok := named[name]
	if !ok {
		return nil, fmt.Errorf("unknown CORS policy %q", name)
	}
	cp := &corsPolicy{
		origins:    c.AllowedOrigins,
		methods:    strings.Join(c.AllowedMethods, ", "),
		headers:    strings.Join(c.AllowedHeaders, ", "),
		expose:     strings.Join(c.ExposeHeaders, ", "),
		maxAge:     c.MaxAge,
		allowCreds: c.AllowCredentials,
	}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			cp.allowAnyOrigin = true
		}
	}
	return cp, nil
}

func (cp *corsPolicy) allowsOrigin(origin string) bool {
	if cp.allowAnyOrigin {
		return true
	}
	for _, o := range cp.origins {
		if strings.EqualFold(o, origin) {
			return true
		}
		// https://*.example.com matches https://a.example.com (one or more labels).
		if i := strings.Index(o, "*."); i >= 0 {
			prefix, suffix := o[:i], o[i+1:]
			if strings.HasPrefix(origin, prefix) && strings.HasSuffix(origin, suffix) && len(origin) > len(prefix)+len(suffix) {
				return true
			}
		}
	}
	return false
}

func (cp *corsPolicy) setResponseHeaders(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if cp.allowCreds {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if cp.expose != "" {
		h.Set("Access-Control-Expose-Headers", cp.expose)
	}
}

// preflight answers an OPTIONS preflight for a route with a CORS policy.
func (cp *corsPolicy) preflight(w *recorder, r *http.Request, rt *route) {
	origin := r.Header.Get("Origin")
	if origin == "" || !cp.allowsOrigin(origin) {
		w.cors = nil // nothing to grant
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h := w.Header()
	methods := cp.methods
	if methods == "" || cp.anything {
		methods = rt.allow
	}
	h.Set("Access-Control-Allow-Methods", methods)
	headers := cp.headers
	if headers == "" || cp.anything {
		headers = r.Header.Get("Access-Control-Request-Headers")
	}
	if headers != "" {
		h.Set("Access-Control-Allow-Headers", headers)
	}
	if cp.maxAge > 0 {
		h.Set("Access-Control-Max-Age", strconv.Itoa(cp.maxAge))
	}
	// Preflight headers are set after the recorder's CORS pass would strip them, so write the
	// status to the inner writer directly.
	cp.setResponseHeaders(h, origin)
	w.wroteHeader, w.status = true, http.StatusNoContent
	w.ResponseWriter.WriteHeader(http.StatusNoContent)
}
