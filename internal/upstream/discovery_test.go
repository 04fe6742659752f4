package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func steps(d *Discovery, phase string) []TraceStep {
	var out []TraceStep
	for _, s := range d.Trace {
		if s.Phase == phase {
			out = append(out, s)
		}
	}
	return out
}

func TestDiscovery_FakeAS_Standard(t *testing.T) {
	f := newFakeEnv(t)
	f.standard()
	d := discover(t, f.engine(), f.upstream(), "")
	if d.Resource != f.base+"/mcp" || d.PRMURL != f.base+"/.well-known/oauth-protected-resource/mcp" {
		t.Errorf("resource %q prm %q", d.Resource, d.PRMURL)
	}
	if d.AS.Issuer != f.base || d.AS.TokenEndpoint != f.base+"/token" || d.AS.MetadataURL != f.base+"/.well-known/oauth-authorization-server" {
		t.Errorf("as = %+v", d.AS)
	}
	if len(d.Trace) != 2 || d.Trace[0].Outcome != OutcomeFound || d.Trace[1].Source != "rfc8414" {
		t.Errorf("trace: %s", traceString(d))
	}
}

func TestDiscovery_FakeAS_PRMOnlyAtRoot(t *testing.T) {
	f := newFakeEnv(t)
	f.prm("/.well-known/oauth-protected-resource", f.base+"/mcp", f.base)
	f.json("/.well-known/oauth-authorization-server", f.asDoc(f.base))
	d := discover(t, f.engine(), f.upstream(), "")
	prm := steps(d, PhasePRM)
	if len(prm) != 2 || prm[0].Source != "path insertion" || prm[0].Outcome != OutcomeNotFound || prm[0].Status != 404 ||
		prm[1].Source != "root" || prm[1].Outcome != OutcomeFound {
		t.Fatalf("trace: %s", traceString(d))
	}
	if d.PRMURL != f.base+"/.well-known/oauth-protected-resource" {
		t.Errorf("prm url %q", d.PRMURL)
	}
}

func TestDiscovery_FakeAS_PRMViaChallengeOnly(t *testing.T) {
	f := newFakeEnv(t)
	f.prm("/meta/prm.json", f.base+"/mcp", f.base)
	f.json("/.well-known/oauth-authorization-server", f.asDoc(f.base))
	e := f.engine()
	d := discover(t, e, f.upstream(), f.base+"/meta/prm.json")
	if d.Trace[0].Source != "challenge" || d.Trace[0].Outcome != OutcomeFound || d.PRMURL != f.base+"/meta/prm.json" {
		t.Fatalf("trace: %s", traceString(d))
	}
	if f.hit("/.well-known/oauth-protected-resource/mcp") != 0 {
		t.Error("well-known PRM fetched although the challenge's worked")
	}
	// Without the challenge, the well-known URLs find nothing.
	_, err := e.Discover(context.Background(), f.upstream(), "")
	ue := wantCode(t, err, CodePRMNotFound, BucketOAuthSetup)
	if len(ue.Trace) != 2 || !strings.Contains(ue.Reason, "protectedResourceMetadataUrl") {
		t.Errorf("error %v trace %+v", ue, ue.Trace)
	}
}

func TestDiscovery_FakeAS_PRMViaOption(t *testing.T) {
	f := newFakeEnv(t)
	f.standard() // present, but the option must win
	f.prm("/custom", f.base+"/mcp", f.base)
	up := f.upstream()
	up.ProtectedResourceMetadataURL = f.base + "/custom"
	d := discover(t, f.engine(), up, f.base+"/ignored-challenge")
	if d.PRMURL != f.base+"/custom" || d.Trace[0].Source != "option" {
		t.Fatalf("trace: %s", traceString(d))
	}
	if n := f.hit("/.well-known/oauth-protected-resource/mcp") + f.hit("/ignored-challenge"); n != 0 {
		t.Errorf("%d fetches besides the option", n)
	}
	// The option alone: no fallback when it fails.
	up.ProtectedResourceMetadataURL = f.base + "/missing"
	_, err := f.engine().Discover(context.Background(), up, "")
	ue := wantCode(t, err, CodePRMNotFound, BucketOAuthSetup)
	if len(ue.Trace) != 1 {
		t.Errorf("trace %+v", ue.Trace)
	}
}

