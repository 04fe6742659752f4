package upstream

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	oldRT = "RT-OLD-do-not-leak"
	oldAT = "AT-OLD-do-not-leak"
)

func refreshEnv(t *testing.T, status int, body string, h http.Header) (*fakeEnv, *Engine, *tokenCapture, RefreshRequest) {
	t.Helper()
	f := newFakeEnv(t)
	f.standard()
	tc := &tokenCapture{status: status, body: body, header: h}
	f.mux.HandleFunc("/token", tc.handler)
	req := RefreshRequest{
		IssuedUnder:  IssuedUnder{Issuer: f.base, TokenEndpoint: f.base + "/token", ClientID: "client-1", AuthMethod: AuthPost, Resource: f.base + "/mcp"},
		ClientSecret: "client-secret-do-not-leak",
		RefreshToken: oldRT,
		Scopes:       []string{"mcp:read", "offline_access"},
	}
	return f, f.engine(), tc, req
}

// noSecrets fails when err's text carries a token or secret.
func noSecrets(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{oldRT, oldAT, "client-secret-do-not-leak", "AT-NEW"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error text carries a secret: %q", err.Error())
		}
	}
}

func TestRefresh_FakeAS_Success(t *testing.T) {
	t.Run("rotated, resource sent", func(t *testing.T) {
		f, e, tc, req := refreshEnv(t, 200, `{"access_token":"AT-NEW","token_type":"Bearer","expires_in":"120","refresh_token":"RT-NEW","scope":"mcp:read"}`, nil)
		before := time.Now()
		tok, err := e.Refresh(context.Background(), f.upstream(), req)
		if err != nil {
			t.Fatal(err)
		}
		form, auth := tc.last()
		want := map[string]string{"grant_type": "refresh_token", "refresh_token": oldRT, "resource": f.base + "/mcp", "client_id": "client-1", "client_secret": "client-secret-do-not-leak"}
		for k, v := range want {
			if form.Get(k) != v {
				t.Errorf("form %s = %q, want %q", k, form.Get(k), v)
			}
		}
		if len(form) != len(want) || auth != "" {
			t.Errorf("form %v auth %q: unexpected extras", form, auth)
		}
		if tok.AccessToken != "AT-NEW" || tok.RefreshToken != "RT-NEW" || !reflect.DeepEqual(tok.Scopes, []string{"mcp:read"}) {
			t.Errorf("token %#v", tok)
		}
		if d := tok.Expiry.Sub(before); d < 119*time.Second || d > 130*time.Second {
			t.Errorf("expiry in %v", d)
		}
	})
	t.Run("no refresh token in reply keeps the old one", func(t *testing.T) {
		f, e, _, req := refreshEnv(t, 200, `{"access_token":"AT-NEW","token_type":"Bearer"}`, nil)
		tok, err := e.Refresh(context.Background(), f.upstream(), req)
		if err != nil {
			t.Fatal(err)
		}
		if tok.RefreshToken != oldRT {
			t.Errorf("refresh token %q, want the old one kept", tok.RefreshToken.Reveal())
		}
		if !tok.Expiry.IsZero() {
			t.Errorf("expiry %v, want zero (unknown: refresh on 401)", tok.Expiry)
		}
		if !reflect.DeepEqual(tok.Scopes, req.Scopes) {
			t.Errorf("scopes %q, want the previously granted kept", tok.Scopes)
		}
	})
	t.Run("basic auth", func(t *testing.T) {
		f, e, tc, req := refreshEnv(t, 200, `{"access_token":"AT-NEW"}`, nil)
		req.AuthMethod = AuthBasic
		if _, err := e.Refresh(context.Background(), f.upstream(), req); err != nil {
			t.Fatal(err)
		}
		form, auth := tc.last()
		if !strings.HasPrefix(auth, "Basic ") || form.Has("client_secret") || form.Has("client_id") {
			t.Errorf("form %v auth %q", form, auth)
		}
	})
}

