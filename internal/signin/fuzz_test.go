package signin

import (
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/testutil/storetest"
)

// FuzzClientMetadataDocument: a client ID metadata document from the network is accepted only
// when it names itself and every redirect URI is acceptable; the client is then public and
// verified.
func FuzzClientMetadataDocument(f *testing.F) {
	const id = "https://client.example/oauth/metadata.json"
	f.Add([]byte(`{"client_id":"` + id + `","client_name":"Example","redirect_uris":["http://127.0.0.1:3000/callback"]}`))
	f.Add([]byte(`{"client_id":"https://other.example/m.json","redirect_uris":["https://x.example/cb"]}`))
	f.Add([]byte(`{"client_id":"` + id + `","redirect_uris":["javascript:alert(1)"]}`))
	f.Add([]byte(`{"client_id":"` + id + `","redirect_uris":["https://x.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`))
	f.Add([]byte(`{"client_id":"` + id + `","redirect_uris":[]}`))
	f.Add([]byte(`{"client_id":"` + id + `","client_name":"` + strings.Repeat("n", 300) + `","redirect_uris":["cursor://x/cb"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, oe := parseMetadataDoc(id, body)
		if oe != nil {
			if oe.Code != "invalid_client" || oe.Description == "" {
				t.Fatalf("refusal without a clear error: %+v", oe)
			}
			return
		}
		if c.ID != id || !c.Verified || c.AuthMethod != "none" || len(c.RedirectURIs) == 0 || len(c.Name) > maxClientName {
			t.Fatalf("accepted %+v", c)
		}
		for _, u := range c.RedirectURIs {
			if checkRedirectURI(u) != nil {
				t.Fatalf("accepted redirect URI %q", u)
			}
		}
	})
}

// FuzzAccessToken: a bearer that the gateway did not seal never opens as an access token.
func FuzzAccessToken(f *testing.F) {
	ring := storetest.Ring(f, "k1")
	s := &Server{ring: ring, urls: &publicurl.URLs{}}
	good, err := s.sealAccess(accessClaims{Grant: "g", Subject: "dev|x", Expires: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("mcpgate_at_mg1.k1.AAAA")
	f.Add("mcpgate_at_")
	f.Add(strings.Replace(good, "mg1.k1.", "mg1.k2.", 1))
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := s.openAccess(tok)
		if err != nil {
			return
		}
		// Only tokens sealed above (in this process or the fuzzing parent's) carry these claims.
		if c.Grant != "g" || c.Subject != "dev|x" || !strings.HasPrefix(tok, accessPrefix) {
			t.Fatalf("a token the gateway did not seal opened: %q → %+v", tok, c)
		}
	})
}

// FuzzRedirectURI: registration never accepts a redirect URI with a dangerous scheme, a fragment
// or user information, or plain http to a non-loopback host.
func FuzzRedirectURI(f *testing.F) {
	for _, s := range []string{"https://a.example/cb", "http://127.0.0.1:1/cb", "http://localhost/cb", "cursor://x/y", "javascript:alert(1)",
		"http://evil.example/cb", "https://a.example/cb#f", "https://u:p@a.example/cb", "data:text/html,x", "HTTP://127.0.0.1/", "file:///etc/passwd", "A:#"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if checkRedirectURI(raw) != nil {
			return
		}
		l := strings.ToLower(raw)
		for _, bad := range []string{"javascript:", "data:", "file:", "vbscript:"} {
			if strings.HasPrefix(l, bad) {
				t.Fatalf("accepted %q", raw)
			}
		}
		if strings.Contains(raw, "#") {
			t.Fatalf("accepted a fragment: %q", raw)
		}
	})
}
