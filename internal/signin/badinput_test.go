package signin_test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// nothingGranted fails when any grant or consent was stored.
func (e *env) nothingGranted(t *testing.T) {
	t.Helper()
	grants, err := e.gw.Store.ListOAuthGrants(t.Context(), "", 0)
	if err != nil || len(grants) != 0 {
		t.Fatalf("grants stored: %v %+v", err, grants)
	}
}

// authorizeOutcome follows an authorization request through the dev login and returns where it
// ended: a redirect to the client (its query), or the page status.
func (e *env) authorizeOutcome(t *testing.T, b *browser, rawURL string, c client) (url.Values, int, string) {
	t.Helper()
	resp, page := b.get(rawURL)
	resp, page = b.follow(resp, page, c.redirect)
	if resp.StatusCode == http.StatusFound && strings.HasPrefix(resp.Header.Get("Location"), c.redirect) {
		u, _ := url.Parse(resp.Header.Get("Location"))
		return u.Query(), resp.StatusCode, page
	}
	return nil, resp.StatusCode, page
}

// TestAuthorizeRefusesBadRequests: every malformed authorization request gets a clear OAuth error
// (back to the client when its redirect URI can be trusted, else a page) and stores nothing.
func TestAuthorizeRefusesBadRequests(t *testing.T) {
	e := newEnv(t)
	c := e.register(t, "http://127.0.0.1:33418/callback")
	b := newBrowser(t)
	base := e.authorizeURL(c, "/mcp/demo", "")
	with := func(k, v string) string {
		u, _ := url.Parse(base)
		q := u.Query()
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	redirected := []struct{ name, url, code, desc string }{
		{"missing PKCE", with("code_challenge", ""), "invalid_request", "PKCE is required"},
		{"plain PKCE", with("code_challenge_method", "plain"), "invalid_request", "code_challenge_method must be S256"},
		{"wrong response type", with("response_type", "token"), "unsupported_response_type", "response_type must be code"},
		{"another scope", with("scope", "admin"), "invalid_scope", "the only scope is mcp:tools"},
	}
	for _, tc := range redirected {
		t.Run(tc.name, func(t *testing.T) {
			q, st, page := e.authorizeOutcome(t, b, tc.url, c)
			if q == nil || q.Get("error") != tc.code || !strings.Contains(q.Get("error_description"), tc.desc) || q.Get("state") != "st-1" {
				t.Fatalf("got %d %v\n%s", st, q, page)
			}
		})
	}
	paged := []struct{ name, url, text string }{
		{"resource of another route", with("resource", e.gw.URL+"/mcp/other"), "is not the MCP server this authorization endpoint serves"},
		{"unknown resource", strings.Replace(with("resource", "https://elsewhere.example/mcp"), "/authorize/mcp/demo", "/authorize", 1), "is not an MCP server of this gateway"},
		{"redirect URI not registered", with("redirect_uri", "https://attacker.example/cb"), "did not register"},
		{"unknown client", with("client_id", "dcr:nope"), "unknown client_id"},
	}
	for _, tc := range paged {
		t.Run(tc.name, func(t *testing.T) {
			q, st, page := e.authorizeOutcome(t, b, tc.url, c)
			if q != nil || st != http.StatusBadRequest || !strings.Contains(page, tc.text) {
				t.Fatalf("got %d %v, want a 400 page saying %q\n%s", st, q, tc.text, page)
			}
		})
	}
	e.nothingGranted(t)
}

// TestTokenRefusesBadCodes: wrong verifier, another client, another redirect URI, an expired code
// and a replayed one each get invalid_grant, and no grant is stored.
func TestTokenRefusesBadCodes(t *testing.T) {
	e := newEnv(t)
	c := e.register(t, "http://127.0.0.1:33418/callback")
	other := e.register(t, "http://127.0.0.1:33419/callback")
	b := newBrowser(t)
	code := func() string { return e.signIn(t, b, c, "/mcp/other", "") }
	form := func(code string, mods ...func(url.Values)) url.Values {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirect}, "code_verifier": {c.verifier}, "client_id": {c.id}}
		for _, m := range mods {
			m(f)
		}
		return f
	}
	cases := []struct {
		name  string
		form  url.Values
		error string
	}{
		{"wrong verifier", form(code(), func(f url.Values) { f.Set("code_verifier", strings.Repeat("y", 60)) }), "invalid_grant"},
		{"missing verifier", form(code(), func(f url.Values) { f.Del("code_verifier") }), "invalid_request"},
		{"another client", form(code(), func(f url.Values) { f.Set("client_id", other.id) }), "invalid_grant"},
		{"another redirect URI", form(code(), func(f url.Values) { f.Set("redirect_uri", other.redirect) }), "invalid_grant"},
		{"another resource", form(code(), func(f url.Values) { f.Set("resource", e.gw.URL+"/mcp/demo") }), "invalid_target"},
		{"unknown client", form(code(), func(f url.Values) { f.Set("client_id", "dcr:unknown") }), "invalid_client"},
		{"unknown code", form("mcpgate_ac_nope"), "invalid_grant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, out := e.token(t, tc.form)
			if out["error"] != tc.error || st < 400 {
				t.Fatalf("got %d %v, want %s", st, out, tc.error)
			}
		})
	}
	t.Run("expired code", func(t *testing.T) {
		f := form(code())
		e.clock.advance(61 * time.Second)
		if st, out := e.token(t, f); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("got %d %v", st, out)
		}
	})
	e.nothingGranted(t)
}

