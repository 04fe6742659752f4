package signin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/limiter"
	"github.com/mcpgate/mcpgate/internal/requestid"
	"github.com/mcpgate/mcpgate/internal/store"
)

// client is an MCP client as the authorization server knows it.
type client struct {
	ID           string
	Name         string
	RedirectURIs []string
	AuthMethod   string // none, client_secret_basic, client_secret_post
	secretHash   []byte
	// Verified is true when the client's identity comes from a metadata document fetched from
	// its own https URL; false for a self-asserted (DCR) registration.
	Verified bool
}

// Registration limits: anonymous registration cannot fill the store.
const (
	// registerPerAddress registrations per address per registerWindow.
	registerPerAddress = 10
	// registerGlobal registrations per registerWindow from all addresses together.
	registerGlobal = 1000
	registerWindow = time.Hour
	// maxLimiterKeys bounds the addresses the per-address limits remember (least recently
	// counted forgotten first).
	maxLimiterKeys  = 100_000
	maxRedirectURIs = 10
	maxURILen       = 2048
	maxClientName   = 200
)

// registerRequest is the RFC 7591 request body (the fields the gateway reads).
type registerRequest struct {
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope"`
}

// registerResponse is the RFC 7591 response body.
type registerResponse struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientSecretExpiresAt   int64    `json:"client_secret_expires_at"`
	ClientName              string   `json:"client_name,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope"`
}

// authMethods are the token endpoint auth methods implemented (and advertised).
var authMethods = []string{"none", "client_secret_basic", "client_secret_post"}

// serveRegister is RFC 7591 dynamic client registration.
func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	setCORS(w)
	ctx := r.Context()
	addr := clientAddr(r)
	if wait := s.allow("register:"+addr, registerPerAddress, registerWindow); wait > 0 {
		s.tooMany(w, r, wait, "too many client registrations from this address")
		return
	}
	if wait := s.allow("register:*", registerGlobal, registerWindow); wait > 0 {
		s.tooMany(w, r, wait, "too many client registrations; try again later")
		return
	}
	var req registerRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	if err := dec.Decode(&req); err != nil {
		s.writeOAuthError(w, r, oerr(400, "invalid_client_metadata", "the body is not a JSON client metadata document"))
		return
	}
	if oe := validateRegistration(&req); oe != nil {
		s.writeOAuthError(w, r, oe)
		return
	}
	now := s.now()
	c := &store.OAuthClient{ID: newID("dcr:"), Name: req.ClientName, RedirectURIs: req.RedirectURIs, AuthMethod: req.TokenEndpointAuthMethod,
		GrantTypes: req.GrantTypes, RegisteredFrom: addr, CreatedAt: now, ExpiresAt: now.Add(ClientTTL)}
	var secret string
	if c.AuthMethod != "none" {
		secret = randomToken("mcpgate_cs_")
		c.SecretHash = store.HashToken(secret)
	}
	if err := s.store.CreateOAuthClient(ctx, c); err != nil {
		s.writeOAuthError(w, r, &oauthError{Status: 503, Code: "temporarily_unavailable", Description: "the gateway could not store the registration; try again", cause: err})
		return
	}
	s.record(ctx, audit.Event{Event: audit.ClientRegistered, Outcome: audit.OutcomeSuccess, RequestID: requestid.From(ctx),
		Details: map[string]any{"clientId": c.ID, "clientName": c.Name, "redirectHosts": redirectHosts(c.RedirectURIs), "authMethod": c.AuthMethod}}, "client_registered")
	writeJSON(w, http.StatusCreated, registerResponse{ClientID: c.ID, ClientSecret: secret, ClientIDIssuedAt: now.Unix(),
		ClientSecretExpiresAt: c.ExpiresAt.Unix(), ClientName: c.Name, RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes,
		ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: c.AuthMethod, Scope: Scope})
}

