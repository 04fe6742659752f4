package upstream

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/mcpgate/mcpgate/internal/safehttp"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
)

// results lists a report's step results in order ("prm ok", …).
func results(r *CheckReport) []string {
	var out []string
	for _, s := range r.Steps {
		out = append(out, s.Name+" "+string(s.Result))
	}
	return out
}

func wantResults(t *testing.T, r *CheckReport, want ...string) {
	t.Helper()
	if got := results(r); !slices.Equal(got, want) {
		t.Fatalf("steps = %q, want %q\nreport %+v", got, want, r)
	}
}

// TestCheckHydra runs the setup check against a real Ory Hydra, with and without dynamic client
// registration: with it, every step passes and the plan is DCR on the first connect; without it
// (Hydra then publishes no registration_endpoint and has no CIMD), no registration mode is
// available, a gateway-configuration problem. Neither check creates a client at Hydra.
func TestCheckHydra(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Ory Hydra")
	}
	allow, err := safehttp.ParseAllowList("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		disableDCR bool
	}{{"dcr", false}, {"no registration", true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := hydra.Start(t, hydra.Options{DisableDCR: tc.disableDCR})
			mux := http.NewServeMux()
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			mux.HandleFunc("/.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]any{"resource": srv.URL + "/mcp", "authorization_servers": []string{h.Issuer()}, "scopes_supported": []string{"mcp"}})
			})
			e := New(Options{Allow: allow})
			up := Upstream{ID: "hydra-up", URL: srv.URL + "/mcp", Scopes: []string{"mcp", "admin"}, Registration: RegistrationConfig{Mode: ModeAuto}}
			rep := e.Check(context.Background(), up, "", Endpoints{PublicURL: "http://127.0.0.1:9", BasePath: "/__mcpgate"})

			if tc.disableDCR {
				wantResults(t, rep, "prm ok", "as_metadata ok", "pkce_s256 ok", "registration failed", "scopes warning")
				if rep.OK || rep.Problem == nil || rep.Problem.Step != StepRegistration || rep.Problem.Code != CodeRegistrationMissing ||
					rep.Problem.Bucket != BucketGatewayConfig || rep.Problem.Fix == "" {
					t.Fatalf("report %+v problem %+v", rep, rep.Problem)
				}
				if rep.Registration.Available || rep.Registration.RegistrationEndpoint != "" || rep.Registration.CIMDSupported {
					t.Errorf("registration plan %+v", rep.Registration)
				}
			} else {
				wantResults(t, rep, "prm ok", "as_metadata ok", "pkce_s256 ok", "registration ok", "scopes warning")
				if !rep.OK || rep.Problem != nil {
					t.Fatalf("report %+v problem %+v", rep, rep.Problem)
				}
				if p := rep.Registration; p.Mode != ModeDCR || !p.Available || p.Registered || p.ClientID != "" || p.RegistrationEndpoint != h.RegisterURL() {
					t.Errorf("registration plan %+v", p)
				}
			}
			// "admin" is configured but not advertised: a warning, requested anyway.
			if !slices.Equal(rep.Scopes.NotAdvertised, []string{"admin"}) || !slices.Contains(rep.Scopes.Requested, "admin") {
				t.Errorf("scopes %+v", rep.Scopes)
			}
			if n := len(h.ListClients(t)); n != 0 {
				t.Errorf("Hydra has %d clients after the check, want 0: the check must not register", n)
			}
			if !tc.disableDCR {
				// The count can fail: a real connect's registration shows up in it.
				if _, err := e.Client(context.Background(), up, rep.Discovery, Endpoints{PublicURL: "http://127.0.0.1:9", BasePath: "/__mcpgate"}, rep.Scopes.Requested); err != nil {
					t.Fatal(err)
				}
				if n := len(h.ListClients(t)); n != 1 {
					t.Errorf("Hydra has %d clients after a registration, want 1", n)
				}
			}
		})
	}
}

