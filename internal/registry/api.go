package registry

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The documents, mirroring the official registry's pkg/api/v0 types (v1.8.9) for what the gateway
// serves; docs/configuration.md#9-registry shows them.

// ServerList is the answer of the list and versions routes.
type ServerList struct {
	Servers  []ServerResponse `json:"servers"`
	Metadata Metadata         `json:"metadata"`
}

// Metadata is the pagination of a ServerList.
type Metadata struct {
	NextCursor string `json:"nextCursor,omitempty"`
	Count      int    `json:"count"`
}

// ServerResponse is one server version with registry-managed metadata.
type ServerResponse struct {
	Server Server `json:"server"`
	Meta   Meta   `json:"_meta"`
}

// Meta is the registry-managed part of a ServerResponse.
type Meta struct {
	Official *Official `json:"io.modelcontextprotocol.registry/official,omitempty"`
}

// Official is the official registry's extension. The gateway knows no publication or status
// change time, so it sends only the fields it knows: every route is active and has one version.
type Official struct {
	Status   string `json:"status"`
	IsLatest bool   `json:"isLatest"`
}

// Server is a server.json document (SchemaURL) for one MCP route.
type Server struct {
	Schema      string   `json:"$schema"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Title       string   `json:"title,omitempty"`
	Version     string   `json:"version"`
	Remotes     []Remote `json:"remotes"`
}

// Remote is a remote transport: the route's public URL.
type Remote struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// Mount registers the registry's endpoints under prefix ("" serves /v0.1/servers at the root).
func (g *Registry) Mount(register func(pattern string, h http.Handler), prefix string) {
	prefix = strings.TrimSuffix(prefix, "/")
	register(prefix+"/v0.1/servers", http.HandlerFunc(g.serveList))
	register(prefix+"/v0.1/servers/{rest...}", http.HandlerFunc(g.serveServer))
	register(prefix+"/v0.1/publish", http.HandlerFunc(servePublish))
}

// readMethods are what the read routes answer; anything else is 405.
const readMethods = "GET, HEAD, OPTIONS"

// read answers a preflight or a method the read routes do not serve, and reports whether the
// request is a read to serve.
func read(w http.ResponseWriter, r *http.Request) bool {
	setCORS(w)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return true
	case http.MethodOptions:
		w.Header().Set("Access-Control-Allow-Methods", readMethods)
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
		w.Header().Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return false
	}
	w.Header().Set("Allow", readMethods)
	writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here")
	return false
}

// setCORS allows any origin: the registry is public and takes no credential.
func setCORS(w http.ResponseWriter) { w.Header().Set("Access-Control-Allow-Origin", "*") }

// serveList answers GET /v0.1/servers: cursor, limit, search, version, updated_since.
func (g *Registry) serveList(w http.ResponseWriter, r *http.Request) {
	if !read(w, r) {
		return
	}
	q := r.URL.Query()
	limit := DefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, http.StatusBadRequest, "limit must be an integer from 1 to "+strconv.Itoa(MaxLimit)+", got "+strconv.Quote(v))
			return
		}
		limit = n
	}
	// updated_since is checked but filters nothing: every route is as new as the configuration.
	if v := q.Get("updated_since"); v != "" {
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			writeError(w, http.StatusBadRequest, "updated_since must be an RFC 3339 timestamp (e.g. 2025-08-07T13:15:04Z), got "+strconv.Quote(v))
			return
		}
	}
	if v := q.Get("include_deleted"); v != "" {
		if _, err := strconv.ParseBool(v); err != nil {
			writeError(w, http.StatusBadRequest, "include_deleted must be true or false, got "+strconv.Quote(v))
			return
		}
	}
	search := strings.ToLower(strings.TrimSpace(q.Get("search")))
	ver := q.Get("version")
	cursor := q.Get("cursor")
	list := ServerList{Servers: []ServerResponse{}}
	for _, s := range g.servers(r) {
		switch {
		case cursor != "" && s.Server.Name <= cursor:
			continue
		case ver != "" && ver != "latest" && ver != s.Server.Version:
			continue
		case search != "" && !strings.Contains(strings.ToLower(s.Server.Name), search) &&
			!strings.Contains(strings.ToLower(s.Server.Title), search):
			continue
		}
		if len(list.Servers) == limit {
			// One more matches: the next page starts after this page's last name.
			list.Metadata.NextCursor = list.Servers[limit-1].Server.Name
			break
		}
		list.Servers = append(list.Servers, s)
	}
	list.Metadata.Count = len(list.Servers)
	g.writeJSON(w, r, list)
}

// serveServer answers …/v0.1/servers/{serverName}/versions[/{version}] and refuses the write
// routes under it. The server name may come with its slash escaped (%2F) or not: either way it
// is two path segments here, since a name has exactly one slash.
func (g *Registry) serveServer(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(r.PathValue("rest"), "/")
	versions := len(parts) >= 3 && parts[2] == "versions"
	switch {
	case len(parts) == 3 && parts[2] == "status", len(parts) == 5 && versions && parts[4] == "status":
		// …/{serverName}/status and …/versions/{version}/status (PATCH).
		setCORS(w)
		if r.Method != http.MethodPatch {
			w.Header().Set("Allow", http.MethodPatch)
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here")
			return
		}
		writeError(w, http.StatusForbidden, "this registry is read-only: server status cannot be changed")
		return
	case len(parts) == 4 && versions && (r.Method == http.MethodPut || r.Method == http.MethodDelete):
		setCORS(w)
		writeError(w, http.StatusNotImplemented, "this registry is read-only: server versions cannot be updated or deleted")
		return
	case !versions || len(parts) > 4 || parts[0] == "" || parts[1] == "" || (len(parts) == 4 && parts[3] == ""):
		setCORS(w)
		writeError(w, http.StatusNotFound, "Not found")
		return
	}
	if !read(w, r) {
		return
	}
	name := parts[0] + "/" + parts[1]
	servers := g.servers(r)
	i := slices.IndexFunc(servers, func(s ServerResponse) bool { return s.Server.Name == name })
	if i < 0 {
		writeError(w, http.StatusNotFound, "Server not found")
		return
	}
	s := servers[i]
	if len(parts) == 3 {
		g.writeJSON(w, r, ServerList{Servers: []ServerResponse{s}, Metadata: Metadata{Count: 1}})
		return
	}
	if v := parts[3]; v != "latest" && v != s.Server.Version {
		writeError(w, http.StatusNotFound, "Server version not found")
		return
	}
	g.writeJSON(w, r, s)
}

// servePublish answers POST /v0.1/publish: publishing is not implemented.
func servePublish(w http.ResponseWriter, r *http.Request) {
	setCORS(w)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here")
		return
	}
	writeError(w, http.StatusNotImplemented, "this registry is read-only: its servers are the gateway's MCP routes")
}

// servers are the documents of every listed route for r's public host, sorted by name (the
// official registry's order).
func (g *Registry) servers(r *http.Request) []ServerResponse {
	base := g.urls.Base(r)
	ns := namespace(base.Host)
	out := make([]ServerResponse, 0, len(g.entries))
	for _, e := range g.entries {
		out = append(out, ServerResponse{
			Server: Server{
				Schema:      SchemaURL,
				Name:        serverName(ns, e.id),
				Description: e.description,
				Title:       e.title,
				Version:     e.version,
				Remotes:     []Remote{{Type: "streamable-http", URL: g.urls.URL(r, e.path)}},
			},
			Meta: Meta{Official: &Official{Status: "active", IsLatest: true}},
		})
	}
	slices.SortFunc(out, func(a, b ServerResponse) int { return strings.Compare(a.Server.Name, b.Server.Name) })
	return out
}

// writeJSON sends a document. Without a configured public URL the names and URLs in it come from
// the request's Host (and forwarded headers), so shared caches must keep answers apart by them.
func (g *Registry) writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	if g.urls.Derived() {
		w.Header().Set("Vary", "Host, X-Forwarded-Host, X-Forwarded-Proto")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// writeError sends {"error": msg}, the registry API's error shape (not problem+json).
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}