func TestDiscovery_FakeAS_RFC8414Only(t *testing.T) {
	f := newFakeEnv(t)
	issuer := f.base + "/tenant1"
	f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", issuer)
	f.json("/.well-known/oauth-authorization-server/tenant1", f.asDoc(issuer))
	d := discover(t, f.engine(), f.upstream(), "")
	if d.AS.Issuer != issuer || d.AS.MetadataURL != f.base+"/.well-known/oauth-authorization-server/tenant1" {
		t.Fatalf("as %+v trace %s", d.AS, traceString(d))
	}
	if as := steps(d, PhaseAS); len(as) != 1 || as[0].Source != "rfc8414 path insertion" {
		t.Errorf("trace: %s", traceString(d))
	}
}

func TestDiscovery_FakeAS_OIDCOnly(t *testing.T) {
	t.Run("path append", func(t *testing.T) {
		f := newFakeEnv(t)
		issuer := f.base + "/tenant1"
		f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", issuer)
		f.json("/tenant1/.well-known/openid-configuration", f.asDoc(issuer))
		d := discover(t, f.engine(), f.upstream(), "")
		as := steps(d, PhaseAS)
		want := []string{"rfc8414 path insertion", "oidc path insertion", "oidc path append"}
		if len(as) != 3 {
			t.Fatalf("trace: %s", traceString(d))
		}
		for i, s := range as {
			if s.Source != want[i] {
				t.Errorf("step %d source %q, want %q", i, s.Source, want[i])
			}
		}
		if as[2].Outcome != OutcomeFound || d.AS.MetadataURL != f.base+"/tenant1/.well-known/openid-configuration" {
			t.Errorf("trace: %s", traceString(d))
		}
	})
	t.Run("path insertion", func(t *testing.T) {
		f := newFakeEnv(t)
		issuer := f.base + "/tenant1"
		f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", issuer)
		f.json("/.well-known/openid-configuration/tenant1", f.asDoc(issuer))
		d := discover(t, f.engine(), f.upstream(), "")
		if d.AS.MetadataURL != f.base+"/.well-known/openid-configuration/tenant1" {
			t.Errorf("trace: %s", traceString(d))
		}
	})
	t.Run("root issuer", func(t *testing.T) {
		f := newFakeEnv(t)
		f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", f.base)
		f.json("/.well-known/openid-configuration", f.asDoc(f.base))
		d := discover(t, f.engine(), f.upstream(), "")
		if d.AS.MetadataURL != f.base+"/.well-known/openid-configuration" {
			t.Errorf("trace: %s", traceString(d))
		}
	})
}

func TestDiscovery_FakeAS_IssuerMismatch(t *testing.T) {
	f := newFakeEnv(t)
	f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", f.base)
	f.json("/.well-known/oauth-authorization-server", f.asDoc("https://evil.example"))
	f.json("/.well-known/openid-configuration", f.asDoc(f.base+"/")) // trailing slash: not identical either
	_, err := f.engine().Discover(context.Background(), f.upstream(), "")
	ue := wantCode(t, err, CodeIssuerMismatch, BucketOAuthSetup)
	if !strings.Contains(ue.Reason, `"https://evil.example"`) && !strings.Contains(ue.Reason, f.base+`/"`) {
		t.Errorf("reason %q", ue.Reason)
	}
	for _, s := range steps(&Discovery{Trace: ue.Trace}, PhaseAS) {
		if s.Outcome != OutcomeMismatch {
			t.Errorf("step %+v", s)
		}
	}
}

func TestDiscovery_FakeAS_NoS256(t *testing.T) {
	for name, methods := range map[string]any{"plain only": []string{"plain"}, "absent": nil} {
		t.Run(name, func(t *testing.T) {
			f := newFakeEnv(t)
			f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", f.base)
			f.json("/.well-known/oauth-authorization-server", f.asDoc(f.base, func(m map[string]any) {
				if methods == nil {
					delete(m, "code_challenge_methods_supported")
				} else {
					m["code_challenge_methods_supported"] = methods
				}
			}))
			_, err := f.engine().Discover(context.Background(), f.upstream(), "")
			ue := wantCode(t, err, CodePKCES256Unsupported, BucketOAuthSetup)
			if !strings.Contains(ue.Reason, "S256") || !strings.Contains(ue.Error(), "upstream OAuth setup") {
				t.Errorf("error %q should say S256 and upstream OAuth setup", ue.Error())
			}
		})
	}
}

func TestDiscovery_FakeAS_PRMResourceMismatch(t *testing.T) {
	f := newFakeEnv(t)
	f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/other", f.base)
	f.prm("/.well-known/oauth-protected-resource", "https://elsewhere.example/mcp", f.base)
	f.json("/.well-known/oauth-authorization-server", f.asDoc(f.base))
	_, err := f.engine().Discover(context.Background(), f.upstream(), "")
	ue := wantCode(t, err, CodePRMResourceMismatch, BucketOAuthSetup)
	if len(ue.Trace) != 2 || ue.Trace[0].Outcome != OutcomeMismatch {
		t.Errorf("trace %+v", ue.Trace)
	}
}

