package hydra_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	redirectURI = "http://127.0.0.1:9/callback" // never requested
	resourceURL = "http://127.0.0.1:8080/mcp/linear"
	testState   = "state-0123456789"
)

// TestHydraAuthorizationCodeFlow runs the flow an MCP client runs against
// Hydra: DCR of a public client, authorization code with PKCE S256, code
// exchange, refresh with rotation, JWT access token checks, counting.
func TestHydraAuthorizationCodeFlow(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, hydra.Options{JWTAccessTokens: true})
	t.Logf("hydra ready in %s at %s", h.StartDuration, h.PublicURL)
	ctx := t.Context()

	// Discovery: OpenID only, registration endpoint advertised.
	var disco map[string]any
	getJSON(t, h.DiscoveryURL(), &disco)
	if disco["issuer"] != h.Issuer() || h.Issuer() != h.PublicURL {
		t.Fatalf("issuer = %v, Issuer() = %s, PublicURL = %s", disco["issuer"], h.Issuer(), h.PublicURL)
	}
	if disco["registration_endpoint"] != h.RegisterURL() {
		t.Fatalf("registration_endpoint = %v, want %s", disco["registration_endpoint"], h.RegisterURL())
	}
	if status := getStatus(t, h.PublicURL+"/.well-known/oauth-authorization-server"); status != http.StatusNotFound {
		t.Fatalf("RFC 8414 metadata: status %d, want 404 (Hydra has none)", status)
	}

	// DCR of a public client.
	reg := map[string]any{
		"client_name":                "mcp test client",
		"redirect_uris":              []string{redirectURI},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
		"scope":                      "mcp offline_access",
	}
	var regReply map[string]json.RawMessage
	postJSON(t, h.RegisterURL(), reg, http.StatusCreated, &regReply)
	if jwks := regReply["jwks"]; !bytes.HasPrefix(jwks, []byte("{")) {
		t.Errorf("DCR reply jwks = %s; the Hydra quirk clients must tolerate is an object", jwks)
	}
	var clientID, method string
	mustUnmarshal(t, regReply["client_id"], &clientID)
	mustUnmarshal(t, regReply["token_endpoint_auth_method"], &method)
	if method != "none" {
		t.Fatalf("token_endpoint_auth_method = %q, want none", method)
	}
	if _, ok := regReply["client_secret"]; ok {
		t.Errorf("public client got a client_secret")
	}

	// Authorization code with PKCE S256, logged in as bob.
	cfg := h.OAuth2Config(hydra.Client{ID: clientID, TokenEndpointAuthMethod: "none"}, redirectURI, "mcp", "offline_access")
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL(testState, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resourceURL))
	back := h.AuthorizeHeadless(t, authURL, "bob")
	if got := back.Scheme + "://" + back.Host + back.Path; got != redirectURI {
		t.Fatalf("redirected to %s, want %s", back, redirectURI)
	}
	if back.Query().Get("state") != testState || back.Query().Get("code") == "" {
		t.Fatalf("redirect query = %v, want state and code", back.Query())
	}
	if iss := back.Query().Get("iss"); iss != "" && iss != h.Issuer() {
		t.Errorf("RFC 9207 iss = %q, want %q", iss, h.Issuer())
	}

	// A wrong verifier is refused, the right one works.
	if _, err := cfg.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("exchange with a wrong verifier: %v, want invalid_grant", err)
	}
	back = h.AuthorizeHeadless(t, cfg.AuthCodeURL(testState, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resourceURL)), "bob")
	tok, err := cfg.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchanging code: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token despite offline_access")
	}

	// The JWT access token verifies against Hydra's JWKS and carries the
	// subject and the resource as audience.
	claims := verifyJWT(t, h, tok.AccessToken)
	if sub, _ := claims.Subject(); sub != "bob" {
		t.Errorf("sub = %q, want bob", sub)
	}
	if aud, _ := claims.Audience(); !slices.Contains(aud, resourceURL) {
		t.Errorf("aud = %v, want it to contain %s", aud, resourceURL)
	}
	in := h.Introspect(t, tok.AccessToken)
	if !in.Active || in.Subject != "bob" || in.ClientID != clientID || !slices.Contains(in.Audience, resourceURL) {
		t.Errorf("introspection = %+v", in)
	}

	// Refresh rotates the refresh token; the old one is then invalid_grant.
	rt1 := tok.RefreshToken
	tok2, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt1}).Token()
	if err != nil {
		t.Fatalf("refreshing: %v", err)
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == rt1 {
		t.Fatalf("refresh token not rotated")
	}
	if aud, _ := verifyJWT(t, h, tok2.AccessToken).Audience(); !slices.Contains(aud, resourceURL) {
		t.Errorf("refreshed aud = %v, want it to contain %s", aud, resourceURL)
	}
	_, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt1}).Token()
	if code := oauthErrorCode(err); code != "invalid_grant" {
		t.Fatalf("reusing the rotated refresh token: %v, want invalid_grant", err)
	}
	// Reuse is treated as theft: Hydra revokes the whole grant.
	if in := h.Introspect(t, tok2.RefreshToken); in.Active {
		t.Errorf("refresh token after reuse detection still active: %+v", in)
	}

	if got := h.TokenCalls("authorization_code"); got != 2 {
		t.Errorf("TokenCalls(authorization_code) = %d, want 2", got)
	}
	if got := h.TokenCalls("refresh_token"); got != 2 {
		t.Errorf("TokenCalls(refresh_token) = %d, want 2", got)
	}
	if got := h.TokenErrors("refresh_token"); got != 1 {
		t.Errorf("TokenErrors(refresh_token) = %d, want 1", got)
	}
	if got := h.TokenCalls(""); got != 4 {
		t.Errorf("TokenCalls(\"\") = %d, want 4", got)
	}
}

