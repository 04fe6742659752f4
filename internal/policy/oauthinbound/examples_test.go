// Tests that load whole projects with internal/config. They are an external test package: the
// built-in registry (internal/builtin, for McpProxyHandler and the token exchange) will import
// this package, and an in-package test importing it would be an import cycle.
package oauthinbound_test

import (
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	_ "github.com/mcpgate/mcpgate/internal/builtin"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/policy/oauthinbound"
	"github.com/mcpgate/mcpgate/internal/policy/tokenexchange"
)

var update = flag.Bool("update", false, "rewrite testdata/broken/*.golden with the current output")

// testEnv holds dummy values for the examples' $env() variables. Secrets must never appear in a
// message.
var testEnv = map[string]string{
	"AUTH0_DOMAIN":           "my-tenant.us.auth0.com",
	"AUTH0_CLIENT_ID":        "auth0-client-id",
	"AUTH0_CLIENT_SECRET":    "auth0-secret-never-print",
	"ENTRA_TENANT_ID":        "9188040d-6c67-4c5b-b112-36a304b66dad",
	"ENTRA_CLIENT_ID":        "entra-client-id",
	"ENTRA_CLIENT_SECRET":    "entra-secret-never-print",
	"OKTA_DOMAIN":            "acme.okta.com",
	"OKTA_CLIENT_ID":         "okta-client-id",
	"OKTA_CLIENT_SECRET":     "okta-secret-never-print",
	"KEYCLOAK_BASE_URL":      "https://sso.example.com",
	"KEYCLOAK_REALM":         "acme",
	"KEYCLOAK_CLIENT_ID":     "keycloak-client-id",
	"KEYCLOAK_CLIENT_SECRET": "keycloak-secret-never-print",
	// For testdata/broken.
	"BROKEN_SECRET": "broken-secret-never-print",
}

func secrets() []string {
	var out []string
	for k, v := range testEnv {
		if strings.HasSuffix(k, "_SECRET") {
			out = append(out, v)
		}
	}
	return out
}

type recordingEnv struct {
	mu    sync.Mutex
	asked map[string]bool
}

func (r *recordingEnv) lookup(name string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.asked == nil {
		r.asked = map[string]bool{}
	}
	r.asked[name] = true
	v, ok := testEnv[name]
	return v, ok
}

type signInExample struct {
	dir, policyName, policyType string
	upstreamID, upstreamURL     string
	issuer, jwks                string
	env                         []string
}

var signInExamples = []signInExample{
	{dir: "signin-auth0", policyName: "auth0-signin", policyType: oauthinbound.Auth0PolicyType,
		upstreamID: "linear", upstreamURL: "https://mcp.linear.app/mcp",
		issuer: "https://my-tenant.us.auth0.com/", jwks: "https://my-tenant.us.auth0.com/.well-known/jwks.json",
		env: []string{"AUTH0_CLIENT_ID", "AUTH0_CLIENT_SECRET", "AUTH0_DOMAIN"}},
	{dir: "signin-entra", policyName: "entra-signin", policyType: oauthinbound.EntraPolicyType,
		upstreamID: "atlassian", upstreamURL: "https://mcp.atlassian.com/v1/mcp",
		issuer: "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
		jwks:   "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/discovery/v2.0/keys",
		env:    []string{"ENTRA_CLIENT_ID", "ENTRA_CLIENT_SECRET", "ENTRA_TENANT_ID"}},
	{dir: "signin-okta", policyName: "okta-signin", policyType: oauthinbound.OktaPolicyType,
		upstreamID: "notion", upstreamURL: "https://mcp.notion.com/mcp",
		issuer: "https://acme.okta.com/oauth2/default", jwks: "https://acme.okta.com/oauth2/default/v1/keys",
		env: []string{"OKTA_CLIENT_ID", "OKTA_CLIENT_SECRET", "OKTA_DOMAIN"}},
	{dir: "signin-keycloak", policyName: "keycloak-signin", policyType: oauthinbound.KeycloakPolicyType,
		upstreamID: "linear", upstreamURL: "https://mcp.linear.app/mcp",
		issuer: "https://sso.example.com/realms/acme", jwks: "https://sso.example.com/realms/acme/protocol/openid-connect/certs",
		env: []string{"KEYCLOAK_BASE_URL", "KEYCLOAK_CLIENT_ID", "KEYCLOAK_CLIENT_SECRET", "KEYCLOAK_REALM"}},
}