func TestDiscovery_FakeAS_ResourcePrefixAccepted(t *testing.T) {
	f := newFakeEnv(t)
	f.prm("/.well-known/oauth-protected-resource/api/mcp", f.base+"/api/", f.base)
	f.json("/.well-known/oauth-authorization-server", f.asDoc(f.base))
	up := f.upstream()
	up.URL = f.base + "/api/mcp"
	d := discover(t, f.engine(), up, "")
	if d.Resource != f.base+"/api/" {
		t.Errorf("resource %q, want the PRM's own spelling", d.Resource)
	}
}

func TestCanonicalResource(t *testing.T) {
	for _, tc := range []struct {
		up, prm, want, code string
	}{
		{"https://MCP.Example.com:443/mcp/", "", "https://mcp.example.com/mcp", ""},
		{"https://mcp.example.com/mcp?tenant=1#x", "", "https://mcp.example.com/mcp", ""},
		{"https://mcp.example.com", "", "https://mcp.example.com", ""},
		{"http://[::1]:80/mcp", "", "http://[::1]/mcp", ""},
		{"https://h/mcp", "https://h/mcp", "https://h/mcp", ""},
		{"https://h/mcp", "https://H:443/mcp/", "https://H:443/mcp/", ""},
		{"https://h/a/mcp", "https://h/a", "https://h/a", ""},
		{"https://h/a/mcp", "https://h", "https://h", ""},
		{"https://h/mcp", "https://h/mc", "", CodePRMResourceMismatch},
		{"https://h/mcp", "https://h/mcp/sub", "", CodePRMResourceMismatch},
		{"https://h/mcp", "http://h/mcp", "", CodePRMResourceMismatch},
		{"https://h/mcp", "https://h:8443/mcp", "", CodePRMResourceMismatch},
		{"https://h/mcp", "https://h/mcp?x=1", "", CodePRMResourceMismatch},
		{"https://h/mcp", "h/mcp", "", CodePRMResourceMismatch},
		{"mcp.example.com", "", "", CodeInvalidUpstreamURL},
	} {
		got, err := CanonicalResource(tc.up, tc.prm)
		if CodeOf(err) != tc.code || got != tc.want {
			t.Errorf("CanonicalResource(%q, %q) = %q, %v; want %q, code %q", tc.up, tc.prm, got, err, tc.want, tc.code)
		}
	}
}

func TestDiscovery_FakeAS_SeveralAuthorizationServers(t *testing.T) {
	f := newFakeEnv(t)
	as1, as2, as3 := f.base+"/as1", f.base+"/as2", f.base+"/as3"
	f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", as1, as2, as3)
	// as1 has no metadata at all; as2 validates; as3 would too but comes later.
	f.json("/.well-known/oauth-authorization-server/as2", f.asDoc(as2))
	f.json("/.well-known/oauth-authorization-server/as3", f.asDoc(as3))
	d := discover(t, f.engine(), f.upstream(), "")
	if d.AS.Issuer != as2 {
		t.Fatalf("issuer %q, want %q; trace %s", d.AS.Issuer, as2, traceString(d))
	}
	if f.hit("/.well-known/oauth-authorization-server/as3") != 0 {
		t.Error("as3 fetched after as2 validated")
	}
	// An AS without S256 is skipped for the next one.
	g := newFakeEnv(t)
	g.prm("/.well-known/oauth-protected-resource/mcp", g.base+"/mcp", g.base+"/a", g.base+"/b")
	g.json("/.well-known/oauth-authorization-server/a", g.asDoc(g.base+"/a", func(m map[string]any) { m["code_challenge_methods_supported"] = []string{"plain"} }))
	g.json("/.well-known/oauth-authorization-server/b", g.asDoc(g.base+"/b"))
	if d := discover(t, g.engine(), g.upstream(), ""); d.AS.Issuer != g.base+"/b" {
		t.Errorf("issuer %q", d.AS.Issuer)
	}
}

