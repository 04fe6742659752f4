package setup

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/limiter"
	"github.com/mcpgate/mcpgate/internal/policy/jwtauth"
	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
)

// Session and login limits.
const (
	// SessionTTL is how long an admin session lasts.
	SessionTTL = 8 * time.Hour
	// MaxFailedLogins failures from one address within FailedLoginWindow answer 429 to further
	// unknown credentials from it until the oldest failure leaves the window. A valid admin
	// credential is never refused: behind a proxy every admin may share one address, and an
	// attacker must not be able to lock them out.
	MaxFailedLogins   = 5
	FailedLoginWindow = 15 * time.Minute
	// MaxThrottledAddresses bounds the addresses the login throttle remembers (least recently failed
	// forgotten first). An IPv6 address counts as its /64.
	MaxThrottledAddresses = 10000
	// loginNonceTTL bounds the login form's CSRF cookie.
	loginNonceTTL = 30 * time.Minute
)

// Cookie names: __Host- prefixed behind https; on plain http (development) path-scoped, without
// Secure (a browser drops Secure cookies on http).
const (
	sessionCookieSecure = "__Host-mcpgate-admin"
	sessionCookiePlain  = "mcpgate-admin"
	loginCookieSecure   = "__Host-mcpgate-admin-login"
	loginCookiePlain    = "mcpgate-admin-login"
)

// Admin is an authenticated administrator.
type Admin struct {
	// Subject is namespaced as every stored subject ("apikey|ops", "jwt:<issuer>|sub").
	Subject string
	// KeyID is the API key's id when the admin signed in with one: sessions re-check it, so a
	// revoked key ends its sessions.
	KeyID string
	// Until is when the credential stops being valid (a JWT's exp, an API key's expiry); zero: never.
	Until time.Time
}

// Authentication errors (safe to show).
var (
	errInvalidCredential = errors.New("the key or token is not valid")
	errNotAdmin          = errors.New("this key or token does not belong to an administrator")
	// errJWTAdminOff, errAdminAudience: a valid JWT that is no admin credential (see jwtauth.AdminToken).
	errJWTAdminOff   = errors.New(jwtauth.AdminAudienceEnv + " is not set, so no JWT is an admin credential")
	errAdminAudience = errors.New("its audience (aud) does not contain " + jwtauth.AdminAudienceEnv + "; MCP route tokens are never admin credentials")
)

// authenticate checks an API key or a JWT (where a JWT policy is configured) and returns the admin
// it proves. A store failure is returned as is (503), never as "not valid".
func (h *Handler) authenticate(ctx context.Context, r *http.Request, cred string) (*Admin, error) {
	cred = strings.TrimSpace(cred)
	if cred == "" || len(cred) > 16<<10 {
		return nil, errInvalidCredential
	}
	if strings.Count(cred, ".") == 2 && len(h.jwt) > 0 {
		return h.authenticateJWT(ctx, r, cred)
	}
	k, err := h.store.LookupAPIKey(ctx, store.HashAPIKey(cred))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errInvalidCredential
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(k.Hash, store.HashAPIKey(cred)) != 1 || !keyUsable(k, h.now()) {
		return nil, errInvalidCredential
	}
	if !k.Admin {
		return nil, errNotAdmin
	}
	return &Admin{Subject: subject.New(subject.APIKey, k.Consumer).String(), KeyID: k.ID, Until: k.ExpiresAt}, nil
}

func keyUsable(k *store.APIKey, now time.Time) bool {
	return k.RevokedAt.IsZero() && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt))
}

// authenticateJWT checks the token with the gateway's own JWT policies (jwtauth.AdminToken: the
// issuer's signature, iss, exp and nbf, then MCPGATE_ADMIN_AUDIENCE in aud and the
// MCPGATE_ADMIN_CLAIM claim). The first policy whose issuer signed it decides.
func (h *Handler) authenticateJWT(ctx context.Context, _ *http.Request, tok string) (*Admin, error) {
	for _, v := range h.jwt {
		u, reason, err := v.AdminToken(ctx, tok)
		if err != nil {
			return nil, err
		}
		switch reason {
		case "":
		case jwtauth.AdminAudienceUnset:
			return nil, errJWTAdminOff
		case jwtauth.AdminWrongAudience:
			return nil, errAdminAudience
		case jwtauth.AdminNoClaim:
			return nil, errNotAdmin
		default:
			continue // not this issuer's, or not valid
		}
		a := &Admin{Subject: u.Subject()}
		if exp, ok := u.Data["exp"].(float64); ok {
			a.Until = time.Unix(int64(exp), 0)
		}
		return a, nil
	}
	return nil, errInvalidCredential
}

// session is what the sealed session cookie holds.
type session struct {
	ID      string    `json:"sid"` // CSRF tokens are bound to it
	Subject string    `json:"sub"`
	KeyID   string    `json:"kid,omitempty"`
	Expires time.Time `json:"exp"`
}

// sealer seals session cookies with AES-256-GCM under a key derived from the vault key ring
// (Ring.DeriveKey("admin-session")), so every replica can open them and nobody can forge or read one.
type sealer struct{ aead cipher.AEAD }