// TestSignInExamples loads each example project: no problems, the wrapper in front of a
// user-oauth token exchange on one McpProxyHandler route, and the derived IdP.
func TestSignInExamples(t *testing.T) {
	for _, ex := range signInExamples {
		t.Run(ex.dir, func(t *testing.T) {
			env := &recordingEnv{}
			p, err := config.Load(filepath.Join("..", "..", "..", "examples", ex.dir), env.lookup)
			if err != nil {
				t.Fatalf("config.Load:\n%v", err)
			}
			if got := slices.Sorted(maps.Keys(env.asked)); !slices.Equal(got, ex.env) {
				t.Errorf("$env variables used: %v, want %v (the README lists them)", got, ex.env)
			}
			if p.CompatibilityDate != "2026-03-01" || len(p.Routes) != 1 {
				t.Fatalf("compatibilityDate %s, %d routes", p.CompatibilityDate, len(p.Routes))
			}
			r := p.Routes[0]
			if r.Path != "/mcp/"+ex.upstreamID || r.Handler.Export != "McpProxyHandler" || r.Info.UpstreamURL == nil || r.Info.UpstreamURL.String() != ex.upstreamURL {
				t.Errorf("route %s handler %s upstream %v", r.Path, r.Handler.Export, r.Info.UpstreamURL)
			}
			if !slices.Equal(r.Inbound, []string{ex.policyName, "mcp-token-exchange-" + ex.upstreamID}) {
				t.Errorf("inbound %v", r.Inbound)
			}
			signIn := p.Policies[ex.policyName]
			if signIn == nil || signIn.PolicyType != ex.policyType {
				t.Fatalf("policy %q: %+v", ex.policyName, signIn)
			}
			resolver, ok := signIn.Handler.Value.(interface {
				Spec() (policy.SignInSpec, error)
			})
			if !ok {
				t.Fatalf("%s decoded to %T", ex.policyName, signIn.Handler.Value)
			}
			spec, err := resolver.Spec()
			if err != nil {
				t.Fatal(err)
			}
			if spec.IdP == nil || spec.IdP.Issuer != ex.issuer || spec.IdP.JWKSURL != ex.jwks {
				t.Errorf("derived IdP %+v, want issuer %s and key set %s", spec.IdP, ex.issuer, ex.jwks)
			}
			if spec.IdP.ClientSecret.IsZero() || spec.IdP.PKCE != "S256" {
				t.Errorf("client secret set %v, PKCE %q", !spec.IdP.ClientSecret.IsZero(), spec.IdP.PKCE)
			}
			te, ok := p.Policies["mcp-token-exchange-"+ex.upstreamID].Handler.Value.(*tokenexchange.Policy)
			if !ok || te.AuthMode != "user-oauth" || te.UpstreamID() != ex.upstreamID {
				t.Errorf("token exchange %+v", te)
			}
		})
	}
}

// TestSignInExamplesWithoutEnvironment: unset variables are reported by option, without values.
func TestSignInExamplesWithoutEnvironment(t *testing.T) {
	for _, ex := range signInExamples {
		t.Run(ex.dir, func(t *testing.T) {
			_, err := config.Load(filepath.Join("..", "..", "..", "examples", ex.dir), func(string) (string, bool) { return "", false })
			if err == nil {
				t.Fatal("loaded without its environment")
			}
			if !strings.Contains(err.Error(), "config/policies.json: policies[0].handler.options.clientId") {
				t.Errorf("no clientId problem:\n%v", err)
			}
		})
	}
}

// TestBrokenConfigs loads each testdata/broken project and compares every message with its
// golden file (go test -update rewrites them).
func TestBrokenConfigs(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "broken", "*"))
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
			_, err := config.Load(dir, (&recordingEnv{}).lookup)
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
			for _, s := range secrets() {
				if strings.Contains(got, s) {
					t.Errorf("a secret appears in the messages:\n%s", got)
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
				t.Fatalf("reading golden (go test -update writes it): %v", err)
			}
			if got != string(want) {
				t.Errorf("messages differ from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
	if n == 0 {
		t.Error("no broken cases")
	}
}