// validateRegistration checks and completes a registration request.
func validateRegistration(req *registerRequest) *oauthError {
	if len(req.RedirectURIs) == 0 {
		return oerr(400, "invalid_redirect_uri", "redirect_uris is required")
	}
	if len(req.RedirectURIs) > maxRedirectURIs {
		return oerr(400, "invalid_redirect_uri", fmt.Sprintf("at most %d redirect_uris", maxRedirectURIs))
	}
	for _, u := range req.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return oerr(400, "invalid_redirect_uri", err.Error())
		}
	}
	if len(req.ClientName) > maxClientName {
		return oerr(400, "invalid_client_metadata", fmt.Sprintf("client_name is longer than %d characters", maxClientName))
	}
	if req.TokenEndpointAuthMethod == "" {
		req.TokenEndpointAuthMethod = "client_secret_basic" // RFC 7591 §2
	}
	if !slices.Contains(authMethods, req.TokenEndpointAuthMethod) {
		return oerr(400, "invalid_client_metadata", "token_endpoint_auth_method must be one of "+strings.Join(authMethods, ", "))
	}
	if len(req.GrantTypes) == 0 {
		req.GrantTypes = []string{"authorization_code"}
	}
	for _, g := range req.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			return oerr(400, "invalid_client_metadata", "grant_types may hold authorization_code and refresh_token, not "+g)
		}
	}
	for _, rt := range req.ResponseTypes {
		if rt != "code" {
			return oerr(400, "invalid_client_metadata", "response_types may hold only code")
		}
	}
	for _, sc := range splitScope(req.Scope) {
		if sc != Scope && sc != "offline_access" && sc != "openid" && sc != "profile" && sc != "email" {
			return oerr(400, "invalid_client_metadata", "the only scope is "+Scope+", not "+sc)
		}
	}
	return nil
}

// checkRedirectURI accepts redirect URIs as real clients use them: https; http only to a
// loopback host (any port, RFC 8252 §7.3); a private-use scheme such as cursor:// or vscode://
// (RFC 8252 §7.1). No fragment, no userinfo, and never javascript:, data:, file: or vbscript:.
func checkRedirectURI(raw string) error {
	if len(raw) > maxURILen {
		return fmt.Errorf("redirect URI longer than %d characters", maxURILen)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("redirect URI %q is not an absolute URI", raw)
	}
	if strings.Contains(raw, "#") || u.User != nil {
		return fmt.Errorf("redirect URI %q may carry neither a fragment nor user information", raw)
	}
	switch scheme := strings.ToLower(u.Scheme); scheme {
	case "https":
		if u.Host == "" {
			return fmt.Errorf("redirect URI %q has no host", raw)
		}
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("redirect URI %q: http is allowed only for loopback hosts (127.0.0.1, [::1], localhost)", raw)
		}
	case "javascript", "data", "file", "vbscript", "about", "blob", "ftp", "ws", "wss":
		return fmt.Errorf("redirect URI %q: scheme %s is not allowed", raw, scheme)
	default:
		if !validPrivateScheme(scheme) {
			return fmt.Errorf("redirect URI %q: %s is not a valid scheme", raw, scheme)
		}
	}
	return nil
}

// validPrivateScheme: RFC 3986 scheme syntax.
func validPrivateScheme(s string) bool {
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// redirectMatches compares a requested redirect URI with a registered one exactly, except that a
// loopback http URI matches with any port (RFC 8252 §7.3: native apps pick a free port per run).
func redirectMatches(registered, requested string) bool {
	if registered == requested {
		return true
	}
	ru, err1 := url.Parse(registered)
	qu, err2 := url.Parse(requested)
	if err1 != nil || err2 != nil || ru.Scheme != "http" || qu.Scheme != "http" || !isLoopbackHost(ru.Hostname()) {
		return false
	}
	return ru.Hostname() == qu.Hostname() && ru.EscapedPath() == qu.EscapedPath() && ru.RawQuery == qu.RawQuery
}

// clientFor returns the client a client_id names: a stored DCR registration, or the metadata
// document at an https client_id.
func (s *Server) clientFor(ctx context.Context, rt *route, id string) (*client, *oauthError) {
	if strings.HasPrefix(id, "https://") {
		if rt != nil && !rt.spec.CIMDEnabled {
			return nil, oerr(400, "invalid_client", "client ID metadata documents are not accepted here (gateway.cimdEnabled is false)")
		}
		return s.metadataClient(ctx, rt, id)
	}
	c, err := s.store.GetOAuthClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oerr(401, "invalid_client", "unknown client_id; register the client again")
	}
	if err != nil {
		return nil, &oauthError{Status: 503, Code: "temporarily_unavailable", Description: "the gateway could not read its store; try again", cause: err}
	}
	return &client{ID: c.ID, Name: c.Name, RedirectURIs: c.RedirectURIs, AuthMethod: c.AuthMethod, secretHash: c.SecretHash}, nil
}

