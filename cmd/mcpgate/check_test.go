package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	benchup "github.com/mcpgate/mcpgate/bench/upstream"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/testutil/mcpupstream"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// checkUpstream is one token-exchange upstream of a check test project.
type checkUpstream struct {
	id, url string
	options map[string]any // extra policy options
}

// checkProject writes a project with one api-key-authenticated MCP route per upstream, each with
// its own mcp-token-exchange-inbound policy, in the given order.
func checkProject(t *testing.T, ups ...checkUpstream) string {
	t.Helper()
	policies := []map[string]any{{"name": "api-key", "policyType": "api-key-inbound",
		"handler": map[string]any{"module": "$import(@zuplo/runtime)", "export": "ApiKeyInboundPolicy", "options": map[string]any{}}}}
	paths := map[string]any{}
	for _, u := range ups {
		opts := map[string]any{"id": u.id, "displayName": strings.ToUpper(u.id[:1]) + u.id[1:], "authMode": "user-oauth"}
		for k, v := range u.options {
			opts[k] = v
		}
		policies = append(policies, map[string]any{"name": "mcp-token-exchange-" + u.id, "policyType": "mcp-token-exchange-inbound",
			"handler": map[string]any{"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpTokenExchangeInboundPolicy", "options": opts}})
		paths["/mcp/"+u.id] = map[string]any{"get,post": map[string]any{"operationId": u.id + "-mcp", "x-zuplo-route": map[string]any{
			"corsPolicy": "none",
			"handler":    map[string]any{"module": "$import(@zuplo/runtime/mcp-gateway)", "export": "McpProxyHandler", "options": map[string]any{"rewritePattern": u.url}},
			"policies":   map[string]any{"inbound": []string{"api-key", "mcp-token-exchange-" + u.id}}}}}
	}
	pj, _ := json.Marshal(map[string]any{"policies": policies})
	rj, _ := json.Marshal(map[string]any{"openapi": "3.1.0", "info": map[string]any{"title": "t", "version": "1"}, "paths": paths})
	return gatewaytest.Project(t, map[string]string{"config/policies.json": string(pj), "config/routes.oas.json": string(rj)})
}

// benchOAuth starts the bench upstream with its own authorization server (PRM, RFC 8414
// metadata with S256, DCR at /register, which it counts).
func benchOAuth(t *testing.T) (string, *benchup.AuthServer) {
	t.Helper()
	as := &benchup.AuthServer{}
	s := httptest.NewServer(&benchup.Handler{SSEDelay: -1, Auth: as})
	t.Cleanup(s.Close)
	as.Issuer = s.URL
	return s.URL + benchup.ResourcePath, as
}

// closedPort is a loopback URL nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/mcp"
}

// checkRows runs `mcpgate check --json` and decodes its answer.
func checkRows(t *testing.T, dir string, wantCode int, args ...string) map[string]checkRow {
	t.Helper()
	res := runCLI(t, dir, nil, append([]string{"check", "--config", dir, "--safehttp-allow", "127.0.0.1", "--json"}, args...)...)
	if res.code != wantCode {
		t.Fatalf("check --json: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", res.code, wantCode, res.stdout, res.stderr)
	}
	var rows []checkRow
	if err := json.Unmarshal([]byte(res.stdout), &rows); err != nil {
		t.Fatalf("check --json printed no JSON array: %v\n%s", err, res.stdout)
	}
	out := map[string]checkRow{}
	for _, r := range rows {
		out[r.UpstreamID] = r
	}
	return out
}

func stepResults(r checkRow) []string {
	var out []string
	for _, s := range r.Steps {
		out = append(out, s.Name+" "+string(s.Result))
	}
	return out
}

