// Package registry serves a read-only MCP Registry (API v0.1, the generic registry API of
// github.com/modelcontextprotocol/registry) that lists the project's MCP routes as remote servers:
// GET {path}/v0.1/servers, …/{serverName}/versions and …/versions/{version} (also "latest"). The
// write routes answer 501 (publish, update, delete) or 403 (status changes). Documents have the
// official registry's v0.1 shape; errors are {"error":"…"} as in its API description. The user-facing
// description is docs/configuration.md#9-registry.
package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/publicurl"
)

// Limits of the API and of the server.json schema.
const (
	// DefaultLimit and MaxLimit bound the limit query parameter of the list.
	DefaultLimit = 30
	MaxLimit     = 100
	// MaxNameLength is the schema's maxLength of a server name; longer names are cut and end
	// with a hash of the whole name so that they stay distinct.
	MaxNameLength = 200
	// MaxDescription is the schema's maxLength of a description and a title, in code points.
	MaxDescription = 100
	// hashLength is how many hex digits of SHA-256 end a shortened name.
	hashLength = 12
)

// SchemaURL is the server.json schema the served documents follow (the official registry's
// model.CurrentSchemaURL of v1.8.9).
const SchemaURL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"

// unknownVersion is served when the route's OpenAPI document has no single version.
const unknownVersion = "0.0.0"

// entry is one MCP route as the registry lists it; its name depends on the request's host.
type entry struct {
	id          string // the operationId made safe for a server name
	title       string
	description string
	version     string
	path        string
}

// Registry lists a loaded project's MCP routes.
type Registry struct {
	urls    *publicurl.URLs
	entries []entry
}

// describer is what a policy on a route tells the registry about the upstream behind it:
// mcp-token-exchange-inbound's displayName and summary.
type describer interface {
	Describe() (displayName, summary string)
}

// New lists the MCP routes of p that a client can reach at one fixed URL (a route with path
// parameters names no single server), in config order. Public URLs come from urls.
func New(p *config.Project, urls *publicurl.URLs) *Registry {
	reg := &Registry{urls: urls}
	seen := map[string]bool{}
	for _, r := range p.Routes {
		if !policy.IsMCPHandler(r.Handler.Export) || parameterized(r) || r.OperationID == "" {
			continue
		}
		id := sanitize(r.OperationID)
		if seen[id] {
			continue // two operationIds that differ only in characters a name cannot hold: the first wins
		}
		seen[id] = true
		var title, summary string
		for _, name := range r.Inbound {
			if pol := p.Policies[name]; pol != nil {
				if d, ok := pol.Handler.Value.(describer); ok {
					title, summary = d.Describe()
					break
				}
			}
		}
		e := entry{id: id, title: clamp(strings.TrimSpace(title)), version: version(r.Version), path: r.Path}
		for _, d := range []string{r.Summary, summary, title, r.OperationID} {
			if d = strings.TrimSpace(d); d != "" {
				e.description = clamp(d)
				break
			}
		}
		reg.entries = append(reg.entries, e)
	}
	return reg
}

// parameterized reports whether r's path has parameters ({id} in open-api mode; :id, a group or
// a wildcard in url-pattern mode).
func parameterized(r *config.Route) bool {
	if r.PathMode == config.PathModeURLPattern {
		return strings.ContainsAny(r.Path, ":(*")
	}
	return strings.ContainsAny(r.Path, "{}")
}

// version is the served version of an OpenAPI info.version: itself when it names one version,
// else "0.0.0" (absent, or a range such as ^1.2, ~1.2, >=1, 1.x, 1.* or *, which the registry
// schema rejects).
func version(v string) string {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 255 || strings.ContainsAny(v, "^~<>=*| ") {
		return unknownVersion
	}
	for part := range strings.SplitSeq(v, ".") {
		if part == "x" || part == "X" {
			return unknownVersion
		}
	}
	return v
}

// clamp cuts s to MaxDescription code points.
func clamp(s string) string {
	if utf8.RuneCountInString(s) <= MaxDescription {
		return s
	}
	n := 0
	for i := range s {
		if n == MaxDescription {
			return s[:i]
		}
		n++
	}
	return s
}

// sanitize keeps the characters a server name allows ([A-Za-z0-9._-]) and turns every other
// into '-'.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, s)
}

// namespace is the reverse-DNS form of host (no port): gateway.example.com →
// com.example.gateway. Characters a namespace cannot hold (the colons of an IPv6 address)
// become '-'.
func namespace(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(strings.ToLower(host), "[].")
	labels := strings.Split(host, ".")
	slices.Reverse(labels)
	ns := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '-'
	}, strings.Join(labels, "."))
	if ns == "" {
		return "localhost"
	}
	return ns
}

// serverName joins namespace and id. A name longer than MaxNameLength is cut, the namespace to
// at most half of it, and ends with '-' and the first hashLength hex digits of SHA-256 of the
// whole name, so that two long names that share a prefix stay distinct.
func serverName(ns, id string) string {
	name := ns + "/" + id
	if len(name) <= MaxNameLength {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	if len(ns) > MaxNameLength/2 {
		ns = ns[:MaxNameLength/2]
	}
	room := MaxNameLength - len(ns) - len("/") - len("-") - hashLength
	if len(id) > room {
		id = id[:room]
	}
	return ns + "/" + id + "-" + hex.EncodeToString(sum[:])[:hashLength]
}

// DefaultSubpath is where the registry lives under the gateway's base path unless the setting
// (--registry-path) moves it.
const DefaultSubpath = "/registry"

// Off is the setting's value that turns the registry off.
const Off = "off"

// Path resolves the registry path setting against the gateway's base path: "" is basePath +
// DefaultSubpath, Off turns the registry off (enabled false), anything else is an absolute path
// ("/" serves /v0.1/servers at the root, as the official registry does). The result has no
// trailing slash ("" for the root).
func Path(setting, basePath string) (path string, enabled bool, err error) {
	switch setting {
	case Off:
		return "", false, nil
	case "":
		setting = strings.TrimSuffix(basePath, "/") + DefaultSubpath
	}
	switch {
	case !strings.HasPrefix(setting, "/"):
		return "", false, fmt.Errorf("must be an absolute path (/…) or %q, got %q", Off, setting)
	case strings.ContainsAny(setting, "{}?# \t") || strings.Contains(setting, "//") || slices.Contains(strings.Split(setting, "/"), ".."),
		slices.Contains(strings.Split(setting, "/"), "."):
		return "", false, fmt.Errorf("must be a plain path without wildcards, query, '//', '.' or '..', got %q", setting)
	case setting == "/.well-known" || strings.HasPrefix(setting, "/.well-known/"):
		return "", false, fmt.Errorf("must not be under /.well-known (the OAuth metadata documents live there), got %q", setting)
	}
	return strings.TrimSuffix(setting, "/"), true, nil
}

// Shadowed lists the paths of p's routes that the registry mounted at prefix would hide: gateway
// endpoints are matched before routes, so a route under {prefix}/v0.1/ is never reached.
func Shadowed(p *config.Project, prefix string) []string {
	var out []string
	for _, r := range p.Routes {
		if strings.HasPrefix(r.Path, prefix+"/v0.1/") {
			out = append(out, r.Path)
		}
	}
	return out
}
