package upstream

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// AuthServer makes the bench upstream an OAuth-protected MCP server with its own authorization
// server, the smallest one mcpgate's connect flow accepts: RFC 9728 protected-resource metadata
// (/.well-known/oauth-protected-resource/mcp), RFC 8414 metadata, RFC 7591 registration
// (/register), an authorization endpoint that redirects straight back with a code (no sign-in
// page: it is a benchmark, every authorization request is approved), PKCE S256, and a token
// endpoint issuing access tokens of TokenTTL with rotating refresh tokens. /mcp then needs a
// bearer token this server issued and that has not expired (or one of StaticKeys), and answers
// 401 with a resource_metadata challenge otherwise. GET /bench/stats reports what it did.
//
// Everything is kept in memory; it serves one benchmark run.
type AuthServer struct {
	// Issuer is the server's base URL (http://127.0.0.1:port): the issuer, and the resource is
	// Issuer + "/mcp".
	Issuer string
	// TokenTTL is the access tokens' lifetime (expires_in); zero means 24 hours.
	TokenTTL time.Duration
	// StaticKeys are bearer tokens /mcp accepts besides issued ones (a static upstream API key).
	StaticKeys []string

	mu      sync.RWMutex
	clients map[string][]string // client_id → redirect URIs
	codes   map[string]authCode
	refresh map[string]string    // refresh token → client_id
	access  map[string]time.Time // access token → expiry

	registrations, authorizations, codeGrants, refreshGrants, badGrants, refused atomic.Int64
}

// Stats is what GET /bench/stats answers: counts since the server started.
type Stats struct {
	Registrations  int64 `json:"registrations"`  // POST /register
	Authorizations int64 `json:"authorizations"` // codes issued by /authorize
	CodeGrants     int64 `json:"codeGrants"`     // authorization_code grants answered with tokens
	RefreshGrants  int64 `json:"refreshGrants"`  // refresh_token grants answered with tokens
	BadGrants      int64 `json:"badGrants"`      // token requests refused (invalid_grant and the like)
	Refused        int64 `json:"refused"`        // /mcp requests answered 401
	LiveTokens     int   `json:"liveTokens"`     // access tokens not yet expired
}

// StatsPath is where the AuthServer reports its Stats.
const StatsPath = "/bench/stats"

// ResourcePath is the protected MCP endpoint.
const ResourcePath = "/mcp"

// DefaultTokenTTL is the access tokens' lifetime when TokenTTL is zero.
const DefaultTokenTTL = 24 * time.Hour

const benchScope = "bench:tools"

type authCode struct {
	clientID, redirectURI, challenge string
	expires                          time.Time
}

func (a *AuthServer) init() {
	a.mu.Lock()
	if a.clients == nil {
		a.clients, a.codes, a.refresh, a.access = map[string][]string{}, map[string]authCode{}, map[string]string{}, map[string]time.Time{}
	}
	a.mu.Unlock()
}

func (a *AuthServer) ttl() time.Duration {
	if a.TokenTTL <= 0 {
		return DefaultTokenTTL
	}
	return a.TokenTTL
}

// Allow reports whether r carries a bearer token /mcp accepts.
func (a *AuthServer) Allow(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return false
	}
	for _, k := range a.StaticKeys {
		if subtle.ConstantTimeCompare([]byte(k), []byte(tok)) == 1 {
			return true
		}
	}
	a.mu.RLock()
	exp, found := a.access[tok]
	a.mu.RUnlock()
	return found && time.Now().Before(exp)
}