// TestCheck runs `mcpgate check` as a user would, against real upstreams: an MCP server behind a
// real Ory Hydra with dynamic client registration (ready), the same behind a Hydra without it and
// with no manual client (no registration mode: gateway configuration), the bench OAuth upstream
// (ready), a public MCP server with no protected resource metadata (upstream OAuth setup) and an
// address nothing listens on (upstream service response). It asserts the JSON and the table, the
// exit status, and that nothing was registered anywhere and no data directory was created.
func TestCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Ory Hydra")
	}
	withDCR := hydra.Start(t, hydra.Options{Scopes: []string{"mcp"}})
	noDCR := hydra.Start(t, hydra.Options{Scopes: []string{"mcp"}, DisableDCR: true})
	linear := mcpupstream.Start(t, mcpupstream.Options{Issuer: withDCR.PublicURL, IntrospectURL: withDCR.AdminURL + "/admin/oauth2/introspect"})
	closed := mcpupstream.Start(t, mcpupstream.Options{Issuer: noDCR.PublicURL, IntrospectURL: noDCR.AdminURL + "/admin/oauth2/introspect"})
	benchURL, bench := benchOAuth(t)
	public := httptest.NewServer(&benchup.Handler{SSEDelay: -1})
	t.Cleanup(public.Close)

	dir := checkProject(t,
		checkUpstream{id: "linear", url: linear.URL, options: map[string]any{"scopes": []string{"mcp", "admin"}}},
		checkUpstream{id: "closed", url: closed.URL},
		checkUpstream{id: "bench", url: benchURL},
		checkUpstream{id: "public", url: public.URL + "/mcp"},
		checkUpstream{id: "down", url: closedPort(t)},
	)

	rows := checkRows(t, dir, checkExitFailing)
	if len(rows) != 5 {
		t.Fatalf("check reported %d upstreams, want 5: %v", len(rows), rows)
	}
	for _, tc := range []struct {
		id        string
		steps     []string
		mode      string
		bucket    upstream.Bucket
		code      string
		problemAt string
	}{
		{id: "linear", steps: []string{"prm ok", "as_metadata ok", "pkce_s256 ok", "registration ok", "scopes warning"}, mode: upstream.ModeDCR},
		{id: "closed", steps: []string{"prm ok", "as_metadata ok", "pkce_s256 ok", "registration failed", "scopes ok"},
			bucket: upstream.BucketGatewayConfig, code: upstream.CodeRegistrationMissing, problemAt: upstream.StepRegistration},
		{id: "bench", steps: []string{"prm ok", "as_metadata ok", "pkce_s256 ok", "registration ok", "scopes ok"}, mode: upstream.ModeDCR},
		{id: "public", steps: []string{"prm failed", "as_metadata skipped", "pkce_s256 skipped", "registration skipped", "scopes skipped"},
			bucket: upstream.BucketOAuthSetup, code: upstream.CodePRMNotFound, problemAt: upstream.StepPRM},
		{id: "down", steps: []string{"prm failed", "as_metadata skipped", "pkce_s256 skipped", "registration skipped", "scopes skipped"},
			bucket: upstream.BucketUpstreamResponse, code: upstream.CodeMetadataUnreachable, problemAt: upstream.StepPRM},
	} {
		t.Run(tc.id, func(t *testing.T) {
			r, ok := rows[tc.id]
			if !ok {
				t.Fatalf("no row for %s", tc.id)
			}
			if got := stepResults(r); !slices.Equal(got, tc.steps) {
				t.Errorf("steps %q, want %q", got, tc.steps)
			}
			if !slices.Equal(r.OperationIDs, []string{tc.id + "-mcp"}) || r.AuthMode != "user-oauth" || r.UpstreamURL == "" {
				t.Errorf("row %+v", r)
			}
			if tc.code == "" {
				if !r.OK || r.Problem != nil || r.Registration.Mode != tc.mode || !r.Registration.Available || r.Registration.Registered {
					t.Errorf("want ready with mode %s: %+v problem %+v", tc.mode, r.Registration, r.Problem)
				}
				return
			}
			p := r.Problem
			if r.OK || p == nil || p.Bucket != tc.bucket || p.Code != tc.code || p.Step != tc.problemAt || p.Message == "" || p.Fix == "" {
				t.Fatalf("want %s %s at %s, got ok=%v problem %+v", tc.bucket, tc.code, tc.problemAt, r.OK, p)
			}
		})
	}
	if l := rows["linear"]; !slices.Equal(l.Scopes.NotAdvertised, []string{"admin"}) {
		t.Errorf("linear: configured scope admin is not advertised, got %+v", l.Scopes)
	}
	if c := rows["closed"].Registration; c.RegistrationEndpoint != "" || c.CIMDSupported || c.ManualClient || c.Available {
		t.Errorf("closed: registration plan %+v", c)
	}

	// The table a person reads.
	res := runCLI(t, dir, nil, "check", "--config", dir, "--safehttp-allow", "127.0.0.1")
	if res.code != checkExitFailing {
		t.Fatalf("check: exit %d, want 1\n%s%s", res.code, res.stdout, res.stderr)
	}
	lines := strings.Split(res.stdout, "\n")
	row := func(id string) []string {
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == id {
				return f
			}
		}
		t.Fatalf("no table row for %s:\n%s", id, res.stdout)
		return nil
	}
	if f := row("linear"); strings.Join(f, " ") != "linear linear-mcp ✓ ✓ ✓ ✓ dcr ! ok" {
		t.Errorf("linear row %q", f)
	}
	if f := row("closed"); strings.Join(f, " ") != "closed closed-mcp ✓ ✓ ✓ ✗ ✓ gateway configuration" {
		t.Errorf("closed row %q", f)
	}
	if f := row("public"); strings.Join(f, " ") != "public public-mcp ✗ – – – – upstream OAuth setup" {
		t.Errorf("public row %q", f)
	}
	if f := row("down"); strings.Join(f, " ") != "down down-mcp ✗ – – – – upstream service response" {
		t.Errorf("down row %q", f)
	}
	for _, want := range []string{
		"closed (" + closed.URL + "): registration · gateway configuration · registration_unavailable",
		"what to do: Register a client at the authorization server and configure clientRegistration mode manual",
		"public (" + public.URL + "/mcp): prm · upstream OAuth setup · prm_not_found",
		"linear (" + linear.URL + "): scopes · warning",
		"2 of 5 upstreams ready",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("the table does not say %q:\n%s", want, res.stdout)
		}
	}

	// Nothing was registered, nothing written.
	if n := bench.Stats().Registrations; n != 0 {
		t.Errorf("the bench authorization server got %d registration requests, want 0", n)
	}
	for name, h := range map[string]*hydra.Server{"with DCR": withDCR, "without DCR": noDCR} {
		if n := len(h.ListClients(t)); n != 0 {
			t.Errorf("Hydra %s has %d clients after check, want 0", name, n)
		}
		if n := h.TokenCalls(""); n != 0 {
			t.Errorf("Hydra %s got %d token requests, want 0", name, n)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".mcpgate")); !os.IsNotExist(err) {
		t.Errorf("check created a data directory (%v)", err)
	}

	// Only the ready ones: exit 0.
	ready := checkProject(t, checkUpstream{id: "linear", url: linear.URL}, checkUpstream{id: "bench", url: benchURL})
	res = runCLI(t, ready, nil, "check", "--config", ready, "--safehttp-allow", "127.0.0.1")
	if res.code != 0 || !strings.Contains(res.stdout, "2 of 2 upstreams ready") {
		t.Errorf("check of ready upstreams: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if n := bench.Stats().Registrations; n != 0 {
		t.Errorf("the bench authorization server got %d registration requests, want 0", n)
	}
}

