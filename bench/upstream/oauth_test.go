package upstream

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	_ "github.com/mcpgate/mcpgate/internal/builtin"
	"github.com/mcpgate/mcpgate/internal/config"
)

func authServer(t *testing.T, ttl time.Duration) (*httptest.Server, *AuthServer) {
	t.Helper()
	as := &AuthServer{TokenTTL: ttl, StaticKeys: []string{"static"}}
	s := httptest.NewServer(&Handler{SSEDelay: -1, Auth: as})
	t.Cleanup(s.Close)
	as.Issuer = s.URL
	return s, as
}

func postMCP(t *testing.T, s *httptest.Server, bearer string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/mcp", strings.NewReader(ToolsCall))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func decode(t *testing.T, resp *http.Response, want int) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != want {
		t.Fatalf("status %d (want %d): %v %v", resp.StatusCode, want, m, err)
	}
	return m
}

// The whole client side of the connect flow against the bench authorization server: discovery
// from the 401, registration, authorize (straight back with a code), PKCE code exchange, calls
// with the token, refresh rotation and expiry.
func TestAuthServerIssuesTokensTheResourceAccepts(t *testing.T) {
	s, as := authServer(t, 300*time.Millisecond)
	resp := postMCP(t, s, "")
	wantChallenge := `Bearer resource_metadata="` + s.URL + `/.well-known/oauth-protected-resource/mcp", scope="bench:tools"`
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != wantChallenge {
		t.Fatalf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := postMCP(t, s, "wrong"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("wrong token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := postMCP(t, s, "static"); resp.StatusCode != http.StatusOK {
		t.Fatalf("static key: %d", resp.StatusCode)
	}
	r, _ := http.Get(s.URL + "/.well-known/oauth-protected-resource/mcp")
	prm := decode(t, r, http.StatusOK)
	if prm["resource"] != s.URL+"/mcp" || prm["authorization_servers"].([]any)[0] != s.URL {
		t.Fatalf("protected-resource metadata: %v", prm)
	}
	r, _ = http.Get(s.URL + "/.well-known/oauth-authorization-server")
	md := decode(t, r, http.StatusOK)
	if md["issuer"] != s.URL || md["registration_endpoint"] != s.URL+"/register" || md["code_challenge_methods_supported"].([]any)[0] != "S256" {
		t.Fatalf("authorization-server metadata: %v", md)
	}

	const redirect = "http://127.0.0.1:9/callback"
	r, _ = http.Post(s.URL+"/register", "application/json", strings.NewReader(`{"client_name":"gw","redirect_uris":["`+redirect+`"]}`))
	clientID, _ := decode(t, r, http.StatusCreated)["client_id"].(string)
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect}, "state": {"st"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}, "resource": {s.URL + "/mcp"}}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := noRedirect.Get(s.URL + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), redirect) || loc.Query().Get("state") != "st" || loc.Query().Get("iss") != s.URL {
		t.Fatalf("authorize: %d %s", r.StatusCode, loc)
	}
	token := func(form url.Values) (*http.Response, error) { return http.PostForm(s.URL+"/token", form) }
	codeForm := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "client_id": {clientID},
		"redirect_uri": {redirect}, "code_verifier": {"wrong-verifier"}}
	r, _ = token(codeForm)
	decode(t, r, http.StatusBadRequest) // a wrong verifier burns the code
	r, _ = noRedirect.Get(s.URL + "/authorize?" + q.Encode())
	r.Body.Close()
	loc, _ = url.Parse(r.Header.Get("Location"))
	codeForm.Set("code", loc.Query().Get("code"))
	codeForm.Set("code_verifier", verifier)
	r, _ = token(codeForm)
	tok := decode(t, r, http.StatusOK)
	if tok["expires_in"] != 0.3 || tok["token_type"] != "Bearer" {
		t.Fatalf("token: %v", tok)
	}
	if resp := postMCP(t, s, tok["access_token"].(string)); resp.StatusCode != http.StatusOK {
		t.Fatalf("call with the token: %d", resp.StatusCode)
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {clientID}}
	r, _ = token(refresh)
	tok2 := decode(t, r, http.StatusOK)
	r, _ = token(refresh)
	decode(t, r, http.StatusBadRequest) // rotated: the old refresh token works once
	time.Sleep(350 * time.Millisecond)
	if resp := postMCP(t, s, tok["access_token"].(string)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("expired token: %d", resp.StatusCode)
	}
	r, _ = token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok2["refresh_token"].(string)}, "client_id": {clientID}})
	tok3 := decode(t, r, http.StatusOK)
	if resp := postMCP(t, s, tok3["access_token"].(string)); resp.StatusCode != http.StatusOK {
		t.Fatalf("refreshed token: %d", resp.StatusCode)
	}
	r, _ = http.Get(s.URL + StatsPath)
	st := decode(t, r, http.StatusOK)
	if st["registrations"] != 1.0 || st["codeGrants"] != 1.0 || st["refreshGrants"] != 2.0 || st["badGrants"] != 2.0 || st["refused"] != 3.0 {
		t.Fatalf("stats: %v (%+v)", st, as.Stats())
	}
}

func TestIdleStreamSendsOneEventAndWaits(t *testing.T) {
	s := httptest.NewServer(&Handler{})
	defer s.Close()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/mcp", strings.NewReader(ToolsCall))
	req.Header.Set(StreamHeader, "idle")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len(IdleEvent))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != IdleEvent || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("first event %q, %v, %q", buf, err, resp.Header.Get("Content-Type"))
	}
	done := make(chan error, 1)
	go func() { _, err := resp.Body.Read(make([]byte, 1)); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("the idle stream sent more or ended: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
}

// Every project the harness runs loads and validates as mcpgate serve loads it.
func TestGatewayProjectsLoad(t *testing.T) {
	for name, p := range map[string]GatewayProject{
		"plain":        {Upstream: "http://127.0.0.1:1/mcp"},
		"static":       StaticKeyProject("http://127.0.0.1:1/mcp", "k"),
		"apikey-oauth": APIKeyOAuthProject("http://127.0.0.1:1/mcp"),
		"signin-oauth": SignInOAuthProject("http://127.0.0.1:1/mcp", 86400),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := p.Write(dir); err != nil {
				t.Fatal(err)
			}
			proj, err := config.Load(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(proj.Routes) != 1 || proj.Routes[0].Path != "/mcp" {
				t.Fatalf("routes: %+v", proj.Routes)
			}
		})
	}
}