// TestHydraClientCredentials gets a token for a confidential client, then
// deletes the client.
func TestHydraClientCredentials(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, hydra.Options{JWTAccessTokens: true, AccessTokenTTL: 90 * time.Second})
	const aud = "https://api.example.com/"
	c := h.CreateClient(t, hydra.ClientSpec{
		ID:         "machine",
		GrantTypes: []string{"client_credentials"},
		Scopes:     []string{"mcp"},
		Audience:   []string{aud},
	})
	if c.ID != "machine" || c.Secret == "" || c.TokenEndpointAuthMethod != "client_secret_basic" {
		t.Fatalf("client = %+v", c)
	}
	cc := clientcredentials.Config{
		ClientID: c.ID, ClientSecret: c.Secret, TokenURL: h.TokenURL(), Scopes: []string{"mcp"},
		EndpointParams: url.Values{"audience": {aud}},
	}
	tok, err := cc.Token(t.Context())
	if err != nil {
		t.Fatalf("client_credentials: %v", err)
	}
	if left := time.Until(tok.Expiry); left > 91*time.Second || left < 30*time.Second {
		t.Errorf("token expires in %s, want about 90s (AccessTokenTTL)", left)
	}
	claims := verifyJWT(t, h, tok.AccessToken)
	if sub, _ := claims.Subject(); sub != "machine" {
		t.Errorf("sub = %q, want machine", sub)
	}
	if got, _ := claims.Audience(); !slices.Equal(got, []string{aud}) {
		t.Errorf("aud = %v, want [%s]", got, aud)
	}
	if got := h.TokenCalls("client_credentials"); got != 1 {
		t.Errorf("TokenCalls(client_credentials) = %d, want 1", got)
	}

	h.DeleteClient(t, c.ID)
	if _, err := cc.Token(t.Context()); oauthErrorCode(err) != "invalid_client" {
		t.Fatalf("token for a deleted client: %v, want invalid_client", err)
	}
}