// TestCheckSteps_Fake covers what a real server does not produce: metadata without S256, a CIMD
// authorization server, a manual client, a registration already cached.
func TestCheckSteps_Fake(t *testing.T) {
	t.Run("no S256", func(t *testing.T) {
		f := newFakeEnv(t)
		f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", f.base)
		f.json("/.well-known/oauth-authorization-server", f.asDoc(f.base, func(m map[string]any) { m["code_challenge_methods_supported"] = []string{"plain"} }))
		rep := f.engine().Check(context.Background(), f.upstream(), "", httpsEndpoints)
		wantResults(t, rep, "prm ok", "as_metadata ok", "pkce_s256 failed", "registration skipped", "scopes skipped")
		if rep.Problem.Code != CodePKCES256Unsupported || rep.Problem.Bucket != BucketOAuthSetup || rep.Problem.Step != StepS256 {
			t.Fatalf("problem %+v", rep.Problem)
		}
		if f.hit("/register") != 0 {
			t.Error("the check reached the registration endpoint")
		}
	})
	t.Run("no PRM", func(t *testing.T) {
		f := newFakeEnv(t)
		rep := f.engine().Check(context.Background(), f.upstream(), "", httpsEndpoints)
		wantResults(t, rep, "prm failed", "as_metadata skipped", "pkce_s256 skipped", "registration skipped", "scopes skipped")
		if rep.Problem.Code != CodePRMNotFound || rep.Problem.Bucket != BucketOAuthSetup {
			t.Fatalf("problem %+v", rep.Problem)
		}
	})
	t.Run("cimd", func(t *testing.T) {
		f := newFakeEnv(t)
		f.prm("/.well-known/oauth-protected-resource/mcp", f.base+"/mcp", f.base)
		f.json("/.well-known/oauth-authorization-server", f.asDoc(f.base, func(m map[string]any) { m["client_id_metadata_document_supported"] = true }))
		rep := f.engine().Check(context.Background(), f.upstream(), "", httpsEndpoints)
		wantResults(t, rep, "prm ok", "as_metadata ok", "pkce_s256 ok", "registration ok", "scopes ok")
		if p := rep.Registration; p.Mode != ModeCIMD || p.ClientID != httpsEndpoints.ClientMetadataURL("linear") || !p.CIMDSupported {
			t.Errorf("plan %+v", p)
		}
		// Without an https public URL, auto falls back to DCR.
		rep = f.engine().Check(context.Background(), f.upstream(), "", Endpoints{PublicURL: "http://127.0.0.1:9", BasePath: "/__mcpgate"})
		if p := rep.Registration; p.Mode != ModeDCR || !p.Available {
			t.Errorf("plan over http %+v", p)
		}
		if f.hit("/register") != 0 {
			t.Error("the check reached the registration endpoint")
		}
	})
	t.Run("manual and cached DCR", func(t *testing.T) {
		f := newFakeEnv(t)
		f.standard()
		f.json("/register", map[string]any{"client_id": "dcr-1", "token_endpoint_auth_method": "none"})
		up := f.upstream()
		up.Registration = RegistrationConfig{Mode: ModeManual, ClientID: "configured", TokenEndpointAuthMethod: AuthNone}
		e := f.engine()
		rep := e.Check(context.Background(), up, "", httpsEndpoints)
		if p := rep.Registration; !rep.OK || p.Mode != ModeManual || p.ClientID != "configured" || !p.ManualClient {
			t.Errorf("manual: %+v", rep)
		}
		// A DCR client registered by an earlier connect is reported, not registered again.
		up = f.upstream()
		d := discover(t, e, up, "")
		if _, err := e.Client(context.Background(), up, d, httpsEndpoints, nil); err != nil {
			t.Fatal(err)
		}
		before := f.hit("/register")
		rep = e.Check(context.Background(), up, "", httpsEndpoints)
		if p := rep.Registration; !rep.OK || p.Mode != ModeDCR || !p.Registered || p.ClientID == "" {
			t.Errorf("cached DCR: %+v", p)
		}
		if f.hit("/register") != before {
			t.Error("the check registered again")
		}
	})
}