func TestDiscovery_FakeAS_MalformedMetadataJSON(t *testing.T) {
	t.Run("prm", func(t *testing.T) {
		f := newFakeEnv(t)
		f.raw("/.well-known/oauth-protected-resource/mcp", `{"resource": "x", "authorization_servers": [`)
		f.raw("/.well-known/oauth-protected-resource", `["not", "an", "object"]`)
		_, err := f.engine().Discover(context.Background(), f.upstream(), "")
		ue := wantCode(t, err, CodePRMInvalid, BucketOAuthSetup)
		if ue.Trace[0].Outcome != OutcomeInvalid || ue.Trace[1].Outcome != OutcomeInvalid {
			t.Errorf("trace %+v", ue.Trace)
		}
	})
	t.Run("prm wrong member type", func(t *testing.T) {
		f := newFakeEnv(t)
		f.raw("/.well-known/oauth-protected-resource/mcp", `{"resource": "`+f.base+`/mcp", "authorization_servers": "`+f.base+`"}`)
		_, err := f.engine().Discover(context.Background(), f.upstream(), "")
		wantCode(t, err, CodePRMInvalid, BucketOAuthSetup)
	})
	t.Run("prm without servers", func(t *testing.T) {
		f := newFakeEnv(t)
		f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp")
		_, err := f.engine().Discover(context.Background(), f.upstream(), "")
		wantCode(t, err, CodePRMNoAuthServers, BucketOAuthSetup)
	})
	t.Run("as", func(t *testing.T) {
		f := newFakeEnv(t)
		f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", f.base)
		f.raw("/.well-known/oauth-authorization-server", `<html>oops</html>`)
		_, err := f.engine().Discover(context.Background(), f.upstream(), "")
		wantCode(t, err, CodeASMetadataInvalid, BucketOAuthSetup)
	})
	t.Run("as dangerous endpoint", func(t *testing.T) {
		f := newFakeEnv(t)
		f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", f.base)
		f.json("/.well-known/oauth-authorization-server", f.asDoc(f.base, func(m map[string]any) { m["authorization_endpoint"] = "javascript:alert(1)" }))
		_, err := f.engine().Discover(context.Background(), f.upstream(), "")
		ue := wantCode(t, err, CodeASMetadataInvalid, BucketOAuthSetup)
		if !strings.Contains(ue.Reason, "authorization_endpoint") {
			t.Errorf("reason %q", ue.Reason)
		}
	})
}

func TestDiscovery_FakeAS_RedirectRefused(t *testing.T) {
	f := newFakeEnv(t)
	f.mux.HandleFunc("/.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	})
	f.mux.HandleFunc("/.well-known/oauth-protected-resource", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
	})
	_, err := f.engine().Discover(context.Background(), f.upstream(), "")
	ue := wantCode(t, err, CodeSSRFBlocked, BucketOAuthSetup)
	if ue.Trace[0].Outcome != OutcomeRefused || !strings.Contains(ue.Trace[0].Detail, "169.254.169.254") {
		t.Errorf("trace %+v", ue.Trace)
	}
}

func TestDiscovery_FakeAS_PrivateAddressRefused(t *testing.T) {
	// TLS, and no allow list: the upstream host (127.0.0.1, operator-configured) is trusted, but the
	// AS the PRM names ("localhost", learned from metadata) resolves to loopback and is refused at dial.
	mux := http.NewServeMux()
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	learned := "https://localhost:" + u.Port()
	mux.HandleFunc("/.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"resource":"` + srv.URL + `/mcp","authorization_servers":["` + learned + `"]}`))
	})
	tlsConf := srv.Client().Transport.(*http.Transport).TLSClientConfig
	e := New(Options{TLSConfig: tlsConf})
	_, err := e.Discover(context.Background(), Upstream{ID: "x", URL: srv.URL + "/mcp"}, "")
	ue := wantCode(t, err, CodeSSRFBlocked, BucketOAuthSetup)
	last := ue.Trace[len(ue.Trace)-1]
	if ue.Trace[0].Outcome != OutcomeFound || last.Outcome != OutcomeRefused || !strings.Contains(last.Detail, "loopback") || !strings.Contains(last.Detail, learned) {
		t.Errorf("trace %+v", ue.Trace)
	}
	// http to a host not on the allow list is refused before any connection.
	_, err = New(Options{}).Discover(context.Background(), Upstream{ID: "y", URL: "http://mcp.example.invalid/mcp"}, "")
	ue = wantCode(t, err, CodeSSRFBlocked, BucketOAuthSetup)
	if !strings.Contains(ue.Trace[0].Detail, "MCPGATE_SAFEHTTP_ALLOW") {
		t.Errorf("detail %q", ue.Trace[0].Detail)
	}
}

