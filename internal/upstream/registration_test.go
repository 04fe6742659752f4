package upstream

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/mcpgate/mcpgate/internal/vault"
)

// tokenCapture records what a fake token endpoint received and answers with a configurable reply.
type tokenCapture struct {
	mu     sync.Mutex
	forms  []url.Values
	auths  []string
	status int
	body   string
	header http.Header
}

func (c *tokenCapture) handler(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	c.mu.Lock()
	c.forms = append(c.forms, r.PostForm)
	c.auths = append(c.auths, r.Header.Get("Authorization"))
	status, body, h := c.status, c.body, c.header
	c.mu.Unlock()
	for k, vs := range h {
		w.Header()[k] = vs
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (c *tokenCapture) last() (url.Values, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.forms) == 0 {
		return nil, ""
	}
	return c.forms[len(c.forms)-1], c.auths[len(c.auths)-1]
}

func (c *tokenCapture) reply(status int, body string, header http.Header) {
	c.mu.Lock()
	c.status, c.body, c.header = status, body, header
	c.mu.Unlock()
}

func (c *tokenCapture) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.forms)
}

const goodTokenReply = `{"access_token":"AT-1","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-1","scope":"mcp:read offline_access"}`

func TestRegistration_FakeAS_ManualAuthMethods(t *testing.T) {
	basic := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
	}
	for _, tc := range []struct {
		name       string
		cfg        RegistrationConfig
		wantMethod string
		wantAuth   string
		wantForm   map[string]string // "" value: must be absent
	}{
		{"basic explicit", RegistrationConfig{Mode: ModeManual, ClientID: "cli:ent", ClientSecret: "s3cr&t", TokenEndpointAuthMethod: AuthBasic},
			AuthBasic, basic("cli:ent", "s3cr&t"), map[string]string{"client_id": "", "client_secret": ""}},
		{"basic by default with a secret", RegistrationConfig{ClientID: "cid", ClientSecret: "sec"},
			AuthBasic, basic("cid", "sec"), map[string]string{"client_secret": ""}},
		{"post", RegistrationConfig{Mode: ModeManual, ClientID: "cid", ClientSecret: "sec", TokenEndpointAuthMethod: AuthPost},
			AuthPost, "", map[string]string{"client_id": "cid", "client_secret": "sec"}},
		{"none", RegistrationConfig{Mode: ModeManual, ClientID: "cid", TokenEndpointAuthMethod: AuthNone},
			AuthNone, "", map[string]string{"client_id": "cid", "client_secret": ""}},
		{"none by default without a secret", RegistrationConfig{Mode: ModeManual, ClientID: "cid"},
			AuthNone, "", map[string]string{"client_id": "cid", "client_secret": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeEnv(t)
			f.standard()
			tc2 := &tokenCapture{body: goodTokenReply}
			f.mux.HandleFunc("/token", tc2.handler)
			e := f.engine()
			up := f.upstream()
			up.Registration = tc.cfg
			ctx := context.Background()
			d := discover(t, e, up, "")
			c, err := e.Client(ctx, up, d, httpsEndpoints, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.Method != ModeManual || c.AuthMethod != tc.wantMethod || c.ClientID != tc.cfg.ClientID {
				t.Fatalf("client %+v", c)
			}
			if f.hit("/register") != 0 {
				t.Error("manual registration called the registration endpoint")
			}
			tok, issued, err := e.Exchange(ctx, up, ExchangeRequest{Code: "CODE-1", Verifier: "VERIFIER-1", Client: *c, TokenEndpoint: d.AS.TokenEndpoint, Resource: d.Resource})
			if err != nil {
				t.Fatal(err)
			}
			form, auth := tc2.last()
			if auth != tc.wantAuth {
				t.Errorf("Authorization %q, want %q", auth, tc.wantAuth)
			}
			for k, v := range tc.wantForm {
				if got, has := form[k]; (v == "" && has) || (v != "" && (len(got) != 1 || got[0] != v)) {
					t.Errorf("form %s = %q, want %q", k, got, v)
				}
			}
			for k, v := range map[string]string{"grant_type": "authorization_code", "code": "CODE-1", "code_verifier": "VERIFIER-1",
				"redirect_uri": "https://gw.example.com/__mcpgate/auth/connections/linear/callback", "resource": f.base + "/mcp"} {
				if form.Get(k) != v {
					t.Errorf("form %s = %q, want %q", k, form.Get(k), v)
				}
			}
			if tok.AccessToken.Reveal() != "AT-1" || tok.RefreshToken.Reveal() != "RT-1" || tok.Expiry.IsZero() {
				t.Errorf("token %+v", tok)
			}
			want := IssuedUnder{Issuer: f.base, TokenEndpoint: f.base + "/token", ClientID: tc.cfg.ClientID, AuthMethod: tc.wantMethod, Resource: f.base + "/mcp"}
			if issued != want {
				t.Errorf("issued %+v, want %+v", issued, want)
			}
		})
	}
}