func TestRefresh_FakeAS_Classification(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		body        string
		header      http.Header
		code        string
		bucket      Bucket
		dead        bool
		transient   bool
		client      bool
		retryAfter  time.Duration
		oauthError  string
		keepsBodyCT string
	}{
		{name: "invalid_grant", status: 400, body: `{"error":"invalid_grant","error_description":"token was revoked"}`,
			code: CodeRefreshGrantInvalid, bucket: BucketUpstreamResponse, dead: true, oauthError: "invalid_grant"},
		{name: "400 invalid_request (Obot-style for a dead token)", status: 400, body: `{"error":"invalid_request"}`,
			code: CodeRefreshGrantInvalid, bucket: BucketUpstreamResponse, dead: true, oauthError: "invalid_request"},
		{name: "401 without body", status: 401, body: ``,
			code: CodeRefreshGrantInvalid, bucket: BucketUpstreamResponse, dead: true},
		{name: "invalid_client", status: 401, body: `{"error":"invalid_client"}`,
			code: CodeClientRejected, bucket: BucketOAuthSetup, client: true, oauthError: "invalid_client"},
		{name: "invalid_client as 400", status: 400, body: `{"error":"invalid_client"}`,
			code: CodeClientRejected, bucket: BucketOAuthSetup, client: true, oauthError: "invalid_client"},
		{name: "503 with Retry-After", status: 503, body: `<html><body>maintenance</body></html>`, header: http.Header{"Retry-After": {"7"}, "Content-Type": {"text/html"}},
			code: CodeRefreshTransient, bucket: BucketUpstreamResponse, transient: true, retryAfter: 7 * time.Second, keepsBodyCT: "text/html"},
		{name: "429", status: 429, body: `{"error":"slow_down"}`, header: http.Header{"Retry-After": {"2"}},
			code: CodeRefreshTransient, bucket: BucketUpstreamResponse, transient: true, retryAfter: 2 * time.Second, oauthError: "slow_down"},
		{name: "408", status: 408, code: CodeRefreshTransient, bucket: BucketUpstreamResponse, transient: true},
		{name: "403 firewall page", status: 403, body: `<html>Access Denied</html>`, header: http.Header{"Content-Type": {"text/html; charset=utf-8"}},
			code: CodeRefreshFailed, bucket: BucketUpstreamResponse, keepsBodyCT: "text/html"},
		{name: "404 token endpoint gone", status: 404, code: CodeTokenEndpointNotFound, bucket: BucketOAuthSetup},
		{name: "200 without access_token", status: 200, body: `{"refresh_token":"RT-NEW"}`, code: CodeTokenResponseInvalid, bucket: BucketUpstreamResponse},
		{name: "200 not JSON", status: 200, body: `access_token=AT-NEW`, code: CodeTokenResponseInvalid, bucket: BucketUpstreamResponse},
		{name: "200 DPoP token", status: 200, body: `{"access_token":"AT-NEW","token_type":"DPoP"}`, code: CodeTokenResponseInvalid, bucket: BucketUpstreamResponse},
		{name: "200 negative expires_in", status: 200, body: `{"access_token":"AT-NEW","expires_in":-5}`, code: CodeTokenResponseInvalid, bucket: BucketUpstreamResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, e, _, req := refreshEnv(t, tc.status, tc.body, tc.header)
			_, err := e.Refresh(context.Background(), f.upstream(), req)
			ue := wantCode(t, err, tc.code, tc.bucket)
			if IsGrantDead(err) != tc.dead || isTransient(err) != tc.transient || IsClientRejected(err) != tc.client {
				t.Errorf("dead %v transient %v client %v", IsGrantDead(err), isTransient(err), IsClientRejected(err))
			}
			if ue.RetryAfter != tc.retryAfter || ue.OAuthError != tc.oauthError {
				t.Errorf("retryAfter %v oauthError %q", ue.RetryAfter, ue.OAuthError)
			}
			if tc.status != 200 && ue.HTTPStatus != tc.status {
				t.Errorf("status %d", ue.HTTPStatus)
			}
			if tc.keepsBodyCT != "" && (ue.UpstreamContentType != tc.keepsBodyCT || ue.UpstreamBody != tc.body) {
				t.Errorf("upstream body %q (%s)", ue.UpstreamBody, ue.UpstreamContentType)
			}
			if tc.status == 200 && ue.UpstreamBody != "" {
				t.Error("a 2xx token reply body was kept on the error")
			}
			if ue.URL != f.base+"/token" {
				t.Errorf("url %q", ue.URL)
			}
			noSecrets(t, err)
		})
	}
}

func TestRefresh_FakeAS_404InvalidatesDiscovery(t *testing.T) {
	f, e, _, req := refreshEnv(t, 404, ``, nil)
	up := f.upstream()
	discover(t, e, up, "")
	if _, err := e.Refresh(context.Background(), up, req); CodeOf(err) != CodeTokenEndpointNotFound {
		t.Fatalf("err %v", err)
	}
	discover(t, e, up, "")
	if n := f.hit("/.well-known/oauth-protected-resource/mcp"); n != 2 {
		t.Errorf("PRM fetched %d times, want 2 (the 404 drops cached discovery)", n)
	}
}

func TestRefresh_FakeAS_Timeout(t *testing.T) {
	f := newFakeEnv(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f.mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	e := f.engine(func(o *Options) { o.HTTPTimeout = 300 * time.Millisecond })
	_, err := e.Refresh(context.Background(), f.upstream(), RefreshRequest{
		IssuedUnder: IssuedUnder{TokenEndpoint: f.base + "/token", ClientID: "c", AuthMethod: AuthNone}, RefreshToken: oldRT})
	wantCode(t, err, CodeRefreshTransient, BucketUpstreamResponse)
	if !isTransient(err) || IsGrantDead(err) {
		t.Errorf("classification of %v", err)
	}
	noSecrets(t, err)

	// The caller's deadline counts the same.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = f.engine().Refresh(ctx, f.upstream(), RefreshRequest{
		IssuedUnder: IssuedUnder{TokenEndpoint: f.base + "/token", ClientID: "c", AuthMethod: AuthNone}, RefreshToken: oldRT})
	if !isTransient(err) {
		t.Errorf("err %v", err)
	}
}

