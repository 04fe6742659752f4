package upstream

import (
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"reflect"
	"testing"
)

func TestSelectScopes(t *testing.T) {
	withOffline := &Discovery{PRM: ProtectedResource{ScopesSupported: []string{"prm:a", "prm:b"}}, AS: AuthServer{ScopesSupported: []string{"x", OfflineAccess}}}
	without := &Discovery{PRM: ProtectedResource{ScopesSupported: []string{"prm:a", OfflineAccess}}, AS: AuthServer{ScopesSupported: []string{"x"}}}
	noPRM := &Discovery{AS: AuthServer{ScopesSupported: []string{OfflineAccess}}}
	for _, tc := range []struct {
		name      string
		explicit  []string
		challenge []string
		d         *Discovery
		want      []string
	}{
		{"explicit wins", []string{"e1", "e2", "e1"}, []string{"c"}, withOffline, []string{"e1", "e2", OfflineAccess}},
		{"challenge next", nil, []string{"c1", "c2"}, withOffline, []string{"c1", "c2", OfflineAccess}},
		{"prm scopes_supported last", nil, nil, withOffline, []string{"prm:a", "prm:b", OfflineAccess}},
		{"offline_access dropped when the AS does not list it", nil, nil, without, []string{"prm:a"}},
		{"explicit offline_access dropped too", []string{"e", OfflineAccess}, nil, without, []string{"e"}},
		{"nothing: scope omitted, offline_access not added alone", nil, nil, noPRM, nil},
		{"offline_access already present not duplicated", []string{OfflineAccess, "e"}, nil, withOffline, []string{OfflineAccess, "e"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SelectScopes(Upstream{Scopes: tc.explicit}, tc.challenge, tc.d)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPromptFor(t *testing.T) {
	off := []string{"a", OfflineAccess}
	for _, tc := range []struct {
		p      Prompt
		scopes []string
		want   string
	}{
		{Prompt{}, off, "consent"},
		{Prompt{}, []string{"a"}, ""},
		{Prompt{Disabled: true}, off, ""},
		{Prompt{Value: "login"}, off, "login"},
		{Prompt{Value: "select_account"}, []string{"a"}, "select_account"},
	} {
		if got := promptFor(Upstream{Prompt: tc.p}, tc.scopes); got != tc.want {
			t.Errorf("promptFor(%+v, %q) = %q, want %q", tc.p, tc.scopes, got, tc.want)
		}
	}
}

func TestAuthorizationRequest(t *testing.T) {
	d := &Discovery{Resource: "https://mcp.example.com/mcp", AS: AuthServer{Issuer: "https://as.example.com",
		AuthorizationEndpoint: "https://as.example.com/authorize?tenant=t1", CodeChallengeMethodsSupported: []string{"S256"}}}
	c := &Client{ClientID: "https://gw.example.com/__mcpgate/.well-known/oauth-client/linear", RedirectURI: "https://gw.example.com/__mcpgate/auth/connections/linear/callback"}
	up := Upstream{ID: "linear", ScopeDelimiter: ","}
	e := New(Options{})
	r1, err := e.AuthorizationRequest(up, d, c, []string{"read", "write", OfflineAccess})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(r1.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	sum := sha256.Sum256([]byte(r1.Verifier.Reveal()))
	want := map[string]string{
		"tenant":                "t1",
		"response_type":         "code",
		"client_id":             c.ClientID,
		"redirect_uri":          c.RedirectURI,
		"scope":                 "read,write,offline_access",
		"state":                 r1.State.Reveal(),
		"code_challenge":        base64.RawURLEncoding.EncodeToString(sum[:]),
		"code_challenge_method": "S256",
		"resource":              "https://mcp.example.com/mcp",
		"prompt":                "consent",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if len(q) != len(want) {
		t.Errorf("unexpected parameters in %v", q)
	}
	if u.Scheme+"://"+u.Host+u.Path != "https://as.example.com/authorize" {
		t.Errorf("endpoint %s", u)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(r1.State.Reveal()); err != nil || len(raw) < 32 {
		t.Errorf("state %d bytes, %v", len(raw), err)
	}
	if r1.Issuer != d.AS.Issuer || r1.Resource != d.Resource || r1.Prompt != "consent" {
		t.Errorf("request %+v", r1)
	}

	r2, err := e.AuthorizationRequest(Upstream{ID: "linear"}, d, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r2.State == r1.State || r2.Verifier == r1.Verifier {
		t.Error("state and verifier must be fresh per request")
	}
	q2, _ := url.ParseQuery(mustURL(t, r2.URL).RawQuery)
	if q2.Has("scope") || q2.Has("prompt") {
		t.Errorf("empty scope and prompt must be omitted: %v", q2)
	}

	d.AS.CodeChallengeMethodsSupported = []string{"plain"}
	_, err = e.AuthorizationRequest(up, d, c, nil)
	wantCode(t, err, CodePKCES256Unsupported, BucketOAuthSetup)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestCheckIssuerParameter(t *testing.T) {
	const iss = "https://as.example.com"
	for _, tc := range []struct {
		query     string
		supported bool
		code      string
	}{
		{"code=x&state=y&iss=https%3A%2F%2Fas.example.com", true, ""},
		{"code=x&state=y&iss=https%3A%2F%2Fas.example.com", false, ""},
		{"code=x&state=y", false, ""},
		{"code=x&state=y", true, CodeIssMissing},
		{"error=access_denied&state=y&iss=https%3A%2F%2Fevil.example", false, CodeIssMismatch},
		{"code=x&iss=https%3A%2F%2Fas.example.com%2F", true, CodeIssMismatch},
	} {
		q, _ := url.ParseQuery(tc.query)
		err := CheckIssuerParameter(q, iss, tc.supported)
		if CodeOf(err) != tc.code {
			t.Errorf("%s supported=%v: %v, want code %q", tc.query, tc.supported, err, tc.code)
		}
	}
}

func TestEndpoints(t *testing.T) {
	ep := Endpoints{PublicURL: "https://gw.example.com/", BasePath: "/__zuplo/"}
	if got := ep.RedirectURI("my up"); got != "https://gw.example.com/__zuplo/auth/connections/my%20up/callback" {
		t.Errorf("redirect %q", got)
	}
	if got := ep.ClientMetadataURL("linear"); got != "https://gw.example.com/__zuplo/.well-known/oauth-client/linear" {
		t.Errorf("cimd %q", got)
	}
	if !ep.HTTPS() || (Endpoints{PublicURL: "http://localhost"}).HTTPS() {
		t.Error("HTTPS")
	}
}
