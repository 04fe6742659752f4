package signin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/requestid"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Token prefixes: opaque to clients, recognisable in a leaked log or a secret scanner.
const (
	accessPrefix  = "mcpgate_at_"
	refreshPrefix = "mcpgate_rt_"
	accessRecord  = "signin-access-token"
)

// accessClaims is what an access token carries, sealed with the key ring: validating one needs no
// database round trip. The grant's revocation is checked through grantCache.
type accessClaims struct {
	Grant       string          `json:"g"`
	Subject     subject.Subject `json:"s"`
	Client      string          `json:"c"`
	Resource    string          `json:"r"`
	OperationID string          `json:"o"`
	Expires     int64           `json:"x"` // unix seconds
	UserData    json.RawMessage `json:"d,omitempty"`
}

// sealAccess makes an access token.
func (s *Server) sealAccess(c accessClaims) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	v, err := s.ring.Seal(vault.Secret(b), accessRecord)
	if err != nil {
		return "", err
	}
	return accessPrefix + v, nil
}

// errBadToken is an access token the gateway did not issue, or cannot read any more.
var errBadToken = errors.New("not an access token issued by this gateway")

// openAccess reads an access token; it does not check expiry or the grant.
func (s *Server) openAccess(tok string) (*accessClaims, error) {
	raw, ok := strings.CutPrefix(tok, accessPrefix)
	if !ok {
		return nil, errBadToken
	}
	pt, err := s.ring.Open(raw, accessRecord)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadToken, err)
	}
	var c accessClaims
	if err := json.Unmarshal([]byte(pt.Reveal()), &c); err != nil || c.Grant == "" {
		return nil, errBadToken
	}
	return &c, nil
}

