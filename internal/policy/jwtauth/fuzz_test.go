package jwtauth

import (
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// FuzzAuthenticate feeds arbitrary header values to the policy: it must never panic, and it may
// only accept a token whose signature the secret verifies.
func FuzzAuthenticate(f *testing.F) {
	secret := []byte(strings.Repeat("fuzz-secret-", 3))
	now := time.Unix(1_800_000_000, 0)
	p := &Policy{Issuer: "https://idp.test", Audience: "https://gw/mcp"}
	p.st = &state{keys: secretKeys{secret: secret}, now: func() time.Time { return now }}
	valid, err := jws.Sign([]byte(`{"iss":"https://idp.test","aud":"https://gw/mcp","sub":"alice","exp":1800000300}`), jws.WithKey(jwa.HS256(), secret))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{string(valid), "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "..", "", strings.Repeat(".", 3)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		present := tok != ""
		wellFormed := present && !strings.ContainsAny(tok, " \t")
		u, refusal, err := p.authenticate(t.Context(), tok, present, wellFormed)
		if err != nil {
			t.Fatalf("a secret-keyed policy failed: %v", err)
		}
		if (u == nil) == (refusal == nil) {
			t.Fatalf("want exactly one of user and refusal, got %+v and %+v", u, refusal)
		}
		if u != nil {
			if _, err := jws.Verify([]byte(tok), jws.WithKey(jwa.HS256(), secret)); err != nil {
				if _, err384 := jws.Verify([]byte(tok), jws.WithKey(jwa.HS384(), secret)); err384 != nil {
					if _, err512 := jws.Verify([]byte(tok), jws.WithKey(jwa.HS512(), secret)); err512 != nil {
						t.Fatalf("accepted a token the secret does not verify: %q", tok)
					}
				}
			}
		}
	})
}
