package config_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mcpgate/mcpgate/internal/builtin"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy/apikey"
	"github.com/mcpgate/mcpgate/internal/policy/jwtauth"
	"github.com/mcpgate/mcpgate/internal/policy/tokenexchange"
)

var update = flag.Bool("update", false, "rewrite testdata/broken/*.golden with the current output")

// testEnv is the environment every test project sees. Values listed in secretValues must never
// appear in any message.
var testEnv = map[string]string{
	"MCPGATE_DEMO_UPSTREAM": "http://127.0.0.1:8931/mcp",
	"LINEAR_URL":            "https://mcp.linear.app/mcp",
	"NOT_A_URL":             "mcp-internal-host-without-scheme",
	"IDP_HOST":              "idp.example.com",
	"CLIENT_ID":             "gateway-client-id",
	"CLIENT_SECRET":         "cs-9f8e7d6c5b4a-never-print",
	"SECRET_MODE":           "sm-0a1b2c3d4e5f-never-print",
	"SECRET_URL":            "su-1234567890ab-never-print",
	"EXTRA_SCOPE":           "write",
	"EXTRA_ORIGIN":          "https://admin.example.com",
	"CORS_MAX_AGE":          "600",
	"HOST":                  "example.com",
	"ZUPLO_SUMMARY":         "reserved",
}

var secretValues = []string{
	testEnv["CLIENT_SECRET"], testEnv["SECRET_MODE"], testEnv["SECRET_URL"],
	"another-secret-value", "literal-jwt-signing-secret",
}

func lookup(name string) (string, bool) {
	v, ok := testEnv[name]
	return v, ok
}

func TestBrokenGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/broken/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			_, err := config.Load(dir, lookup)
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load = %v, want config.Errors", err)
			}
			var b strings.Builder
			for _, p := range errs {
				b.WriteString(p.String())
				b.WriteString("\n")
			}
			got := b.String()
			for _, s := range secretValues {
				if strings.Contains(got, s) || strings.Contains(err.Error(), s) {
					t.Errorf("a secret value appears in the messages:\n%s", got)
				}
			}
			golden := dir + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden (run go test -update): %v", err)
			}
			if got != string(want) {
				t.Errorf("messages differ from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
	if n < 15 {
		t.Errorf("only %d broken cases", n)
	}
}

func mustLoad(t *testing.T, dir string) *config.Project {
	t.Helper()
	p, err := config.Load(dir, lookup)
	if err != nil {
		t.Fatalf("Load(%s):\n%v", dir, err)
	}
	return p
}

func TestQuickstart(t *testing.T) {
	p := mustLoad(t, "../../examples/quickstart")
	var r *config.Route
	for _, x := range p.Routes {
		if x.Path == "/mcp/demo" {
			r = x
		}
	}
	if r == nil {
		t.Fatalf("no /mcp/demo route in %d routes", len(p.Routes))
	}
	if strings.Join(r.Methods, ",") != "GET,POST" || r.OperationID != "demo-mcp-server" {
		t.Errorf("route = %s %v %s", r.Path, r.Methods, r.OperationID)
	}
	// The demo upstream listens on a fixed loopback address, so validate needs no environment.
	if u := r.Info.UpstreamURL; u == nil || u.Hostname() != "127.0.0.1" || u.Path != "/mcp" {
		t.Errorf("upstream = %v, want the loopback demo server", r.Info.UpstreamURL)
	}
	if r.Handler.Value == nil || len(r.Inbound) != 0 || r.CORSPolicy != "none" {
		t.Errorf("handler value %v, inbound %v, cors %q", r.Handler.Value, r.Inbound, r.CORSPolicy)
	}
	if p.CompatibilityDate < config.MinCompatibilityDate || p.Version != 1 {
		t.Errorf("zuplo.jsonc = %d %s", p.Version, p.CompatibilityDate)
	}
}

// TestQuickstartOffline: validate needs no environment for the quickstart.
func TestQuickstartOffline(t *testing.T) {
	if _, err := config.Load("../../examples/quickstart", func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
}

func TestNoPolicies(t *testing.T) {
	p := mustLoad(t, "testdata/good/no-policies")
	if len(p.Routes) != 1 || len(p.Policies) != 0 || p.Routes[0].Info.UpstreamURL.Host != "mcp.linear.app" {
		t.Fatalf("routes %+v policies %v", p.Routes, p.Policies)
	}
}

func TestFullProject(t *testing.T) {
	p := mustLoad(t, "testdata/good/full")

	var got []string
	for _, r := range p.Routes {
		got = append(got, strings.Join(r.Methods, ",")+" "+r.Path+" "+r.PathMode+" "+r.File)
	}
	// Each route keeps the info.version of its own file.
	var versions []string
	for _, r := range p.Routes {
		versions = append(versions, r.Version)
	}
	if v := strings.Join(versions, ","); v != "1.0.0,1.0.0,1,1" {
		t.Errorf("route versions = %s, want each file's info.version (1.0.0,1.0.0,1,1)", v)
	}
	want := []string{
		"GET,POST /mcp/linear open-api config/routes.oas.json",
		"POST /mcp/legacy open-api config/routes.oas.json",
		`GET /users/:id(\\d+) url-pattern config/zz-api.oas.json`,
		"GET,POST /items/{id} open-api config/zz-api.oas.json",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("routes in match order:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	linear := p.Routes[0]
	if linear.Info.UpstreamURL.String() != testEnv["LINEAR_URL"] || linear.Info.OperationID != "linear-mcp-server" {
		t.Errorf("linear info = %+v", linear.Info)
	}
	if strings.Join(linear.Inbound, ",") != "api-key,mcp-token-exchange-linear" {
		t.Errorf("inbound = %v", linear.Inbound)
	}

	key := p.Policies["api-key"].Handler.Value.(*apikey.Policy)
	if key.Header() != "x-api-key" || key.Scheme() != "" || key.CacheTTL() != 0 || key.AllowUnauthenticatedRequests {
		t.Errorf("api key = %+v (whole $env of an unset variable must leave the option unset)", key)
	}
	jwt := p.Policies["jwt"].Handler.Value.(*jwtauth.Policy)
	if jwt.Issuer != "https://idp.example.com/" || jwt.Audience != "" || jwt.JwkURL != "https://idp.example.com/.well-known/jwks.json" {
		t.Errorf("jwt = %+v", jwt)
	}

	tx := p.Policies["mcp-token-exchange-linear"].Handler.Value.(*tokenexchange.Policy)
	if tx.UpstreamID() != "linear" || !tx.Prompt.Disabled || tx.Delimiter() != " " {
		t.Errorf("token exchange = %+v", tx)
	}
	// Interpolated unset → "", whole unset in an array → dropped.
	if tx.Summary != "Issues and projects in Linear" || strings.Join(tx.Scopes, "|") != "read|write" {
		t.Errorf("summary %q scopes %q", tx.Summary, tx.Scopes)
	}
	reg := tx.Registration()
	if reg.Mode != "manual" || reg.ClientID != "gateway-client-id" || reg.ClientSecret.Reveal() != testEnv["CLIENT_SECRET"] || reg.TokenEndpointAuthMethod != "client_secret_basic" {
		t.Errorf("registration = %+v", reg)
	}
	gh := p.Policies["github"].Handler.Value.(*tokenexchange.Policy)
	if r := gh.Registration(); gh.UpstreamID() != "github" || r.Mode != "manual" || r.ClientID != "Iv1.abc" || r.TokenEndpointAuthMethod != "none" {
		t.Errorf("github = %+v %+v", gh, r)
	}

	cors := p.CORSPolicies["app"]
	if cors == nil || strings.Join(cors.AllowedOrigins, " ") != "https://app.example.com https://admin.example.com" ||
		strings.Join(cors.AllowedMethods, ",") != "GET,POST" || strings.Join(cors.AllowedHeaders, ",") != "content-type,authorization" ||
		cors.MaxAge != 600 || !cors.AllowCredentials {
		t.Errorf("cors = %+v", cors)
	}
	if strings.Join(p.PolicyOrder, ",") != "api-key,jwt,mcp-token-exchange-linear,github,strip-auth,set-key" {
		t.Errorf("policy order = %v", p.PolicyOrder)
	}
}

func TestMissingDirectory(t *testing.T) {
	_, err := config.Load("testdata/does-not-exist", lookup)
	var errs config.Errors
	if !errors.As(err, &errs) || len(errs) != 1 || !strings.Contains(errs[0].String(), "reading project") {
		t.Fatalf("err = %v", err)
	}
}

func BenchmarkLoadFull(b *testing.B) {
	for b.Loop() {
		if _, err := config.Load("testdata/good/full", lookup); err != nil {
			b.Fatal(err)
		}
	}
}