// randomToken returns prefix + 32 random bytes, base64url.
func randomToken(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// nextRefresh derives the refresh token that replaces the one whose hash is prevHash. It is a MAC
// under a key only the gateway has, so every replica derives the same successor: two concurrent
// refreshes with one token both get the same new token, and no plaintext refresh token is ever
// stored.
func (s *Server) nextRefresh(grantID string, prevHash []byte) string {
	m := hmac.New(sha256.New, s.rotateKey)
	m.Write([]byte("mcpgate/signin/refresh/v1\x00" + grantID + "\x00"))
	m.Write(prevHash)
	return refreshPrefix + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// grantState is what a replica knows of a grant: whether it may still be used.
type grantState struct {
	revoked   bool
	expires   time.Time
	checkedAt time.Time
}

// grantCache remembers grant states so that validating an access token reads the store at most
// once per grant per RevocationCheck.
type grantCache struct {
	mu    sync.Mutex
	items map[string]*grantState
	sf    singleflight.Group
}

// maxCachedGrants bounds the cache; past it, the oldest-checked half is dropped.
const maxCachedGrants = 100_000

// grantUsable reports whether the grant still allows access: not revoked, not expired.
func (s *Server) grantUsable(ctx context.Context, id string) (bool, error) {
	now := s.now()
	s.grants.mu.Lock()
	st := s.grants.items[id]
	s.grants.mu.Unlock()
	if st != nil && now.Sub(st.checkedAt) < RevocationCheck {
		return !st.revoked && now.Before(st.expires), nil
	}
	v, err, _ := s.grants.sf.Do(id, func() (any, error) {
		g, err := s.store.GetOAuthGrant(context.WithoutCancel(ctx), id)
		if errors.Is(err, store.ErrNotFound) {
			return &grantState{revoked: true, checkedAt: s.now()}, nil
		}
		if err != nil {
			return nil, err
		}
		return &grantState{revoked: !g.RevokedAt.IsZero(), expires: g.ExpiresAt, checkedAt: s.now()}, nil
	})
	if err != nil {
		return false, err
	}
	st = v.(*grantState)
	s.grants.mu.Lock()
	if len(s.grants.items) >= maxCachedGrants {
		for k, e := range s.grants.items {
			if now.Sub(e.checkedAt) >= RevocationCheck {
				delete(s.grants.items, k)
			}
		}
	}
	s.grants.items[id] = st
	s.grants.mu.Unlock()
	return !st.revoked && now.Before(st.expires), nil
}

// forgetGrant drops the cached state after this replica revoked the grant.
func (s *Server) forgetGrant(id string) {
	s.grants.mu.Lock()
	delete(s.grants.items, id)
	s.grants.mu.Unlock()
}

// tokenResponse is the token endpoint's success body.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
	Resource     string `json:"resource,omitempty"`
}

// oauthError is an RFC 6749 §5.2 error.
type oauthError struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	cause       error
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func oerr(status int, code, desc string) *oauthError {
	return &oauthError{Status: status, Code: code, Description: desc}
}

// writeOAuthError answers an OAuth endpoint's error (JSON, no-store).
func (s *Server) writeOAuthError(w http.ResponseWriter, r *http.Request, e *oauthError) {
	if e.Status == 0 {
		e.Status = http.StatusBadRequest
	}
	lvl := s.log.Debug
	if e.Status >= 500 {
		lvl = s.log.Error
	}
	lvl("oauth request refused", "requestId", requestid.From(r.Context()), "path", r.URL.Path, "error", e.Code, "description", e.Description, "cause", e.cause)
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="mcpgate"`)
	}
	writeJSON(w, e.Status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// serveToken is the token endpoint: authorization_code and refresh_token grants.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	setCORS(w)
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.writeOAuthError(w, r, oerr(400, "invalid_request", "the request body is not a form"))
		return
	}
	var (
		resp *tokenResponse
		oe   *oauthError
	)
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "authorization_code":
		resp, oe = s.codeGrant(r)
	case "refresh_token":
		resp, oe = s.refreshGrant(r)
	case "":
		oe = oerr(400, "invalid_request", "grant_type is required")
	default:
		oe = oerr(400, "unsupported_grant_type", "grant_type "+gt+" is not supported; use authorization_code or refresh_token")
	}
	if oe != nil {
		s.writeOAuthError(w, r, oe)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// codeRecord is the payload of an issued authorization code.
type codeRecord struct {
	Request *authRequest `json:"req"`
}

// codeGrant redeems an authorization code: single use, bound to the client, redirect URI, PKCE
// verifier and resource.
func (s *Server) codeGrant(r *http.Request) (*tokenResponse, *oauthError) {
	ctx := r.Context()
	code := r.PostForm.Get("code")
	if code == "" {
		return nil, oerr(400, "invalid_request", "code is required")
	}
	verifier := r.PostForm.Get("code_verifier")
	if verifier == "" {
		return nil, oerr(400, "invalid_request", "code_verifier is required (PKCE)")
	}
	cl, oe := s.authenticateClient(r)
	if oe != nil {
		return nil, oe
	}
	rec, err := s.store.ConsumeSignInRequest(ctx, store.HashToken(code), kindCode)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrAlreadyUsed) {
		return nil, oerr(400, "invalid_grant", "the authorization code is unknown, expired or already used")
	}
	if err != nil {
		return nil, &oauthError{Status: 503, Code: "temporarily_unavailable", Description: "the gateway could not read its store; try again", cause: err}
	}
	if !s.now().Before(rec.ExpiresAt) {
		return nil, oerr(400, "invalid_grant", "the authorization code expired (codes live 60 seconds)")
	}
	var cr codeRecord
	if err := s.openRecord(rec, store.HashToken(code), &cr); err != nil || cr.Request == nil {
		return nil, &oauthError{Status: 400, Code: "invalid_grant", Description: "the authorization code cannot be read", cause: err}
	}
	req := cr.Request
	switch {
	case req.ClientID != cl.ID:
		return nil, oerr(400, "invalid_grant", "the authorization code was issued to another client")
	case r.PostForm.Get("redirect_uri") != req.RedirectURI:
		return nil, oerr(400, "invalid_grant", "redirect_uri does not match the authorization request")
	case subtle.ConstantTimeCompare([]byte(s256(verifier)), []byte(req.Challenge)) != 1:
		return nil, oerr(400, "invalid_grant", "code_verifier does not match the code_challenge (PKCE)")
	}
	if res := r.PostForm.Get("resource"); res != "" && res != req.Resource {
		return nil, oerr(400, "invalid_target", "resource does not match the authorization request")
	}
	rt := s.routeByPath(req.RoutePath)
	if rt == nil {
		return nil, oerr(400, "invalid_grant", "the route of this authorization no longer uses sign-in")
	}
	now := s.now()
	refresh := randomToken(refreshPrefix)
	g := &store.OAuthGrant{
		ID: newID("grant_"), Subject: req.Subject.String(), ClientID: cl.ID, Resource: req.Resource, OperationID: req.OperationID,
		Scopes: []string{Scope}, UserData: req.UserData, IDToken: vault.Secret(req.IDToken), RefreshHash: store.HashToken(refresh),
		CreatedAt: now, ExpiresAt: now.Add(rt.spec.RefreshTokenTTL),
	}
	if err := s.store.CreateOAuthGrant(ctx, g); err != nil {
		return nil, &oauthError{Status: 503, Code: "temporarily_unavailable", Description: "the gateway could not store the grant; try again", cause: err}
	}
	resp, err := s.issue(g, rt, refresh)
	if err != nil {
		return nil, &oauthError{Status: 500, Code: "server_error", Description: "the gateway could not issue a token", cause: err}
	}
	s.record(ctx, audit.Event{Event: audit.DownstreamTokenIssued, Outcome: audit.OutcomeSuccess, SubjectID: g.Subject,
		OperationID: g.OperationID, RequestID: requestid.From(ctx), Details: map[string]any{"clientId": cl.ID, "grantType": "authorization_code"}}, "token_issued")
	return resp, nil
}

// issue makes the access token of grant g (capped by the grant's lifetime) and the response.
func (s *Server) issue(g *store.OAuthGrant, rt *route, refresh string) (*tokenResponse, error) {
	now := s.now()
	exp := now.Add(rt.spec.AccessTokenTTL)
	if g.ExpiresAt.Before(exp) {
		exp = g.ExpiresAt
	}
	at, err := s.sealAccess(accessClaims{Grant: g.ID, Subject: subject.Subject(g.Subject), Client: g.ClientID, Resource: g.Resource,
		OperationID: g.OperationID, Expires: exp.Unix(), UserData: g.UserData})
	if err != nil {
		return nil, err
	}
	return &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(exp.Sub(now).Round(time.Second) / time.Second),
		RefreshToken: refresh, Scope: Scope, Resource: g.Resource}, nil
}

// refreshGrant rotates a refresh token, at most once per RefreshGrace. The token just replaced
// is still accepted for RefreshGrace (and answered with the same new token); after that,
// presenting it is a replay and revokes the whole grant.
func (s *Server) refreshGrant(r *http.Request) (*tokenResponse, *oauthError) {
	ctx := r.Context()
	presented := r.PostForm.Get("refresh_token")
	if presented == "" {
		return nil, oerr(400, "invalid_request", "refresh_token is required")
	}
	cl, oe := s.authenticateClient(r)
	if oe != nil {
		return nil, oe
	}
	hash := store.HashToken(presented)
	g, err := s.store.FindOAuthGrantByRefresh(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oerr(400, "invalid_grant", "the refresh token is unknown or was replaced")
	}
	if err != nil {
		return nil, &oauthError{Status: 503, Code: "temporarily_unavailable", Description: "the gateway could not read its store; try again", cause: err}
	}
	now := s.now()
	switch {
	case g.ClientID != cl.ID:
		return nil, oerr(400, "invalid_grant", "the refresh token was issued to another client")
	case !g.RevokedAt.IsZero():
		return nil, oerr(400, "invalid_grant", "the grant was revoked; sign in again")
	case !now.Before(g.ExpiresAt):
		return nil, oerr(400, "invalid_grant", "the grant expired; sign in again")
	}
	if res := r.PostForm.Get("resource"); res != "" && res != g.Resource {
		return nil, oerr(400, "invalid_target", "resource does not match the grant")
	}
	rt := s.routeByPath(routePathOf(g.Resource))
	if rt == nil {
		return nil, oerr(400, "invalid_grant", "the route of this grant no longer uses sign-in")
	}
	var next string
	switch {
	case subtle.ConstantTimeCompare(hash, g.RefreshHash) == 1 && !g.RotatedAt.IsZero() && now.Sub(g.RotatedAt) <= RefreshGrace:
		// Rotated moments ago: keep the current token rather than rotating again, so a client that
		// refreshes in bursts (mcp-remote refreshes on every request once a token nears its end)
		// never has more than the current token and the one it replaced in flight.
		next = presented
	case subtle.ConstantTimeCompare(hash, g.RefreshHash) == 1:
		next = s.nextRefresh(g.ID, hash)
		ng, err := s.store.RotateOAuthGrant(ctx, g.ID, g.Version, store.HashToken(next))
		if errors.Is(err, store.ErrConflict) {
			// A concurrent refresh with the same token rotated first; it derived the same successor.
			if ng, err = s.store.GetOAuthGrant(ctx, g.ID); err == nil && subtle.ConstantTimeCompare(store.HashToken(next), ng.RefreshHash) != 1 {
				return nil, oerr(400, "invalid_grant", "the refresh token was replaced")
			}
		}
		if err != nil {
			return nil, &oauthError{Status: 503, Code: "temporarily_unavailable", Description: "the gateway could not store the rotated token; try again", cause: err}
		}
		g = ng
	case now.Sub(g.RotatedAt) <= RefreshGrace:
		// The token rotated moments ago by a concurrent refresh: answer with its successor.
		next = s.nextRefresh(g.ID, hash)
		if subtle.ConstantTimeCompare(store.HashToken(next), g.RefreshHash) != 1 {
			return nil, oerr(400, "invalid_grant", "the refresh token was replaced")
		}
	default:
		// A replaced token presented again after the grace window: someone else holds it.
		if err := s.store.RevokeOAuthGrant(ctx, g.ID, "refresh_token_replayed"); err != nil {
			return nil, &oauthError{Status: 503, Code: "temporarily_unavailable", Description: "try again", cause: err}
		}
		s.forgetGrant(g.ID)
		s.record(ctx, audit.Event{Event: audit.DownstreamTokenRevoked, Outcome: audit.OutcomeDenied, ReasonCode: "refresh_token_replayed",
			SubjectID: g.Subject, OperationID: g.OperationID, RequestID: requestid.From(ctx), Details: map[string]any{"clientId": g.ClientID}}, "token_revoked")
		return nil, oerr(400, "invalid_grant", "the refresh token was already used; the grant is revoked, sign in again")
	}
	resp, err := s.issue(g, rt, next)
	if err != nil {
		return nil, &oauthError{Status: 500, Code: "server_error", Description: "the gateway could not issue a token", cause: err}
	}
	s.record(ctx, audit.Event{Event: audit.DownstreamTokenRefresh, Outcome: audit.OutcomeSuccess, SubjectID: g.Subject,
		OperationID: g.OperationID, RequestID: requestid.From(ctx), Details: map[string]any{"clientId": g.ClientID}}, "token_refreshed")
	return resp, nil
}

// serveRevoke is RFC 7009 revocation: a refresh token revokes its grant, an access token the grant
// it belongs to. Always 200 with an empty body, whatever the token was.
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	setCORS(w)
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.writeOAuthError(w, r, oerr(400, "invalid_request", "the request body is not a form"))
		return
	}
	tok := r.PostForm.Get("token")
	cl, oe := s.authenticateClient(r)
	if oe != nil && oe.Status == http.StatusUnauthorized {
		s.writeOAuthError(w, r, oe)
		return
	}
	ctx := r.Context()
	var g *store.OAuthGrant
	if c, err := s.openAccess(tok); err == nil {
		g, _ = s.store.GetOAuthGrant(ctx, c.Grant)
	} else if strings.HasPrefix(tok, refreshPrefix) {
		g, _ = s.store.FindOAuthGrantByRefresh(ctx, store.HashToken(tok))
	}
	if g != nil && cl != nil && g.ClientID == cl.ID && g.RevokedAt.IsZero() {
		if err := s.store.RevokeOAuthGrant(ctx, g.ID, "client_revoked"); err != nil {
			s.log.Error("revoking a grant", "requestId", requestid.From(ctx), "error", err)
		} else {
			s.forgetGrant(g.ID)
			s.record(ctx, audit.Event{Event: audit.DownstreamTokenRevoked, Outcome: audit.OutcomeSuccess, ReasonCode: "client_revoked",
				SubjectID: g.Subject, OperationID: g.OperationID, RequestID: requestid.From(ctx), Details: map[string]any{"clientId": g.ClientID}}, "token_revoked")
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// routePathOf returns the path of a resource URL.
func routePathOf(resource string) string {
	if i := strings.Index(resource, "://"); i >= 0 {
		rest := resource[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			return rest[j:]
		}
		return "/"
	}
	return resource
}

// s256 is the PKCE S256 transform.
func s256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// newID returns prefix + 16 random bytes, base64url.
func newID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}
