package signin

import (
	"net/http"
	"strings"
)

// MCPProtocolVersion is the protocol version the metadata names.
const MCPProtocolVersion = "2025-11-25"

// Well-known prefixes (RFC 9728, RFC 8414).
const (
	wellKnownPRM = "/.well-known/oauth-protected-resource"
	wellKnownAS  = "/.well-known/oauth-authorization-server"
	wellKnownOID = "/.well-known/openid-configuration"
)

// mountMetadata registers the metadata documents of every sign-in route, and the root
// authorization-server metadata (issuer = the gateway's origin, resource required at authorize).
// There is no root protected-resource metadata: a client of another route that falls back to it
// would read a resource that is not its own.
func (s *Server) mountMetadata(register func(string, http.Handler)) {
	s.mu.RLock()
	routes := make([]*route, 0, len(s.routes))
	for _, rt := range s.routes {
		routes = append(routes, rt)
	}
	s.mu.RUnlock()
	for _, rt := range routes {
		path := rt.info.Path
		prm := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.servePRM(w, r, rt) })
		as := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveASMetadata(w, r, rt) })
		for _, m := range []string{"GET ", "OPTIONS "} {
			tryRegister(register, m+wellKnownPRM+path, prm)
			tryRegister(register, m+wellKnownAS+path, as)
			tryRegister(register, m+wellKnownOID+path, as)
			tryRegister(register, m+path+wellKnownOID, as)
		}
	}
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveASMetadata(w, r, nil) })
	for _, m := range []string{"GET ", "OPTIONS "} {
		tryRegister(register, m+wellKnownAS, root)
		tryRegister(register, m+wellKnownOID, root)
	}
}

// tryRegister registers unless another endpoint already serves the pattern (a JWT policy's own
// protected-resource metadata, say): the first one keeps it.
func tryRegister(register func(string, http.Handler), pattern string, h http.Handler) {
	defer func() { _ = recover() }()
	register(pattern, h)
}

// servePRM is RFC 9728 protected-resource metadata for a route: the authorization server is the
// route itself (its canonical URL is the issuer).
func (s *Server) servePRM(w http.ResponseWriter, r *http.Request, rt *route) {
	if metadataPreflight(w, r) {
		return
	}
	res := s.resourceOf(r, rt)
	doc := map[string]any{
		"resource":                 res,
		"authorization_servers":    []string{res},
		"bearer_methods_supported": []string{"header"},
		"scopes_supported":         []string{Scope},
		"mcp_protocol_version":     MCPProtocolVersion,
	}
	if rt.info.Summary != "" {
		doc["resource_name"] = rt.info.Summary
	}
	writeMetadata(w, s.urls.Public == nil, doc)
}

// serveASMetadata is RFC 8414 authorization-server metadata: per route (issuer bound to the
// route's canonical URL, authorize endpoint implying the route) or for the whole gateway.
func (s *Server) serveASMetadata(w http.ResponseWriter, r *http.Request, rt *route) {
	if metadataPreflight(w, r) {
		return
	}
	issuer := strings.TrimSuffix(s.urls.URL(r, ""), "/")
	authorize := s.endpoint(r, "/authorize")
	cimd := false
	if rt != nil {
		issuer = s.resourceOf(r, rt)
		authorize = s.endpoint(r, "/authorize"+rt.info.Path)
		cimd = rt.spec.CIMDEnabled
	} else {
		s.mu.RLock()
		for _, x := range s.routes {
			cimd = cimd || x.spec.CIMDEnabled
		}
		s.mu.RUnlock()
	}
	kind := "federated_oidc"
	if rt != nil && rt.idp == nil {
		kind = "local_dev"
	}
	doc := map[string]any{
		"issuer":                                         issuer,
		"authorization_endpoint":                         authorize,
		"token_endpoint":                                 s.endpoint(r, "/token"),
		"registration_endpoint":                          s.endpoint(r, "/register"),
		"revocation_endpoint":                            s.endpoint(r, "/revoke"),
		"scopes_supported":                               []string{Scope},
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":               []string{"S256"},
		"token_endpoint_auth_methods_supported":          authMethods,
		"revocation_endpoint_auth_methods_supported":     authMethods,
		"client_id_metadata_document_supported":          cimd,
		"authorization_response_iss_parameter_supported": true,
		"x-mcpgate-browser-login-kind":                   kind,
	}
	writeMetadata(w, s.urls.Public == nil, doc)
}

// metadataPreflight answers OPTIONS for a well-known document (CORS *: browser-based clients
// read them from any origin).
func metadataPreflight(w http.ResponseWriter, r *http.Request) bool {
	setCORS(w)
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", "GET, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "MCP-Protocol-Version, Content-Type")
		w.Header().Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

// writeMetadata writes a metadata document. Built from the request's Host (no --public-url), it
// must not be cached by shared caches.
func writeMetadata(w http.ResponseWriter, fromRequest bool, doc map[string]any) {
	if fromRequest {
		w.Header().Set("Cache-Control", "private, max-age=300")
		w.Header().Set("Vary", "Host, X-Forwarded-Host, X-Forwarded-Proto")
	} else {
		w.Header().Set("Cache-Control", "public, max-age=300")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = jsonEncode(w, doc)
}

// setCORS allows any origin: these endpoints take no cookie and no ambient credential.
func setCORS(w http.ResponseWriter) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Access-Control-Expose-Headers", "WWW-Authenticate")
}

// serveCORSPreflight answers a preflight of the token, registration and revocation endpoints.
func serveCORSPreflight(w http.ResponseWriter, _ *http.Request) {
	setCORS(w)
	w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
	w.Header().Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}