// authenticateClient identifies the client of a token or revocation request: client_id in the
// body for public clients, HTTP Basic or client_secret in the body for confidential ones.
func (s *Server) authenticateClient(r *http.Request) (*client, *oauthError) {
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		if id, err1 = url.QueryUnescape(id); err1 == nil {
			secret, err2 = url.QueryUnescape(secret)
		}
		if err1 != nil || err2 != nil {
			return nil, oerr(401, "invalid_client", "malformed HTTP Basic client credentials")
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" {
		return nil, oerr(401, "invalid_client", "client authentication is required (client_id)")
	}
	c, oe := s.clientFor(r.Context(), nil, id)
	if oe != nil {
		if oe.Code == "invalid_client" {
			oe.Status = 401
		}
		return nil, oe
	}
	switch c.AuthMethod {
	case "none", "":
		return c, nil
	case "client_secret_basic", "client_secret_post":
		if secret == "" || subtle.ConstantTimeCompare(store.HashToken(secret), c.secretHash) != 1 {
			return nil, oerr(401, "invalid_client", "client authentication failed")
		}
		return c, nil
	}
	return nil, oerr(401, "invalid_client", "unsupported client authentication method")
}

// cimdCache caches client metadata documents per their HTTP caching headers.
type cimdCache struct {
	mu    sync.Mutex
	items map[string]*cimdEntry
}

type cimdEntry struct {
	c       *client
	expires time.Time
}

// CIMD cache bounds.
const (
	cimdDefaultTTL = 5 * time.Minute
	cimdMaxTTL     = 24 * time.Hour
	cimdMaxEntries = 1000
)

// metadataDoc is a client ID metadata document (the fields the gateway reads).
type metadataDoc struct {
	ClientID                string   `json:"client_id"`
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
}