// TestHydraLoginConsent covers the login/consent app: choosing the subject,
// granted audience, denied consent, revoked consent.
func TestHydraLoginConsent(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, hydra.Options{Subject: "carol", GrantAudience: []string{"https://extra.example/"}})
	c := h.CreateClient(t, hydra.ClientSpec{RedirectURIs: []string{redirectURI}})
	cfg := h.OAuth2Config(c, redirectURI, "mcp", "offline_access")

	login := func(t *testing.T, subject string, opts ...oauth2.AuthCodeOption) *oauth2.Token {
		t.Helper()
		verifier := oauth2.GenerateVerifier()
		back := h.AuthorizeHeadless(t, cfg.AuthCodeURL(testState, append(opts, oauth2.S256ChallengeOption(verifier))...), subject)
		tok, err := cfg.Exchange(t.Context(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchanging code: %v", err)
		}
		return tok
	}
	subjectOf := func(t *testing.T, tok *oauth2.Token) string {
		t.Helper()
		return h.Introspect(t, tok.AccessToken).Subject
	}

	t.Run("subject", func(t *testing.T) {
		if got := subjectOf(t, login(t, "")); got != "carol" {
			t.Errorf("Options.Subject: got %q, want carol", got)
		}
		if got := subjectOf(t, login(t, "dave")); got != "dave" {
			t.Errorf("SubjectCookie: got %q, want dave", got)
		}
		if got := subjectOf(t, login(t, "dave", oauth2.SetAuthURLParam("login_hint", "erin"))); got != "erin" {
			t.Errorf("login_hint: got %q, want erin", got)
		}
		h.SetSubject("frank")
		defer h.SetSubject("")
		if got := subjectOf(t, login(t, "")); got != "frank" {
			t.Errorf("SetSubject: got %q, want frank", got)
		}
	})

	t.Run("audience", func(t *testing.T) {
		tok := login(t, "", oauth2.SetAuthURLParam("resource", resourceURL))
		in := h.Introspect(t, tok.AccessToken)
		want := []string{resourceURL, "https://extra.example/"}
		if !slices.Equal(in.Audience, want) {
			t.Errorf("aud = %v, want %v", in.Audience, want)
		}
		// The client was allowed the audience, so refresh keeps it.
		tok2, err := cfg.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("refreshing: %v", err)
		}
		if got := h.Introspect(t, tok2.AccessToken).Audience; !slices.Equal(got, want) {
			t.Errorf("refreshed aud = %v, want %v", got, want)
		}
	})

	t.Run("deny", func(t *testing.T) {
		h.SetDenyConsent(true)
		defer h.SetDenyConsent(false)
		back := h.AuthorizeHeadless(t, cfg.AuthCodeURL(testState, oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "")
		if got := back.Query().Get("error"); got != "access_denied" {
			t.Errorf("error = %q, want access_denied (%s)", got, back)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		tok := login(t, "grace")
		h.RevokeConsent(t, "grace")
		_, err := cfg.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if code := oauthErrorCode(err); code != "invalid_grant" {
			t.Fatalf("refresh after RevokeConsent: %v, want invalid_grant", err)
		}
		if h.Introspect(t, tok.AccessToken).Active {
			t.Errorf("access token still active after RevokeConsent")
		}
	})

	t.Run("short state refused", func(t *testing.T) {
		back := h.AuthorizeHeadless(t, cfg.AuthCodeURL("short", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "")
		if got := back.Query().Get("error"); got != "invalid_state" {
			t.Errorf("error = %q, want invalid_state", got)
		}
	})
}

// TestHydraTokenInterceptor injects a token-endpoint failure in the proxy.
func TestHydraTokenInterceptor(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, hydra.Options{})
	c := h.CreateClient(t, hydra.ClientSpec{GrantTypes: []string{"client_credentials"}, Scopes: []string{"mcp"}})
	// A fixed auth style: auto-detection retries a failed request.
	cc := clientcredentials.Config{ClientID: c.ID, ClientSecret: c.Secret, TokenURL: h.TokenURL(), Scopes: []string{"mcp"}, AuthStyle: oauth2.AuthStyleInHeader}

	h.SetTokenInterceptor(func(w http.ResponseWriter, r *http.Request, grant string) bool {
		if grant != "client_credentials" {
			return false
		}
		w.Header().Set("Retry-After", "1")
		http.Error(w, "injected", http.StatusServiceUnavailable)
		return true
	})
	var re *oauth2.RetrieveError
	if _, err := cc.Token(t.Context()); !errors.As(err, &re) || re.Response.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("token with interceptor: %v, want a 503", err)
	}
	// A connection reset: abort the handler.
	h.SetTokenInterceptor(func(http.ResponseWriter, *http.Request, string) bool {
		panic(http.ErrAbortHandler)
	})
	if _, err := cc.Token(t.Context()); err == nil || errors.As(err, &re) {
		t.Fatalf("token with a reset connection: %v, want a transport error", err)
	}
	// A hang: the request waits until the test releases it; other
	// requests are not held up meanwhile.
	release := make(chan struct{})
	h.SetTokenInterceptor(func(_ http.ResponseWriter, r *http.Request, _ string) bool {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return false
	})
	done := make(chan error, 1)
	go func() {
		_, err := cc.Token(t.Context())
		done <- err
	}()
	if status := getStatus(t, h.DiscoveryURL()); status != http.StatusOK {
		t.Fatalf("discovery during a hung token request: %d", status)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("released token request: %v", err)
	}
	h.SetTokenInterceptor(nil)
	if _, err := cc.Token(t.Context()); err != nil {
		t.Fatalf("token without interceptor: %v", err)
	}
	if calls, errs := h.TokenCalls("client_credentials"), h.TokenErrors("client_credentials"); calls != 4 || errs != 0 {
		t.Errorf("calls, errors = %d, %d; want 4, 0", calls, errs)
	}
	h.ResetTokenCalls()
	if got := h.TokenCalls(""); got != 0 {
		t.Errorf("after reset: %d", got)
	}
}