func TestRegistration_ManualInvalid(t *testing.T) {
	d := &Discovery{AS: AuthServer{Issuer: "https://as"}}
	e := New(Options{})
	for _, tc := range []struct {
		cfg  RegistrationConfig
		want string
	}{
		{RegistrationConfig{Mode: ModeManual}, "needs clientId"},
		{RegistrationConfig{Mode: ModeManual, ClientID: "c", TokenEndpointAuthMethod: AuthPost}, "needs clientSecret"},
		{RegistrationConfig{Mode: ModeManual, ClientID: "c", TokenEndpointAuthMethod: "private_key_jwt"}, "must be one of"},
		{RegistrationConfig{Mode: "oauth"}, "mode must be one of"},
	} {
		_, err := e.Client(context.Background(), Upstream{ID: "x", Registration: tc.cfg}, d, httpsEndpoints, nil)
		ue := wantCode(t, err, CodeInvalidOption, BucketGatewayConfig)
		if !strings.Contains(ue.Reason, tc.want) {
			t.Errorf("%+v: reason %q, want %q", tc.cfg, ue.Reason, tc.want)
		}
	}
}

// hydraLikeDCR answers like Ory Hydra v2: 201 with an object-valued jwks, a client_secret, and an
// auth method other than the one asked for.
func hydraLikeDCR(t *testing.T, got *[]map[string]any, mu *sync.Mutex, n *int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("registration body: %v", err)
		}
		mu.Lock()
		*got = append(*got, body)
		*n++
		id := fmt.Sprintf("client-%d", *n)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, `{"client_id":%q,"client_secret":"dcr-secret","client_secret_expires_at":0,"client_id_issued_at":1700000000,
			"jwks":{"keys":[]},"token_endpoint_auth_method":"client_secret_basic","grant_types":["authorization_code","refresh_token"],
			"registration_access_token":"ory_at_xyz","metadata":{},"skip_consent":false,"created_at":"2026-01-01T00:00:00Z"}`, id)
	}
}

func TestRegistration_FakeAS_DCRHydraLikeReply(t *testing.T) {
	f := newFakeEnv(t)
	f.standard()
	var mu sync.Mutex
	var bodies []map[string]any
	n := 0
	f.mux.HandleFunc("/register", hydraLikeDCR(t, &bodies, &mu, &n))
	e := f.engine()
	up := f.upstream()
	up.Registration = RegistrationConfig{Mode: ModeDCR}
	ctx := context.Background()
	d := discover(t, e, up, "")
	scopes := []string{"mcp:read", "offline_access"}
	c, err := e.Client(ctx, up, d, httpsEndpoints, scopes)
	if err != nil {
		t.Fatal(err)
	}
	if c.Method != ModeDCR || c.ClientID != "client-1" || c.ClientSecret.Reveal() != "dcr-secret" || c.AuthMethod != AuthBasic {
		t.Fatalf("client %+v", c)
	}
	want := map[string]any{
		"redirect_uris":              []any{"https://gw.example.com/__mcpgate/auth/connections/linear/callback"},
		"grant_types":                []any{"authorization_code", "refresh_token"},
		"response_types":             []any{"code"},
		"token_endpoint_auth_method": "none",
		"client_name":                "mcpgate (Linear)",
		"client_uri":                 "https://gw.example.com",
		"application_type":           "web",
		// The requested scopes, then every scope the resource advertises (for later step-ups).
		"scope": "mcp:read offline_access mcp:write",
	}
	if !reflect.DeepEqual(bodies[0], want) {
		t.Errorf("registration body\n got  %v\n want %v", bodies[0], want)
	}
	// Cached per (issuer, upstream, redirect URI): no second registration, even concurrently.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if c2, err := e.Client(ctx, up, d, httpsEndpoints, scopes); err != nil || c2.ClientID != "client-1" {
				t.Errorf("cached client %+v, %v", c2, err)
			}
		})
	}
	wg.Wait()
	if f.hit("/register") != 1 {
		t.Errorf("registrations %d, want 1", f.hit("/register"))
	}
	// Another redirect URI (public URL) is another registration.
	other := Endpoints{PublicURL: "https://gw2.example.com", BasePath: "/__mcpgate"}
	if c3, err := e.Client(ctx, up, d, other, scopes); err != nil || c3.ClientID != "client-2" {
		t.Errorf("client for another redirect URI %+v, %v", c3, err)
	}
}