// TestCheckNoS256_Fake: an authorization server whose metadata lacks S256 in
// code_challenge_methods_supported (no real server at hand publishes that) fails the S256 step, an
// upstream OAuth setup problem; its registration endpoint receives no request.
func TestCheckNoS256_Fake(t *testing.T) {
	var registrations atomic.Int64
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"resource": srv.URL + "/mcp", "authorization_servers": []string{srv.URL}})
	})
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"issuer": srv.URL, "authorization_endpoint": srv.URL + "/authorize", "token_endpoint": srv.URL + "/token",
			"registration_endpoint": srv.URL + "/register", "code_challenge_methods_supported": []string{"plain"}})
	})
	mux.HandleFunc("/register", func(w http.ResponseWriter, r *http.Request) {
		registrations.Add(1)
		http.Error(w, "no", http.StatusForbidden)
	})
	dir := checkProject(t, checkUpstream{id: "legacy", url: srv.URL + "/mcp"})

	rows := checkRows(t, dir, checkExitFailing)
	r := rows["legacy"]
	if got, want := stepResults(r), []string{"prm ok", "as_metadata ok", "pkce_s256 failed", "registration skipped", "scopes skipped"}; !slices.Equal(got, want) {
		t.Errorf("steps %q, want %q", got, want)
	}
	if p := r.Problem; p == nil || p.Bucket != upstream.BucketOAuthSetup || p.Code != upstream.CodePKCES256Unsupported || !strings.Contains(p.Message, "S256") {
		t.Errorf("problem %+v", p)
	}
	res := runCLI(t, dir, nil, "check", "--config", dir, "--safehttp-allow", "127.0.0.1")
	if res.code != checkExitFailing || !strings.Contains(res.stdout, "legacy ("+srv.URL+"/mcp): pkce_s256 · upstream OAuth setup · pkce_s256_unsupported") {
		t.Errorf("check: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if n := registrations.Load(); n != 0 {
		t.Errorf("the registration endpoint got %d requests, want 0", n)
	}
}

// TestCheckRefusesInvalidInput: an invalid configuration is reported as validate reports it and
// exits 2, as does an invalid flag; nothing is checked.
func TestCheckRefusesInvalidInput(t *testing.T) {
	dir := checkProject(t, checkUpstream{id: "bad", url: "http://127.0.0.1:9/mcp", options: map[string]any{"authMode": "magic"}})
	res := runCLI(t, dir, nil, "check", "--config", dir)
	if res.code != checkExitInvalid || !strings.Contains(res.stderr, "config/policies.json: policies[1].handler.options.authMode") ||
		!strings.Contains(res.stderr, "1 problem(s) in "+dir) || res.stdout != "" {
		t.Errorf("invalid config: exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	ok := checkProject(t, checkUpstream{id: "x", url: "http://127.0.0.1:9/mcp"})
	res = runCLI(t, ok, nil, "check", "--config", ok, "--public-url", "mcp.example.com")
	if res.code != checkExitInvalid || !strings.Contains(res.stderr, "--public-url: must be an absolute http(s) URL") {
		t.Errorf("invalid --public-url: exit %d\n%s", res.code, res.stderr)
	}
}