func verifyJWT(t *testing.T, h *hydra.Server, token string) jwt.Token {
	t.Helper()
	resp, err := http.Get(h.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		t.Fatalf("parsing JWKS: %v", err)
	}
	tok, err := jwt.Parse([]byte(token), jwt.WithKeySet(set), jwt.WithValidate(true), jwt.WithIssuer(h.Issuer()))
	if err != nil {
		t.Fatalf("verifying access token: %v", err)
	}
	return tok
}

func oauthErrorCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func getStatus(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func getJSON(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("decoding %s: %v", u, err)
	}
}

func postJSON(t *testing.T, u string, in any, want int, out any) {
	t.Helper()
	b, _ := json.Marshal(in)
	resp, err := http.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s: status %d, want %d: %s", u, resp.StatusCode, want, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("decoding %s: %v", strings.TrimSpace(string(body)), err)
	}
}

func mustUnmarshal(t *testing.T, raw json.RawMessage, out any) {
	t.Helper()
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
}

// TestHydraOptions checks short token lifetimes, PKCE enforcement, and
// concurrent authorizations of different subjects in one Hydra.
func TestHydraOptions(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, hydra.Options{
		AccessTokenTTL:  2 * time.Second,
		RefreshTokenTTL: 90 * time.Second,
		EnforcePKCE:     true,
		Scopes:          []string{"mcp", "tools:write"},
	})
	t.Logf("hydra ready in %s", h.StartDuration)
	c := h.CreateClient(t, hydra.ClientSpec{RedirectURIs: []string{redirectURI}})
	if !slices.Contains(c.Scopes, "tools:write") {
		t.Errorf("default client scopes %v lack Options.Scopes", c.Scopes)
	}
	cfg := h.OAuth2Config(c, redirectURI, "mcp", "tools:write", "offline_access")

	var disco struct {
		Scopes []string `json:"scopes_supported"`
	}
	getJSON(t, h.DiscoveryURL(), &disco)
	if !slices.Contains(disco.Scopes, "tools:write") {
		t.Errorf("scopes_supported = %v, want tools:write", disco.Scopes)
	}

	t.Run("pkce enforced", func(t *testing.T) {
		back := h.AuthorizeHeadless(t, cfg.AuthCodeURL(testState), "")
		if got := back.Query().Get("error"); got != "invalid_request" {
			t.Errorf("authorize without PKCE: error = %q, want invalid_request (%s)", got, back)
		}
	})

	t.Run("concurrent subjects and short lifetimes", func(t *testing.T) {
		const n = 8
		for _, r := range concurrentLogins(t, h, cfg, n) {
			in := h.Introspect(t, r.tok.AccessToken)
			// Hydra rounds exp to the second and truncates iat: TTL or TTL+1.
			if life := in.ExpiresAt - in.IssuedAt; life < 2 || life > 3 {
				t.Errorf("access token lifetime = %ds, want 2s", life)
			}
			if in.Scope != "mcp tools:write offline_access" {
				t.Errorf("scope = %q", in.Scope)
			}
			rt := h.Introspect(t, r.tok.RefreshToken)
			if life := rt.ExpiresAt - rt.IssuedAt; life < 90 || life > 91 {
				t.Errorf("refresh token lifetime = %ds, want 90s", life)
			}
		}
		if got := h.TokenCalls("authorization_code"); got != n {
			t.Errorf("TokenCalls(authorization_code) = %d, want %d", got, n)
		}
	})
}

