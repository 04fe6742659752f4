package demo

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// The demo's OAuth authorization server: just enough of OAuth 2.1 for the quickstart to show the
// whole connect flow with nothing installed — RFC 8414 metadata, RFC 7591 registration, an
// authorization endpoint with a one-field sign-in page, PKCE S256, RFC 8707 resource, and a token
// endpoint with rotating refresh tokens. It keeps everything in memory and is for local demos only.

const (
	demoScope       = "demo:tools"
	accessTokenTTL  = time.Hour
	codeTTL         = time.Minute
	maxDemoClients  = 1000
	maxDemoSessions = 10000
)

type demoCode struct {
	clientID, redirectURI, challenge, resource, scope, user string
	expires                                                 time.Time
}

type demoGrant struct {
	user, scope, clientID, resource string
	expires                         time.Time // access token expiry
}

// authServer is the in-memory authorization server.
type authServer struct {
	issuer   string
	resource string

	mu      sync.Mutex
	clients map[string][]string // client_id → redirect URIs
	codes   map[string]demoCode
	access  map[string]demoGrant
	refresh map[string]demoGrant
}

func newAuthServer(issuer, resource string) *authServer {
	return &authServer{issuer: issuer, resource: resource, clients: map[string][]string{}, codes: map[string]demoCode{},
		access: map[string]demoGrant{}, refresh: map[string]demoGrant{}}
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

func (a *authServer) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, map[string]any{
			"issuer": a.issuer, "authorization_endpoint": a.issuer + "/authorize", "token_endpoint": a.issuer + "/token",
			"registration_endpoint": a.issuer + "/register", "scopes_supported": []string{demoScope, "offline_access"},
			"response_types_supported": []string{"code"}, "grant_types_supported": []string{"authorization_code", "refresh_token"},
			"code_challenge_methods_supported": []string{"S256"}, "token_endpoint_auth_methods_supported": []string{"none"},
			"authorization_response_iss_parameter_supported": true,
		})
	})
	mux.HandleFunc("POST /register", a.register)
	mux.HandleFunc("GET /authorize", a.authorizePage)
	mux.HandleFunc("POST /authorize", a.authorize)
	mux.HandleFunc("POST /token", a.token)
}

func (a *authServer) register(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RedirectURIs []string `json:"redirect_uris"`
		ClientName   string   `json:"client_name"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || len(req.RedirectURIs) == 0 {
		oauthError(w, 400, "invalid_client_metadata", "redirect_uris is required")
		return
	}
	id := "demo-" + randToken()
	a.mu.Lock()
	if len(a.clients) >= maxDemoClients {
		a.mu.Unlock()
		oauthError(w, 400, "invalid_client_metadata", "too many registered clients")
		return
	}
	a.clients[id] = req.RedirectURIs
	a.mu.Unlock()
	writeJSON(w, 201, map[string]any{"client_id": id, "client_name": req.ClientName, "redirect_uris": req.RedirectURIs,
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"}, "token_endpoint_auth_method": "none"})
}

var signInPage = template.Must(template.New("signin").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Demo sign-in</title>
<style>body{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;margin:0;display:grid;place-items:center;min-height:100vh}
main{background:#fff;padding:2rem;border-radius:12px;box-shadow:0 2px 12px #0002;max-width:24rem;width:90%}
label{display:block;font-weight:600;margin:.5rem 0}input{font:inherit;padding:.5rem;width:100%;box-sizing:border-box;border:1px solid #999;border-radius:6px}
button{font:inherit;margin-top:1rem;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#2b47c9;color:#fff;cursor:pointer}</style></head>
<body><main><h1>Demo upstream sign-in</h1><p>This is the demo MCP server's own authorization server. Any name works.</p>
<form method="post" action="/authorize">{{range $k, $v := .}}<input type="hidden" name="{{$k}}" value="{{$v}}">{{end}}
<label for="user">Your name</label><input id="user" name="user" value="demo-user" autocomplete="username" required>
<button type="submit">Sign in and allow</button></form></main></body></html>`))

// authorizePage shows the sign-in form for a valid authorization request.
func (a *authServer) authorizePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if msg := a.checkAuthorize(q); msg != "" {
		http.Error(w, "invalid authorization request: "+msg, http.StatusBadRequest)
		return
	}
	fields := map[string]string{}
	for _, k := range []string{"client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method", "resource", "scope"} {
		fields[k] = q.Get(k)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:")
	_ = signInPage.Execute(w, fields)
}