// TestRegistrationLimits: malformed registrations are refused with invalid_* errors, and a flood
// from one address gets 429 with Retry-After after the tenth registration in an hour.
func TestRegistrationLimits(t *testing.T) {
	e := newEnv(t)
	post := func(body string) (*http.Response, map[string]any) {
		resp, err := http.Post(e.gw.Base+"/oauth/register", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp, out
	}
	bad := []struct{ body, code string }{
		{`{"client_name":"x"}`, "invalid_redirect_uri"},
		{`{"redirect_uris":["http://evil.example/cb"]}`, "invalid_redirect_uri"},
		{`{"redirect_uris":["javascript:alert(1)"]}`, "invalid_redirect_uri"},
		{`{"redirect_uris":["https://ok.example/cb#frag"]}`, "invalid_redirect_uri"},
		{`{"redirect_uris":["https://ok.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, "invalid_client_metadata"},
		{`{"redirect_uris":["https://ok.example/cb"],"scope":"admin"}`, "invalid_client_metadata"},
	}
	for _, tc := range bad {
		if resp, out := post(tc.body); resp.StatusCode != http.StatusBadRequest || out["error"] != tc.code {
			t.Errorf("%s: %d %v, want %s", tc.body, resp.StatusCode, out, tc.code)
		}
	}
	// Real clients' redirect URIs are accepted: a loopback port, localhost, private-use schemes.
	for _, uri := range []string{"http://127.0.0.1:6274/oauth/callback", "http://localhost:33418/callback", "cursor://anysphere.cursor-mcp/oauth/callback", "vscode://vscode.github-authentication/did-authenticate"} {
		if resp, out := post(`{"redirect_uris":["` + uri + `"],"token_endpoint_auth_method":"none"}`); resp.StatusCode != http.StatusCreated {
			t.Errorf("%s: %d %v", uri, resp.StatusCode, out)
		}
	}
	// Ten attempts so far, refused ones included: the flood limit is on attempts from the address.
	var last *http.Response
	for range 20 {
		last, _ = post(`{"redirect_uris":["https://ok.example/cb"]}`)
		if last.StatusCode == http.StatusTooManyRequests {
			break
		}
	}
	if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") != "3600" {
		t.Fatalf("flood: last answer %d, Retry-After %q, want 429 and 3600 (the gateway's clock stood still)", last.StatusCode, last.Header.Get("Retry-After"))
	}
	// The window (limiter.Memory, fixed, opened by the first registration) ends an hour later.
	e.clock.advance(time.Hour - time.Second)
	if resp, _ := post(`{"redirect_uris":["https://ok.example/cb"]}`); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("a second before the window ends: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	e.clock.advance(time.Second)
	if resp, out := post(`{"redirect_uris":["https://ok.example/cb"]}`); resp.StatusCode != http.StatusCreated {
		t.Fatalf("after the window: %d %v", resp.StatusCode, out)
	}
}

// TestClientIDMetadataDocuments: an https client_id is fetched (through the SSRF guard), must name
// itself and list the redirect URI; a document at a private address is refused unless allowed.
// The document server is an httptest TLS server (a real client's document is what it serves).
func TestClientIDMetadataDocuments(t *testing.T) {
	docs := map[string]string{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=60")
		_, _ = w.Write([]byte(docs[r.URL.Path]))
	}))
	t.Cleanup(srv.Close)
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	good := srv.URL + "/client.json"
	docs["/client.json"] = `{"client_id":"` + good + `","client_name":"CIMD client","redirect_uris":["http://127.0.0.1:33418/callback"],"token_endpoint_auth_method":"none"}`
	docs["/liar.json"] = `{"client_id":"https://someone-else.example/client.json","client_name":"Liar","redirect_uris":["http://127.0.0.1:33418/callback"]}`

	run := func(t *testing.T, allow []string) (*env, *browser) {
		e := newEnv(t)
		e.gw = gatewaytest.New(t, gatewaytest.Options{Config: e.gw.Project, SafeHTTPAllow: allow, TLSConfig: &tls.Config{RootCAs: roots}, Now: e.clock.now})
		return e, newBrowser(t)
	}
	cimd := func(id string) client {
		return client{id: id, redirect: "http://127.0.0.1:33418/callback", verifier: strings.Repeat("v", 60), challenge: s256(strings.Repeat("v", 60))}
	}
	t.Run("verified client signs in", func(t *testing.T) {
		e, b := run(t, []string{"127.0.0.1"})
		c := cimd(good)
		code := e.signIn(t, b, c, "/mcp/other", "")
		if tok := e.exchange(t, c, code, "/mcp/other"); !strings.HasPrefix(str(tok["access_token"]), "mcpgate_at_") {
			t.Fatalf("token: %v", tok)
		}
	})
	t.Run("document that does not name itself", func(t *testing.T) {
		e, b := run(t, []string{"127.0.0.1"})
		_, st, page := e.authorizeOutcome(t, b, e.authorizeURL(cimd(srv.URL+"/liar.json"), "/mcp/other", ""), cimd(""))
		if st != http.StatusBadRequest || !strings.Contains(page, "does not name itself") {
			t.Fatalf("%d\n%s", st, page)
		}
		e.nothingGranted(t)
	})
	t.Run("document at a private address", func(t *testing.T) {
		e, b := run(t, []string{})
		_, st, page := e.authorizeOutcome(t, b, e.authorizeURL(cimd(good), "/mcp/other", ""), cimd(""))
		if st != http.StatusBadRequest || !strings.Contains(page, "could not be fetched") {
			t.Fatalf("%d\n%s", st, page)
		}
		e.nothingGranted(t)
	})
}

func s256(v string) string {
	h := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(h[:])
}