// TestHydraPostgres runs Hydra on PostgreSQL, without the one-request-at-a-
// time gate, and checks that parallel logins and refreshes work.
func TestHydraPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	h := hydra.Start(t, hydra.Options{DSN: dsn, JWTAccessTokens: true})
	t.Logf("hydra on postgres: migrated in %s, ready in %s", h.MigrateDuration, h.StartDuration)
	c := h.CreateClient(t, hydra.ClientSpec{RedirectURIs: []string{redirectURI}})
	cfg := h.OAuth2Config(c, redirectURI, "mcp", "offline_access")
	const n = 8
	results := concurrentLogins(t, h, cfg, n)
	errs := make(chan error, len(results))
	for _, r := range results {
		go func() {
			_, err := cfg.TokenSource(t.Context(), &oauth2.Token{RefreshToken: r.tok.RefreshToken}).Token()
			errs <- err
		}()
	}
	for range results {
		if err := <-errs; err != nil {
			t.Errorf("parallel refresh: %v", err)
		}
	}
	if got := h.TokenCalls("refresh_token"); got != n {
		t.Errorf("TokenCalls(refresh_token) = %d, want %d", got, n)
	}
}

type login struct {
	sub string
	tok *oauth2.Token
}

// concurrentLogins logs n different subjects in at once and checks each
// token's subject.
func concurrentLogins(t *testing.T, h *hydra.Server, cfg *oauth2.Config, n int) []login {
	t.Helper()
	type result struct {
		login
		err error
	}
	results := make(chan result, n)
	for i := range n {
		sub := "user" + strconv.Itoa(i)
		go func() {
			verifier := oauth2.GenerateVerifier()
			back, err := h.AuthorizeHeadlessE(t.Context(), cfg.AuthCodeURL(testState, oauth2.S256ChallengeOption(verifier)), sub)
			if err != nil {
				results <- result{login: login{sub: sub}, err: err}
				return
			}
			tok, err := cfg.Exchange(t.Context(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
			results <- result{login: login{sub: sub, tok: tok}, err: err}
		}()
	}
	var out []login
	for range n {
		r := <-results
		if r.err != nil {
			t.Errorf("%s: %v", r.sub, r.err)
			continue
		}
		if in := h.Introspect(t, r.tok.AccessToken); in.Subject != r.sub {
			t.Errorf("token of %s has subject %q", r.sub, in.Subject)
		}
		out = append(out, r.login)
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// TestHydraGoSDKRegistrationQuirk pins the interop bug the gateway works
// around: go-sdk v1.8.0's oauthex decodes jwks as a string, and Hydra's DCR
// reply has "jwks": {}. When this test fails, go-sdk has been fixed and the
// workaround can go.
func TestHydraGoSDKRegistrationQuirk(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, hydra.Options{})
	meta := &oauthex.ClientRegistrationMetadata{RedirectURIs: []string{redirectURI}, TokenEndpointAuthMethod: "none"}
	_, err := oauthex.RegisterClient(t.Context(), h.RegisterURL(), meta, nil)
	if err == nil || !strings.Contains(err.Error(), "jwks") {
		t.Fatalf("oauthex.RegisterClient against Hydra: %v; want the jwks decoding error", err)
	}
}

// BenchmarkHydraRefresh measures one refresh_token round trip through the
// counting proxy (rotation included): the unit the refresh-storm benchmark
// compares against.
func BenchmarkHydraRefresh(b *testing.B) {
	h := hydra.Start(b, hydra.Options{JWTAccessTokens: true})
	c := h.CreateClient(b, hydra.ClientSpec{RedirectURIs: []string{redirectURI}})
	cfg := h.OAuth2Config(c, redirectURI, "mcp", "offline_access")
	verifier := oauth2.GenerateVerifier()
	back := h.AuthorizeHeadless(b, cfg.AuthCodeURL(testState, oauth2.S256ChallengeOption(verifier)), "")
	tok, err := cfg.Exchange(b.Context(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		b.Fatal(err)
	}
	rt := tok.RefreshToken
	for b.Loop() {
		tok, err := cfg.TokenSource(b.Context(), &oauth2.Token{RefreshToken: rt}).Token()
		if err != nil {
			b.Fatal(err)
		}
		rt = tok.RefreshToken
	}
}

// TestHydraSetClaims: SetClaims puts a subject's claims in its ID token (top level) and its JWT
// access token (under ext); other subjects get none, and nil maps remove them.
func TestHydraSetClaims(t *testing.T) {
	t.Parallel()
	h := hydra.Start(t, hydra.Options{JWTAccessTokens: true})
	c := h.CreateClient(t, hydra.ClientSpec{RedirectURIs: []string{redirectURI}})
	cfg := h.OAuth2Config(c, redirectURI, "openid", "mcp")
	h.SetClaims("root", map[string]any{"roles": []string{"admin"}}, map[string]any{"groups": []string{"ops"}})

	// claims logs subject in and returns the ext claims of its access token and the groups
	// claim of its ID token.
	claims := func(t *testing.T, subject string) (ext map[string]any, groups any) {
		t.Helper()
		verifier := oauth2.GenerateVerifier()
		back := h.AuthorizeHeadless(t, cfg.AuthCodeURL(testState, oauth2.S256ChallengeOption(verifier)), subject)
		tok, err := cfg.Exchange(t.Context(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchanging code: %v", err)
		}
		at := verifyJWT(t, h, tok.AccessToken)
		if err := at.Get("ext", &ext); err != nil && !errors.Is(err, jwt.ClaimNotFoundError()) {
			t.Fatalf("reading ext: %v", err)
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := jwt.ParseInsecure([]byte(raw))
		if err != nil {
			t.Fatalf("parsing ID token: %v", err)
		}
		_ = idt.Get("groups", &groups)
		return ext, groups
	}

	ext, groups := claims(t, "root")
	if roles, _ := json.Marshal(ext["roles"]); string(roles) != `["admin"]` {
		t.Errorf("root: access token ext = %v, want roles [admin]", ext)
	}
	if g, _ := json.Marshal(groups); string(g) != `["ops"]` {
		t.Errorf("root: ID token groups = %s, want [ops]", g)
	}
	if ext, groups := claims(t, "alice"); ext["roles"] != nil || groups != nil {
		t.Errorf("alice: ext %v, groups %v, want none", ext, groups)
	}
	h.SetClaims("root", nil, nil)
	if ext, groups := claims(t, "root"); ext["roles"] != nil || groups != nil {
		t.Errorf("root after SetClaims(nil, nil): ext %v, groups %v, want none", ext, groups)
	}
}
