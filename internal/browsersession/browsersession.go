// Package browsersession is the gateway's browser session: who a browser is signed in as, in a
// sealed cookie (no server-side state, so every replica reads it). The sign-in flow creates it
// (an IdP login, the development login, or an API key typed into a form); the consent and connect
// pages read it to act only for the person signed in. The cookie is __Host-mcpgate-session over
// https and mcpgate-session over http, HttpOnly, SameSite=Lax, Path=/.
package browsersession

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Cookie names.
const (
	SecureCookie = "__Host-mcpgate-session"
	PlainCookie  = "mcpgate-session"
	// BrowserCookie names the browser-binding cookie: a random id, set on the first page that
	// needs it, that CSRF tokens are bound to (so a token lifted from one browser is useless in
	// another).
	SecureBrowserCookie = "__Host-mcpgate-browser"
	PlainBrowserCookie  = "mcpgate-browser"
)

// DefaultTTL is how long a session lasts (8 hours).
const DefaultTTL = 8 * time.Hour

// record is the AAD of the sealed cookie.
const record = "browser-session"

// Session is who a browser is signed in as.
type Session struct {
	Subject subject.Subject `json:"sub"`
	// Name and Email are for display ("Signed in as …"); either may be empty.
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	// Roles and Groups are captured at login for request.user.data.
	Roles  []string `json:"roles,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// Method says how the person signed in: "idp", "dev" or "apikey".
	Method  string    `json:"m"`
	Expires time.Time `json:"exp"`
}

// Display names the person for a page: their name or email when the login gave one, else the
// subject's display form.
func (s *Session) Display() string {
	switch {
	case s.Name != "":
		return s.Name
	case s.Email != "":
		return s.Email
	}
	return s.Subject.Display()
}

// Sessions reads and writes session cookies. Safe for concurrent use.
type Sessions struct {
	ring *vault.Ring
	now  func() time.Time
}

// New returns Sessions sealing with ring.
func New(ring *vault.Ring) *Sessions { return &Sessions{ring: ring, now: time.Now} }

// ErrNoSession is returned by Get when the browser has no valid session.
var ErrNoSession = errors.New("browser session: not signed in")

// Get returns the browser's session, or ErrNoSession (no cookie, expired, or not ours).
func (s *Sessions) Get(r *http.Request) (*Session, error) {
	for _, name := range []string{SecureCookie, PlainCookie} {
		c, err := r.Cookie(name)
		if err != nil || c.Value == "" {
			continue
		}
		pt, err := s.ring.Open(c.Value, record)
		if err != nil {
			continue
		}
		var sess Session
		if json.Unmarshal([]byte(pt.Reveal()), &sess) != nil || sess.Subject == "" || !s.now().Before(sess.Expires) {
			continue
		}
		return &sess, nil
	}
	return nil, ErrNoSession
}

// Set starts a session for sess (its Expires is set from ttl) on the response. https says whether
// the public URL is https (then the cookie is __Host- and Secure).
func (s *Sessions) Set(w http.ResponseWriter, https bool, sess Session, ttl time.Duration) error {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	sess.Expires = s.now().Add(ttl).UTC().Truncate(time.Second)
	b, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	v, err := s.ring.Seal(vault.Secret(b), record)
	if err != nil {
		return err
	}
	http.SetCookie(w, cookie(https, SecureCookie, PlainCookie, v, int(ttl.Seconds())))
	return nil
}

// Clear ends the session.
func (s *Sessions) Clear(w http.ResponseWriter, https bool) {
	http.SetCookie(w, cookie(https, SecureCookie, PlainCookie, "", -1))
}

// BrowserID returns the browser-binding id, setting a new one on w when the browser has none.
func BrowserID(w http.ResponseWriter, r *http.Request, https bool) string {
	for _, name := range []string{SecureBrowserCookie, PlainBrowserCookie} {
		if c, err := r.Cookie(name); err == nil && len(c.Value) >= 22 {
			return c.Value
		}
	}
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	// A year: the id binds CSRF tokens only; it carries nothing about the person.
	http.SetCookie(w, cookie(https, SecureBrowserCookie, PlainBrowserCookie, id, 365*24*3600))
	return id
}

// ExistingBrowserID returns the browser-binding id the request carries, or "".
func ExistingBrowserID(r *http.Request) string {
	for _, name := range []string{SecureBrowserCookie, PlainBrowserCookie} {
		if c, err := r.Cookie(name); err == nil && len(c.Value) >= 22 {
			return c.Value
		}
	}
	return ""
}

func cookie(https bool, secureName, plainName, value string, maxAge int) *http.Cookie {
	c := &http.Cookie{Name: plainName, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: maxAge}
	if https {
		c.Name, c.Secure = secureName, true
	}
	return c
}
