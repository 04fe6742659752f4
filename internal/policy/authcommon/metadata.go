package authcommon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/publicurl"
)

// WellKnownPRM is the RFC 9728 well-known prefix; a resource's metadata lives at this prefix
// followed by the resource's path.
const WellKnownPRM = "/.well-known/oauth-protected-resource"

// ResourceMetadata is the RFC 9728 protected-resource metadata the gateway serves for a route.
type ResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
}

// MetadataPath is where the metadata of the resource at path is served (RFC 9728 §3.1 path
// insertion; a resource at the root has its metadata at the bare well-known path).
func MetadataPath(path string) string {
	if path == "/" || path == "" {
		return WellKnownPRM
	}
	return WellKnownPRM + path
}

// MetadataURL is the public URL of the metadata of the resource r addresses: the value of
// resource_metadata in the route's WWW-Authenticate challenges.
func MetadataURL(urls *publicurl.URLs, r *http.Request) string {
	return urls.URL(r, MetadataPath(r.URL.Path))
}

// MetadataServer answers metadata requests for the routes of one policy.
type MetadataServer struct {
	URLs *publicurl.URLs
	// AuthorizationServers are the issuers MCP clients should get tokens from.
	AuthorizationServers []string
	Scopes               []string
}

// Register adds GET and OPTIONS endpoints serving the metadata of each route to the gateway. A
// route path in url-pattern syntax (":id", "*", "(…)") has no single well-known path and is
// skipped; so is a route another policy already serves metadata for (it keeps the first
// policy's document). It returns the route paths it skipped, for the caller to log.
func (m *MetadataServer) Register(register func(pattern string, h http.Handler), routes []*policy.RouteInfo) (skipped []string) {
	seen := map[string]bool{}
	for _, rt := range routes {
		if rt == nil {
			continue
		}
		if strings.ContainsAny(rt.Path, ":*()") {
			skipped = append(skipped, rt.Path)
			continue
		}
		p := MetadataPath(rt.Path)
		if seen[p] {
			continue
		}
		seen[p] = true
		h := m.handler(rt)
		for _, method := range []string{http.MethodGet, http.MethodOptions} {
			if perr := tryRegister(register, method+" "+p, h); perr != nil {
				skipped = append(skipped, rt.Path)
				break
			}
		}
	}
	return skipped
}

// tryRegister turns http.ServeMux's panic on a conflicting pattern into an error: two policies
// may protect the same route, and only one can serve its metadata.
func tryRegister(register func(string, http.Handler), pattern string, h http.Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("registering %s: %v", pattern, v)
		}
	}()
	register(pattern, h)
	return nil
}

func (m *MetadataServer) handler(rt *policy.RouteInfo) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Browser-based MCP clients fetch metadata cross-origin; the document is public. The
		// gateway's response recorder strips Access-Control-* headers from anything but a CORS
		// route, so write past it.
		w = unwrap(w)
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Mcp-Protocol-Version, Content-Type")
			h.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		// The resource is the path the client asked about: for a route with {params} that is the
		// concrete MCP endpoint, not the template.
		// A resource at the root is the bare origin (RFC 8707 canonical form, no trailing slash).
		path := strings.TrimPrefix(r.URL.Path, WellKnownPRM)
		doc := ResourceMetadata{
			Resource:               m.URLs.URL(r, path),
			AuthorizationServers:   m.AuthorizationServers,
			ScopesSupported:        m.Scopes,
			BearerMethodsSupported: []string{"header"},
			ResourceName:           rt.Summary,
		}
		body, err := json.Marshal(doc)
		if err != nil {
			http.Error(w, "encoding metadata", http.StatusInternalServerError)
			return
		}
		h.Set("Content-Type", "application/json")
		if m.URLs.Derived() {
			// The document names a URL built from this request's Host (and forwarded headers from
			// trusted proxies): a shared cache must not hand it to anyone else.
			h.Set("Cache-Control", "private, max-age=300")
			h.Set("Vary", "Host, X-Forwarded-Host, X-Forwarded-Proto")
		} else {
			h.Set("Cache-Control", "public, max-age=300")
		}
		_, _ = w.Write(body)
	})
}

// unwrap returns the innermost ResponseWriter.
func unwrap(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}
