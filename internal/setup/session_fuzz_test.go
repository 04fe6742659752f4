package setup

import (
	"testing"
	"time"
)

// FuzzAdminSessionCookie: an admin session cookie the gateway did not seal never opens.
func FuzzAdminSessionCookie(f *testing.F) {
	s, err := newSealer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s.seal(session{ID: "sid", Subject: "apikey|ops", KeyID: "k", Expires: time.Unix(2000000000, 0)}))
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, token string) {
		var got session
		if !s.open(token, &got) {
			return
		}
		if got.ID != "sid" || got.Subject != "apikey|ops" {
			t.Fatalf("a cookie the gateway did not seal opened: %q → %+v", token, got)
		}
	})
}