func (a *authServer) checkAuthorize(q url.Values) string {
	a.mu.Lock()
	redirects, ok := a.clients[q.Get("client_id")]
	a.mu.Unlock()
	switch {
	case !ok:
		return "unknown client_id"
	case !slices.Contains(redirects, q.Get("redirect_uri")):
		return "redirect_uri is not registered"
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		return "PKCE S256 is required"
	case q.Get("resource") != "" && q.Get("resource") != a.resource:
		return "unknown resource"
	}
	return ""
}

// authorize signs the user in and redirects back with a code.
func (a *authServer) authorize(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f := r.PostForm
	if msg := a.checkAuthorize(f); msg != "" {
		http.Error(w, "invalid authorization request: "+msg, http.StatusBadRequest)
		return
	}
	user := strings.TrimSpace(f.Get("user"))
	if user == "" || len(user) > 64 {
		http.Error(w, "a name of 1 to 64 characters is required", http.StatusBadRequest)
		return
	}
	code := randToken()
	a.mu.Lock()
	a.codes[code] = demoCode{clientID: f.Get("client_id"), redirectURI: f.Get("redirect_uri"), challenge: f.Get("code_challenge"),
		resource: f.Get("resource"), scope: f.Get("scope"), user: user, expires: time.Now().Add(codeTTL)}
	a.mu.Unlock()
	u, _ := url.Parse(f.Get("redirect_uri"))
	q := u.Query()
	q.Set("code", code)
	q.Set("state", f.Get("state"))
	q.Set("iss", a.issuer)
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (a *authServer) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f := r.PostForm
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	var g demoGrant
	switch f.Get("grant_type") {
	case "authorization_code":
		c, ok := a.codes[f.Get("code")]
		delete(a.codes, f.Get("code"))
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		switch {
		case !ok || now.After(c.expires):
			oauthError(w, 400, "invalid_grant", "unknown or expired code")
			return
		case c.clientID != f.Get("client_id") || c.redirectURI != f.Get("redirect_uri"):
			oauthError(w, 400, "invalid_grant", "client_id or redirect_uri does not match")
			return
		case subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(c.challenge)) != 1:
			oauthError(w, 400, "invalid_grant", "PKCE verification failed")
			return
		}
		g = demoGrant{user: c.user, scope: c.scope, clientID: c.clientID, resource: c.resource}
	case "refresh_token":
		old, ok := a.refresh[f.Get("refresh_token")]
		delete(a.refresh, f.Get("refresh_token")) // rotation: each refresh token works once
		if !ok || old.clientID != f.Get("client_id") {
			oauthError(w, 400, "invalid_grant", "unknown refresh token")
			return
		}
		g = old
	default:
		oauthError(w, 400, "unsupported_grant_type", "authorization_code or refresh_token")
		return
	}
	if len(a.access) > maxDemoSessions {
		for k, v := range a.access {
			if now.After(v.expires) {
				delete(a.access, k)
			}
		}
	}
	g.expires = now.Add(accessTokenTTL)
	at, rt := randToken(), randToken()
	a.access[at] = g
	a.refresh[rt] = g
	writeJSON(w, 200, map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(accessTokenTTL / time.Second),
		"refresh_token": rt, "scope": g.scope})
}

// verify is the resource server's token check.
func (a *authServer) verify(_ *http.Request, token string) (*auth.TokenInfo, error) {
	a.mu.Lock()
	g, ok := a.access[token]
	a.mu.Unlock()
	if !ok || time.Now().After(g.expires) || (g.resource != "" && g.resource != a.resource) {
		return nil, auth.ErrInvalidToken
	}
	return &auth.TokenInfo{Scopes: strings.Fields(g.scope), Expiration: g.expires, UserID: g.user}, nil
}

// protectedHandler is the demo MCP server behind the demo AS: every request needs a token the
// demo AS issued for this resource.
func (a *authServer) protectedHandler(s *mcp.Server, mux *http.ServeMux, path string) {
	prm := "/.well-known/oauth-protected-resource" + path
	mux.Handle(prm, auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource: a.resource, AuthorizationServers: []string{a.issuer}, ScopesSupported: []string{demoScope},
		BearerMethodsSupported: []string{"header"}, ResourceName: "mcpgate demo (OAuth)",
	}))
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true})
	mux.Handle(path, auth.RequireBearerToken(func(_ context.Context, tok string, r *http.Request) (*auth.TokenInfo, error) {
		return a.verify(r, tok)
	}, &auth.RequireBearerTokenOptions{ResourceMetadataURL: a.issuer + prm, Scopes: []string{demoScope}})(h))
}
