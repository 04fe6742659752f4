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
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/requestid"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
)

// Session and login limits.
const (
	// SessionTTL is how long an admin session lasts.
	SessionTTL = 8 * time.Hour
	// MaxFailedLogins failures from one address within FailedLoginWindow answer 429 until the
	// oldest failure leaves the window.
	MaxFailedLogins   = 5
	FailedLoginWindow = 15 * time.Minute
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

// authenticateJWT runs the gateway's own JWT policies on the token: the first that accepts it
// decides (its MCPGATE_ADMIN_CLAIM check sets policy.User.Admin).
func (h *Handler) authenticateJWT(ctx context.Context, r *http.Request, tok string) (*Admin, error) {
	for _, v := range h.jwt {
		req := r.Clone(ctx)
		req.Header = http.Header{"Authorization": {"Bearer " + tok}}
		c := &policy.Context{RequestID: requestid.From(ctx), Log: h.log}
		if _, err := v.HandleRequest(c, req); err != nil || c.User == nil {
			continue
		}
		if !c.User.Admin {
			return nil, errNotAdmin
		}
		a := &Admin{Subject: c.User.Subject()}
		if exp, ok := c.User.Data["exp"].(float64); ok {
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
	return &http.Cookie{Name: plainName, Value: value, Path: h.urls.BasePath + "/setup", MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteStrictMode}
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

// limiter slows down repeated failed logins from one address.
type limiter struct {
	mu       sync.Mutex
	failures map[string][]time.Time
	max      int
	window   time.Duration
	now      func() time.Time
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{failures: map[string][]time.Time{}, max: MaxFailedLogins, window: FailedLoginWindow, now: now}
}

// check returns how long addr must wait (0: it may try now).
func (l *limiter) check(addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	recent := l.prune(addr)
	if len(recent) < l.max {
		return 0
	}
	return max(recent[0].Add(l.window).Sub(l.now()), time.Second)
}

func (l *limiter) fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures[addr] = append(l.prune(addr), l.now())
	if len(l.failures) > 10000 {
		// Bound memory under a spray from many addresses: drop entries whose failures have aged out.
		for k := range l.failures {
			l.prune(k)
		}
	}
}

func (l *limiter) succeed(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, addr)
}

func (l *limiter) prune(addr string) []time.Time {
	cut := l.now().Add(-l.window)
	var recent []time.Time
	for _, t := range l.failures[addr] {
		if t.After(cut) {
			recent = append(recent, t)
		}
	}
	if len(recent) == 0 {
		delete(l.failures, addr)
		return nil
	}
	l.failures[addr] = recent
	return recent
}

// clientAddr is the address failed logins are counted against: the direct peer, or, when that is
// a trusted proxy (MCPGATE_TRUSTED_PROXIES), the nearest X-Forwarded-For address that is not one
// (so clients behind one proxy are not slowed down together, and a client cannot pick its own).
func (h *Handler) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !h.trusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if !h.trusted(hop) {
			return hop
		}
		host = hop
	}
	return host
}

func (h *Handler) trusted(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range h.urls.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

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
