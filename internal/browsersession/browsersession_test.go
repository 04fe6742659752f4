package browsersession

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/vault"
)

func testRing(t testing.TB) *vault.Ring {
	key, err := vault.GenerateKey("k1", func() string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	r, err := vault.ParseRing(key)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSessionRoundTripAndCookie: a session set on a response is read back from the cookie, with
// the cookie attributes the docs promise; an expired one is not.
func TestSessionRoundTripAndCookie(t *testing.T) {
	s := New(testRing(t))
	for _, https := range []bool{true, false} {
		rec := httptest.NewRecorder()
		if err := s.Set(rec, https, Session{Subject: subject.New(subject.Dev, "dev-browser-user"), Method: "dev"}, time.Hour); err != nil {
			t.Fatal(err)
		}
		c := rec.Result().Cookies()[0]
		wantName := PlainCookie
		if https {
			wantName = SecureCookie
		}
		if c.Name != wantName || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != https || c.MaxAge != 3600 {
			t.Fatalf("cookie %+v", c)
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.AddCookie(c)
		got, err := s.Get(req)
		if err != nil || got.Subject != "dev|dev-browser-user" {
			t.Fatalf("Get: %v %+v", err, got)
		}
		s.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		if _, err := s.Get(req); err != ErrNoSession {
			t.Fatalf("expired session read: %v", err)
		}
		s.now = time.Now
	}
}

// FuzzSessionCookie: a cookie the gateway did not seal never reads as a session.
func FuzzSessionCookie(f *testing.F) {
	ring := testRing(f)
	s := New(ring)
	rec := httptest.NewRecorder()
	if err := s.Set(rec, false, Session{Subject: "apikey|alice", Method: "apikey"}, time.Hour); err != nil {
		f.Fatal(err)
	}
	f.Add(rec.Result().Cookies()[0].Value)
	f.Add("mg1.k1.AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.AddCookie(&http.Cookie{Name: PlainCookie, Value: v})
		sess, err := s.Get(req)
		if err != nil {
			return
		}
		if sess.Subject != "apikey|alice" {
			t.Fatalf("a cookie the gateway did not seal opened: %q → %+v", v, sess)
		}
	})
}