// A reset connection is what a crashing token endpoint produces; a real AS cannot be made to do it
// on demand, hence the hijacking fake.
func TestRefresh_FakeAS_ConnectionReset(t *testing.T) {
	f := newFakeEnv(t)
	f.mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		if tcp, ok := conn.(interface{ SetLinger(int) error }); ok {
			_ = tcp.SetLinger(0) // RST instead of FIN
		}
		_ = conn.Close()
	})
	_, err := f.engine().Refresh(context.Background(), f.upstream(), RefreshRequest{
		IssuedUnder: IssuedUnder{TokenEndpoint: f.base + "/token", ClientID: "c", AuthMethod: AuthNone}, RefreshToken: oldRT})
	wantCode(t, err, CodeRefreshTransient, BucketUpstreamResponse)
	noSecrets(t, err)
}

func TestRefresh_NoRefreshToken(t *testing.T) {
	_, err := New(Options{}).Refresh(context.Background(), Upstream{}, RefreshRequest{})
	if !IsGrantDead(err) {
		t.Errorf("err %v", err)
	}
}

func TestExchange_FakeAS_Failures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		code   string
		bucket Bucket
	}{
		{"invalid_grant (code reused)", 400, `{"error":"invalid_grant"}`, CodeTokenExchangeFailed, BucketUpstreamResponse},
		{"5xx", 502, `bad gateway`, CodeTokenTransient, BucketUpstreamResponse},
		{"missing access token", 200, `{"token_type":"Bearer"}`, CodeTokenResponseInvalid, BucketUpstreamResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeEnv(t)
			capt := &tokenCapture{status: tc.status, body: tc.body}
			f.mux.HandleFunc("/token", capt.handler)
			_, _, err := f.engine().Exchange(context.Background(), f.upstream(), ExchangeRequest{Code: "THE-CODE", Verifier: "THE-VERIFIER",
				Client: Client{ClientID: "c", AuthMethod: AuthNone, RedirectURI: "https://gw/cb"}, TokenEndpoint: f.base + "/token"})
			wantCode(t, err, tc.code, tc.bucket)
			if strings.Contains(err.Error(), "THE-CODE") || strings.Contains(err.Error(), "THE-VERIFIER") {
				t.Errorf("error carries the code or verifier: %v", err)
			}
		})
	}
}

func TestRevoke_FakeAS(t *testing.T) {
	f := newFakeEnv(t)
	capt := &tokenCapture{status: 200}
	f.mux.HandleFunc("/revoke", capt.handler)
	e := f.engine()
	err := e.Revoke(context.Background(), f.upstream(), RevokeRequest{Endpoint: f.base + "/revoke", ClientID: "c", ClientSecret: "s", AuthMethod: AuthBasic, Token: oldRT, TokenTypeHint: "refresh_token"})
	if err != nil {
		t.Fatal(err)
	}
	form, auth := capt.last()
	if form.Get("token") != oldRT || form.Get("token_type_hint") != "refresh_token" || !strings.HasPrefix(auth, "Basic ") {
		t.Errorf("form %v auth %q", form, auth)
	}
	capt.reply(503, "", http.Header{"Retry-After": {"3"}})
	err = e.Revoke(context.Background(), f.upstream(), RevokeRequest{Endpoint: f.base + "/revoke", ClientID: "c", AuthMethod: AuthNone, Token: oldRT})
	if !isTransient(err) {
		t.Errorf("err %v", err)
	}
	noSecrets(t, err)
}

func TestIssuedUnderMatches(t *testing.T) {
	g := IssuedUnder{Issuer: "https://as", Resource: "https://h/mcp"}
	if !g.Matches(&Discovery{Resource: "https://h/mcp", AS: AuthServer{Issuer: "https://as"}}) {
		t.Error("same issuer and resource should match")
	}
	for _, d := range []*Discovery{nil, {Resource: "https://h/other", AS: AuthServer{Issuer: "https://as"}}, {Resource: "https://h/mcp", AS: AuthServer{Issuer: "https://as2"}}} {
		if g.Matches(d) {
			t.Errorf("%+v should not match", d)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"30":                            30 * time.Second,
		"-1":                            0,
		"soon":                          0,
		"Thu, 01 Jan 2026 12:01:00 GMT": time.Minute,
		"Thu, 01 Jan 2026 11:00:00 GMT": 0,
	} {
		if got := retryAfter(http.Header{"Retry-After": {v}}, now); got != want {
			t.Errorf("Retry-After %q = %v, want %v", v, got, want)
		}
	}
}

func TestBounded(t *testing.T) {
	if got := bounded("héllo", 2); got != "h…" {
		t.Errorf("bounded = %q", got)
	}
	if got := bounded("abc", 3); got != "abc" {
		t.Errorf("bounded = %q", got)
	}
}