// Challenge answers 401 with the RFC 9728 resource_metadata challenge.
func (a *AuthServer) Challenge(w http.ResponseWriter, r *http.Request) {
	a.refused.Add(1)
	v := `Bearer resource_metadata="` + a.Issuer + `/.well-known/oauth-protected-resource` + ResourcePath + `", scope="` + benchScope + `"`
	if r.Header.Get("Authorization") != "" {
		v += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", v)
	http.Error(w, "unauthorized", http.StatusUnauthorized)
}

// ServeHTTP serves the metadata documents, the authorization server's endpoints and the stats.
func (a *AuthServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.init()
	switch {
	case r.Method == http.MethodGet && (r.URL.Path == "/.well-known/oauth-protected-resource"+ResourcePath || r.URL.Path == "/.well-known/oauth-protected-resource"):
		writeJSON(w, http.StatusOK, map[string]any{"resource": a.Issuer + ResourcePath, "authorization_servers": []string{a.Issuer},
			"bearer_methods_supported": []string{"header"}, "scopes_supported": []string{benchScope}, "resource_name": "mcpgate bench upstream"})
	case r.Method == http.MethodGet && r.URL.Path == "/.well-known/oauth-authorization-server":
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer": a.Issuer, "authorization_endpoint": a.Issuer + "/authorize", "token_endpoint": a.Issuer + "/token",
			"registration_endpoint": a.Issuer + "/register", "scopes_supported": []string{benchScope},
			"response_types_supported": []string{"code"}, "grant_types_supported": []string{"authorization_code", "refresh_token"},
			"code_challenge_methods_supported": []string{"S256"}, "token_endpoint_auth_methods_supported": []string{"none"},
			"authorization_response_iss_parameter_supported": true,
		})
	case r.Method == http.MethodPost && r.URL.Path == "/register":
		a.register(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/authorize":
		a.authorize(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/token":
		a.token(w, r)
	case r.Method == http.MethodGet && r.URL.Path == StatsPath:
		writeJSON(w, http.StatusOK, a.Stats())
	default:
		http.NotFound(w, r)
	}
}

// Stats returns the counts so far.
func (a *AuthServer) Stats() Stats {
	a.mu.RLock()
	live := 0
	now := time.Now()
	for _, exp := range a.access {
		if now.Before(exp) {
			live++
		}
	}
	a.mu.RUnlock()
	return Stats{Registrations: a.registrations.Load(), Authorizations: a.authorizations.Load(), CodeGrants: a.codeGrants.Load(),
		RefreshGrants: a.refreshGrants.Load(), BadGrants: a.badGrants.Load(), Refused: a.refused.Load(), LiveTokens: live}
}

func (a *AuthServer) register(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RedirectURIs []string `json:"redirect_uris"`
		ClientName   string   `json:"client_name"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || len(req.RedirectURIs) == 0 {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "redirect_uris is required")
		return
	}
	id := "bench-" + randToken()
	a.mu.Lock()
	a.clients[id] = req.RedirectURIs
	a.mu.Unlock()
	a.registrations.Add(1)
	writeJSON(w, http.StatusCreated, map[string]any{"client_id": id, "client_name": req.ClientName, "redirect_uris": req.RedirectURIs,
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"}, "token_endpoint_auth_method": "none"})
}

// authorize approves every valid request at once: a code, and back to the client.
func (a *AuthServer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	a.mu.RLock()
	redirects, ok := a.clients[q.Get("client_id")]
	a.mu.RUnlock()
	switch {
	case !ok:
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	case !slices.Contains(redirects, q.Get("redirect_uri")):
		http.Error(w, "redirect_uri is not registered", http.StatusBadRequest)
		return
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		http.Error(w, "PKCE S256 is required", http.StatusBadRequest)
		return
	case q.Get("resource") != "" && q.Get("resource") != a.Issuer+ResourcePath:
		http.Error(w, "unknown resource", http.StatusBadRequest)
		return
	}
	code := randToken()
	a.mu.Lock()
	a.codes[code] = authCode{clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"), expires: time.Now().Add(time.Minute)}
	a.mu.Unlock()
	a.authorizations.Add(1)
	u, _ := url.Parse(q.Get("redirect_uri"))
	rq := u.Query()
	rq.Set("code", code)
	rq.Set("state", q.Get("state"))
	rq.Set("iss", a.Issuer)
	u.RawQuery = rq.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (a *AuthServer) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f := r.PostForm
	now := time.Now()
	a.mu.Lock()
	var clientID string
	switch f.Get("grant_type") {
	case "authorization_code":
		c, ok := a.codes[f.Get("code")]
		delete(a.codes, f.Get("code"))
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		if !ok || now.After(c.expires) || c.clientID != f.Get("client_id") || c.redirectURI != f.Get("redirect_uri") ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
			a.mu.Unlock()
			a.badGrants.Add(1)
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown or expired code, or client, redirect_uri or PKCE verifier does not match")
			return
		}
		clientID = c.clientID
		a.codeGrants.Add(1)
	case "refresh_token":
		owner, ok := a.refresh[f.Get("refresh_token")]
		delete(a.refresh, f.Get("refresh_token")) // rotation: each refresh token works once
		if !ok || owner != f.Get("client_id") {
			a.mu.Unlock()
			a.badGrants.Add(1)
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown refresh token")
			return
		}
		clientID = owner
		a.refreshGrants.Add(1)
	default:
		a.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "authorization_code or refresh_token")
		return
	}
	if len(a.access) > 1000 {
		for k, exp := range a.access {
			if now.After(exp) {
				delete(a.access, k)
			}
		}
	}
	ttl := a.ttl()
	at, rt := randToken(), randToken()
	a.access[at] = now.Add(ttl)
	a.refresh[rt] = clientID
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": json.Number(seconds(ttl)),
		"refresh_token": rt, "scope": benchScope})
}

// seconds formats d in seconds, as an integer when it is one.
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10)
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}

func randToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}