func TestDiscovery_FakeAS_CacheAndInvalidate(t *testing.T) {
	f := newFakeEnv(t)
	f.standard()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := f.engine(func(o *Options) { o.Now = clk.now; o.FailureTTL = 30 * time.Second; o.DiscoveryTTL = time.Hour })
	up := f.upstream()
	ctx := context.Background()
	prmPath := "/.well-known/oauth-protected-resource/mcp"

	d1 := discover(t, e, up, "")
	d2 := discover(t, e, up, "")
	if d1 != d2 || f.hit(prmPath) != 1 {
		t.Fatalf("second discovery refetched (%d PRM fetches)", f.hit(prmPath))
	}
	clk.add(time.Hour)
	discover(t, e, up, "")
	if f.hit(prmPath) != 2 {
		t.Errorf("expired entry not refetched: %d", f.hit(prmPath))
	}
	if err := e.Invalidate(ctx, up.ID); err != nil {
		t.Fatal(err)
	}
	discover(t, e, up, "")
	if f.hit(prmPath) != 3 {
		t.Errorf("invalidated entry not refetched: %d", f.hit(prmPath))
	}

	// Failures are cached briefly.
	bad := Upstream{ID: "broken", URL: f.base + "/nothing"}
	for range 3 {
		if _, err := e.Discover(ctx, bad, ""); CodeOf(err) != CodePRMNotFound {
			t.Fatalf("err %v", err)
		}
	}
	if n := f.hit("/.well-known/oauth-protected-resource/nothing"); n != 1 {
		t.Errorf("failure fetched %d times within FailureTTL, want 1", n)
	}
	clk.add(31 * time.Second)
	_, _ = e.Discover(ctx, bad, "")
	if n := f.hit("/.well-known/oauth-protected-resource/nothing"); n != 2 {
		t.Errorf("failure not retried after FailureTTL: %d", n)
	}
	// CheckNow bypasses the cache.
	if _, err := e.CheckNow(ctx, up, ""); err != nil {
		t.Fatal(err)
	}
	if f.hit(prmPath) != 4 {
		t.Errorf("CheckNow did not refetch: %d", f.hit(prmPath))
	}
}

func TestDiscovery_FakeAS_Unreachable(t *testing.T) {
	f := newFakeEnv(t)
	f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", f.base)
	f.mux.HandleFunc("/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	_, err := f.engine().Discover(context.Background(), f.upstream(), "")
	// 503 at RFC 8414, 404 at OIDC: the more telling failure is reported.
	ue := wantCode(t, err, CodeMetadataUnreachable, BucketUpstreamResponse)
	if !ue.Transient() || !slices.ContainsFunc(ue.Trace, func(s TraceStep) bool { return s.Status == 503 }) {
		t.Errorf("error %v trace %+v", ue, ue.Trace)
	}
}

func TestDiscovery_FakeAS_CallerCancelDoesNotCancelOthers(t *testing.T) {
	f := newFakeEnv(t)
	f.standard()
	release := make(chan struct{})
	inner := f.mux
	f.mux = http.NewServeMux()
	f.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		<-release
		inner.ServeHTTP(w, r)
	})
	e := f.engine()
	up := f.upstream()

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := e.Discover(ctx, up, ""); first <- err }()
	second := make(chan error, 1)
	go func() {
		// Wait until the first caller's request is in flight, then join it.
		deadline := time.Now().Add(5 * time.Second)
		for f.hit("/.well-known/oauth-protected-resource/mcp") == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		_, err := e.Discover(context.Background(), up, "")
		second <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); f.hit("/.well-known/oauth-protected-resource/mcp") == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("discovery never reached the server")
		}
	}
	cancel()
	if err := <-first; !isTransient(err) {
		t.Fatalf("cancelled caller: %v", err)
	}
	close(release)
	if err := <-second; err != nil {
		t.Fatalf("the other caller failed with the first one's cancellation: %v", err)
	}
	if n := f.hit("/.well-known/oauth-protected-resource/mcp"); n != 1 {
		t.Errorf("PRM fetched %d times, want 1 (shared)", n)
	}
}

func TestDiscovery_FakeAS_BadChallengeURLFallsBack(t *testing.T) {
	f := newFakeEnv(t)
	f.standard()
	for _, hint := range []string{"/relative/prm", "javascript:alert(1)", "ftp://h/prm"} {
		d := discover(t, f.engine(), f.upstream(), hint)
		if d.Trace[0].Source != "challenge" || d.Trace[0].Outcome != OutcomeInvalid || d.Trace[1].Outcome != OutcomeFound {
			t.Errorf("hint %q: trace %s", hint, traceString(d))
		}
	}
}