var sessionAAD = []byte("mcpgate admin session v1")

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(v any) string {
	payload, _ := json.Marshal(v)
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(payload)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, payload, sessionAAD))
}

func (s *sealer) open(token string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < s.aead.NonceSize()+s.aead.Overhead() {
		return false
	}
	raw, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], sessionAAD)
	if err != nil {
		return false
	}
	return json.Unmarshal(raw, v) == nil
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// cookie builds one of the UI's cookies: SameSite=Strict, HttpOnly, Secure and __Host- only behind
// https; on http it is scoped to the setup path.
func (h *Handler) cookie(r *http.Request, secureName, plainName, value string, maxAge int) *http.Cookie {
	if h.urls.HTTPS(r) {
		return &http.Cookie{Name: secureName, Value: value, Path: "/", MaxAge: maxAge, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
	}
	return &http.Cookie{Name: plainName, Value: value, Path: h.urls.BasePath + "/", MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

func (h *Handler) cookieValue(r *http.Request, secureName, plainName string) string {
	name := plainName
	if h.urls.HTTPS(r) {
		name = secureName
	}
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// startSession issues the session cookie for a.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, a *Admin) {
	now := h.now()
	exp := now.Add(SessionTTL)
	if !a.Until.IsZero() && a.Until.Before(exp) {
		exp = a.Until
	}
	s := session{ID: randomID(16), Subject: a.Subject, KeyID: a.KeyID, Expires: exp}
	maxAge := int(exp.Sub(now) / time.Second)
	if maxAge < 1 {
		maxAge = 1
	}
	http.SetCookie(w, h.cookie(r, sessionCookieSecure, sessionCookiePlain, h.sealer.seal(s), maxAge))
}

func (h *Handler) endSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, h.cookie(r, sessionCookieSecure, sessionCookiePlain, "", -1))
}

// currentSession returns the request's valid session, or nil. A session of an API key that was
// revoked, expired or lost its admin flag since is no longer valid. A store failure is an error.
func (h *Handler) currentSession(ctx context.Context, r *http.Request) (*session, error) {
	raw := h.cookieValue(r, sessionCookieSecure, sessionCookiePlain)
	if raw == "" {
		return nil, nil
	}
	var s session
	if !h.sealer.open(raw, &s) || s.ID == "" || s.Subject == "" || !h.now().Before(s.Expires) {
		return nil, nil
	}
	if s.KeyID != "" {
		keys, err := h.store.ListAPIKeys(ctx)
		if err != nil {
			return nil, err
		}
		ok := false
		for i := range keys {
			if keys[i].ID == s.KeyID {
				ok = keys[i].Admin && keyUsable(&keys[i], h.now())
				break
			}
		}
		if !ok {
			return nil, nil
		}
	}
	return &s, nil
}

// loginThrottle slows down repeated failed logins from one address: MaxFailedLogins failures in a
// window of FailedLoginWindow (opened by the first failure) make the address wait until the window
// ends. It counts in a limiter.Memory (the gateway's one limiter) keyed by publicurl.AddrKey (an
// IPv6 address by its /64), bounded to MaxThrottledAddresses (the address that failed least
// recently is forgotten first).
type loginThrottle struct {
	failures *limiter.Memory
}

var failedLogins = limiter.Limit{Requests: MaxFailedLogins, Window: FailedLoginWindow}

func newLoginThrottle(now func() time.Time) *loginThrottle {
	return &loginThrottle{failures: limiter.NewMemory(limiter.MemoryOptions{MaxKeys: MaxThrottledAddresses, Now: now})}
}

// check returns how long addr must wait before its next unknown credential is looked at (0: it may try now).
func (l *loginThrottle) check(addr string) time.Duration {
	if r := l.failures.Peek(publicurl.AddrKey(addr), failedLogins); !r.Allowed {
		return max(r.RetryAfter, time.Second)
	}
	return 0
}

func (l *loginThrottle) fail(addr string) {
	_, _ = l.failures.Take(context.Background(), publicurl.AddrKey(addr), failedLogins) // Memory never fails
}

func (l *loginThrottle) succeed(addr string) { l.failures.Reset(publicurl.AddrKey(addr)) }

// clientAddr is the address failed logins are counted against: the direct peer, or, when that is
// a trusted proxy (MCPGATE_TRUSTED_PROXIES), the nearest X-Forwarded-For address that is not one
// (so clients behind one proxy are not slowed down together, and a client cannot pick its own).
func (h *Handler) clientAddr(r *http.Request) string { return h.urls.ClientAddr(r) }

// AdminSubject implements connect.Admins: the administrator the browser is signed in to the setup
// UI as, or "".
func (h *Handler) AdminSubject(r *http.Request) string {
	s, err := h.currentSession(r.Context(), r)
	if err != nil || s == nil {
		return ""
	}
	return s.Subject
}

// AdminLoginURL implements connect.Admins: the setup UI's sign-in page.
func (h *Handler) AdminLoginURL(r *http.Request, _ string) string {
	return h.urls.Gateway(r, "/setup/login")
}

var _ connect.Admins = (*Handler)(nil)