func TestRegistration_FakeAS_DCRRejected(t *testing.T) {
	f := newFakeEnv(t)
	f.standard()
	f.mux.HandleFunc("/register", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_redirect_uri","error_description":"redirect_uri must be https"}`)
	})
	e := f.engine()
	up := f.upstream()
	d := discover(t, e, up, "")
	_, err := e.Client(context.Background(), up, d, httpsEndpoints, nil)
	ue := wantCode(t, err, CodeRegistrationRejected, BucketOAuthSetup)
	if ue.OAuthError != "invalid_redirect_uri" || !strings.Contains(ue.Reason, "redirect_uri must be https") {
		t.Errorf("error %+v", ue)
	}
}

func TestRegistration_FakeAS_CIMD(t *testing.T) {
	f := newFakeEnv(t)
	f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", f.base)
	f.json("/.well-known/oauth-authorization-server", f.asDoc(f.base, func(m map[string]any) { m["client_id_metadata_document_supported"] = true }))
	var mu sync.Mutex
	var bodies []map[string]any
	n := 0
	f.mux.HandleFunc("/register", hydraLikeDCR(t, &bodies, &mu, &n))
	e := f.engine()
	up := f.upstream()
	ctx := context.Background()
	d := discover(t, e, up, "")

	// auto + https public URL + AS support → CIMD; no registration call.
	c, err := e.Client(ctx, up, d, httpsEndpoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantID := "https://gw.example.com/__mcpgate/.well-known/oauth-client/linear"
	if c.Method != ModeCIMD || c.ClientID != wantID || c.AuthMethod != AuthNone {
		t.Fatalf("client %+v", c)
	}
	doc, err := e.ClientMetadataDocument(up, httpsEndpoints)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	if m["client_id"] != wantID || m["token_endpoint_auth_method"] != "none" || m["client_name"] != "mcpgate (Linear)" ||
		!reflect.DeepEqual(m["redirect_uris"], []any{"https://gw.example.com/__mcpgate/auth/connections/linear/callback"}) ||
		!reflect.DeepEqual(m["grant_types"], []any{"authorization_code", "refresh_token"}) {
		t.Errorf("document %s", doc)
	}

	// auto + http public URL → DCR.
	plain := Endpoints{PublicURL: "http://localhost:8080", BasePath: "/__mcpgate"}
	if c, err := e.Client(ctx, up, d, plain, nil); err != nil || c.Method != ModeDCR {
		t.Errorf("auto over http: %+v, %v", c, err)
	}
	// explicit cimd over http → gateway configuration error; the document is refused too.
	up.Registration.Mode = ModeCIMD
	_, err = e.Client(ctx, up, d, plain, nil)
	wantCode(t, err, CodeCIMDRequiresHTTPS, BucketGatewayConfig)
	_, err = e.ClientMetadataDocument(up, plain)
	wantCode(t, err, CodeCIMDRequiresHTTPS, BucketGatewayConfig)
}

func TestRegistration_FakeAS_NoRegistrationPossible(t *testing.T) {
	f := newFakeEnv(t)
	f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", f.base)
	f.json("/.well-known/oauth-authorization-server", f.asDoc(f.base, func(m map[string]any) { delete(m, "registration_endpoint") }))
	e := f.engine()
	up := f.upstream()
	d := discover(t, e, up, "")
	_, err := e.Client(context.Background(), up, d, httpsEndpoints, nil)
	ue := wantCode(t, err, CodeRegistrationMissing, BucketGatewayConfig)
	if !strings.Contains(ue.Reason, "manual") {
		t.Errorf("reason %q should say what to configure", ue.Reason)
	}
}

func TestRegistration_FakeAS_InvalidClientReregistersOnce(t *testing.T) {
	f := newFakeEnv(t)
	f.standard()
	var mu sync.Mutex
	var bodies []map[string]any
	n := 0
	f.mux.HandleFunc("/register", hydraLikeDCR(t, &bodies, &mu, &n))
	tc := &tokenCapture{status: http.StatusUnauthorized, body: `{"error":"invalid_client","error_description":"client not found"}`}
	f.mux.HandleFunc("/token", tc.handler)
	e := f.engine()
	up := f.upstream()
	ctx := context.Background()
	d := discover(t, e, up, "")
	exchange := func() error {
		t.Helper()
		d, err := e.Discover(ctx, up, "")
		if err != nil {
			t.Fatal(err)
		}
		c, err := e.Client(ctx, up, d, httpsEndpoints, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = e.Exchange(ctx, up, ExchangeRequest{Code: "c", Verifier: "v", Client: *c, TokenEndpoint: d.AS.TokenEndpoint, Resource: d.Resource})
		return err
	}
	_ = d

	err := exchange() // registers client-1, rejected: dropped (with discovery)
	ue := wantCode(t, err, CodeClientRejected, BucketOAuthSetup)
	if !IsClientRejected(err) || IsGrantDead(err) || isTransient(err) || !strings.Contains(ue.Reason, "registers again") {
		t.Errorf("classification of %v", err)
	}
	if f.hit("/.well-known/oauth-protected-resource/mcp") != 1 {
		t.Fatal("setup")
	}
	err = exchange() // rediscovers, registers client-2, rejected again: reported, not dropped
	wantCode(t, err, CodeRegistrationRejected, BucketOAuthSetup)
	if f.hit("/register") != 2 || f.hit("/.well-known/oauth-protected-resource/mcp") != 2 {
		t.Errorf("registrations %d, discoveries %d; want 2, 2", f.hit("/register"), f.hit("/.well-known/oauth-protected-resource/mcp"))
	}
	// A caller still holding the first (already dropped) client is told so, without counting as a
	// second rejection.
	_, _, err = e.Exchange(ctx, up, ExchangeRequest{Code: "c", Verifier: "v", Client: Client{Method: ModeDCR, ClientID: "client-1", AuthMethod: AuthNone}, TokenEndpoint: f.base + "/token"})
	wantCode(t, err, CodeClientRejected, BucketOAuthSetup)
	_ = exchange() // the second registration is kept: no third
	if f.hit("/register") != 2 {
		t.Errorf("registrations %d, want 2 (re-register once, no loop)", f.hit("/register"))
	}
	if tc.calls() != 4 {
		t.Errorf("token calls %d", tc.calls())
	}
}

func TestRegistration_ManualInvalidClientNotDropped(t *testing.T) {
	f := newFakeEnv(t)
	f.standard()
	tc := &tokenCapture{status: http.StatusUnauthorized, body: `{"error":"invalid_client"}`}
	f.mux.HandleFunc("/token", tc.handler)
	e := f.engine()
	up := f.upstream()
	up.Registration = RegistrationConfig{Mode: ModeManual, ClientID: "cid", ClientSecret: "sec"}
	_, err := e.Refresh(context.Background(), up, RefreshRequest{IssuedUnder: IssuedUnder{TokenEndpoint: f.base + "/token", ClientID: "cid", AuthMethod: AuthBasic},
		ClientSecret: "sec", RefreshToken: vault.Secret("RT")})
	ue := wantCode(t, err, CodeClientRejected, BucketOAuthSetup)
	if !strings.Contains(ue.Reason, "clientSecret") {
		t.Errorf("reason %q", ue.Reason)
	}
}