// metadataClient fetches (or takes from the cache) the metadata document at id.
func (s *Server) metadataClient(ctx context.Context, rt *route, id string) (*client, *oauthError) {
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Path == "" || u.Path == "/" || u.Fragment != "" || u.User != nil {
		return nil, oerr(400, "invalid_client", "an https client_id must be a URL with a path (a client ID metadata document)")
	}
	if !s.cimdHostAllowed(rt, u.Hostname()) {
		return nil, oerr(400, "invalid_client", "client ID metadata documents from "+u.Hostname()+" are not allowed on this gateway (gateway.cimdAllowedHosts)")
	}
	now := s.now()
	s.cimd.mu.Lock()
	if e := s.cimd.items[id]; e != nil && now.Before(e.expires) {
		s.cimd.mu.Unlock()
		return e.c, nil
	}
	s.cimd.mu.Unlock()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := s.fetch.Do(req)
	if err != nil {
		return nil, &oauthError{Status: 400, Code: "invalid_client", Description: "the client ID metadata document could not be fetched: " + safeErr(err), cause: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, oerr(400, "invalid_client", fmt.Sprintf("the client ID metadata document answered HTTP %d", resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, &oauthError{Status: 400, Code: "invalid_client", Description: "the client ID metadata document could not be read", cause: err}
	}
	c, oe := parseMetadataDoc(id, body)
	if oe != nil {
		return nil, oe
	}
	if ttl := cacheTTL(resp.Header); ttl > 0 {
		s.cimd.mu.Lock()
		if len(s.cimd.items) >= cimdMaxEntries {
			for k, e := range s.cimd.items {
				if !now.Before(e.expires) || len(s.cimd.items) >= cimdMaxEntries {
					delete(s.cimd.items, k)
				}
			}
		}
		s.cimd.items[id] = &cimdEntry{c: c, expires: now.Add(ttl)}
		s.cimd.mu.Unlock()
	}
	return c, nil
}

// parseMetadataDoc checks a client ID metadata document fetched from id: it must name itself,
// list between 1 and 10 acceptable redirect URIs, and use no client authentication.
func parseMetadataDoc(id string, body []byte) (*client, *oauthError) {
	var doc metadataDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, oerr(400, "invalid_client", "the client ID metadata document is not JSON")
	}
	if doc.ClientID != id {
		return nil, oerr(400, "invalid_client", "the client ID metadata document does not name itself: its client_id must be exactly the URL it is served from")
	}
	if len(doc.RedirectURIs) == 0 || len(doc.RedirectURIs) > maxRedirectURIs {
		return nil, oerr(400, "invalid_client", "the client ID metadata document must list between 1 and 10 redirect_uris")
	}
	for _, ru := range doc.RedirectURIs {
		if err := checkRedirectURI(ru); err != nil {
			return nil, oerr(400, "invalid_client", "the client ID metadata document: "+err.Error())
		}
	}
	if m := doc.TokenEndpointAuthMethod; m != "" && m != "none" {
		return nil, oerr(400, "invalid_client", "a client identified by a metadata document must use token_endpoint_auth_method none (private_key_jwt is not supported)")
	}
	name := doc.ClientName
	if len(name) > maxClientName {
		name = name[:maxClientName]
	}
	return &client{ID: id, Name: name, RedirectURIs: doc.RedirectURIs, AuthMethod: "none", Verified: true}, nil
}

// cacheTTL reads Cache-Control: no-store and no-cache disable caching; max-age sets it (at most a
// day); without either, cimdDefaultTTL.
func cacheTTL(h http.Header) time.Duration {
	cc := strings.ToLower(h.Get("Cache-Control"))
	if strings.Contains(cc, "no-store") || strings.Contains(cc, "no-cache") {
		return 0
	}
	for _, part := range strings.Split(cc, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "max-age="); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return 0
			}
			return min(time.Duration(n)*time.Second, cimdMaxTTL)
		}
	}
	return cimdDefaultTTL
}

// cimdHostAllowed applies the route's gateway.cimdAllowedHosts (all of them when rt is nil: a
// token request carries no route; the document was checked at authorize).
func (s *Server) cimdHostAllowed(rt *route, host string) bool {
	var lists [][]string
	if rt != nil {
		lists = append(lists, rt.spec.CIMDAllowedHosts)
	} else {
		s.mu.RLock()
		for _, r := range s.routes {
			lists = append(lists, r.spec.CIMDAllowedHosts)
		}
		s.mu.RUnlock()
	}
	for _, allowed := range lists {
		if len(allowed) == 0 {
			return true
		}
		for _, a := range allowed {
			if strings.EqualFold(a, host) {
				return true
			}
			if suffix, ok := strings.CutPrefix(a, "*."); ok && strings.HasSuffix(strings.ToLower(host), "."+strings.ToLower(suffix)) {
				return true
			}
		}
	}
	return false
}

// redirectHosts lists the hosts of redirect URIs (logs and audit never carry whole URIs).
func redirectHosts(uris []string) []string {
	var out []string
	for _, raw := range uris {
		if u, err := url.Parse(raw); err == nil {
			h := u.Host
			if h == "" {
				h = u.Scheme + ":"
			}
			if !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	return out
}

// safeErr shortens an error for a client-facing description.
func safeErr(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

// clientAddr is the direct peer's address (rate limiting keys on it; forwarded headers are not
// trusted here). IPv6 addresses are keyed by their /64.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return host
}

// tooMany answers 429 with Retry-After.
func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(limiter.RetryAfterSeconds(wait)))
	s.writeOAuthError(w, r, oerr(http.StatusTooManyRequests, "too_many_requests", msg))
}

// allow counts one event for key against limit per window and returns 0, or how long until the
// key may act again. The limits are per replica, in memory (limiter.Memory): they bound what one
// address can make one replica do.
func (s *Server) allow(key string, limit int, per time.Duration) time.Duration {
	r, _ := s.limiter.Take(context.Background(), key, limiter.Limit{Requests: limit, Window: per}) // Memory never fails
	if r.Allowed {
		return 0
	}
	return r.RetryAfter
}
