package oauthinbound

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// fakeSignIn records the specs attached to it.
type fakeSignIn struct {
	specs []policy.SignInSpec
	err   error
}

func (f *fakeSignIn) Attach(spec policy.SignInSpec) (policy.Inbound, error) {
	f.specs = append(f.specs, spec)
	if f.err != nil {
		return nil, f.err
	}
	return stepStub{name: spec.Name}, nil
}

// stepStub answers every request with 418 and the policy name, so delegation is visible.
type stepStub struct{ name string }

func (s stepStub) HandleRequest(*policy.Context, *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusTeapot, Status: s.name}, nil
}

type provisionable interface {
	policy.Provisioner
	policy.Inbound
	policy.Validator
	Spec() (policy.SignInSpec, error)
}

var routes = []*policy.RouteInfo{{Path: "/mcp/linear", Methods: []string{"GET", "POST"}, OperationID: "linear-mcp-server"}}

func provision(t *testing.T, export, options string) (*fakeSignIn, provisionable, error) {
	t.Helper()
	p := decode(t, export, options).(provisionable)
	f := &fakeSignIn{}
	err := p.Provision(context.Background(), &policy.Env{Name: "signin", Routes: routes, Host: &policy.Host{SignIn: f}})
	return f, p, err
}

func TestDerive(t *testing.T) {
	const client = `"clientId":"gw_client","clientSecret":"s3cr3t"`
	tests := []struct {
		name, export, options               string
		issuer, jwks, authorize, token, aud string
	}{
		{"auth0", Auth0Export, `{"auth0Domain":"my-tenant.us.auth0.com","audience":"https://api.example.com",` + client + `}`,
			"https://my-tenant.us.auth0.com/", "https://my-tenant.us.auth0.com/.well-known/jwks.json",
			"https://my-tenant.us.auth0.com/authorize", "https://my-tenant.us.auth0.com/oauth/token", "https://api.example.com"},
		{"okta custom authorization server", OktaExport, `{"oktaDomain":"acme.okta.com","authorizationServerId":"default",` + client + `}`,
			"https://acme.okta.com/oauth2/default", "https://acme.okta.com/oauth2/default/v1/keys",
			"https://acme.okta.com/oauth2/default/v1/authorize", "https://acme.okta.com/oauth2/default/v1/token", ""},
		{"okta org authorization server", OktaExport, `{"oktaDomain":"acme.okta.com",` + client + `}`,
			"https://acme.okta.com", "https://acme.okta.com/oauth2/v1/keys",
			"https://acme.okta.com/oauth2/v1/authorize", "https://acme.okta.com/oauth2/v1/token", ""},
		{"entra", EntraExport, `{"tenantId":"9188040D-6C67-4C5B-B112-36A304B66DAD",` + client + `}`,
			"https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
			"https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/discovery/v2.0/keys",
			"https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/oauth2/v2.0/authorize",
			"https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/oauth2/v2.0/token", ""},
		{"clerk", ClerkExport, `{"frontendApiUrl":"https://clerk.example.com/",` + client + `}`,
			"https://clerk.example.com", "https://clerk.example.com/.well-known/jwks.json",
			"https://clerk.example.com/oauth/authorize", "https://clerk.example.com/oauth/token", ""},
		{"google", GoogleExport, `{` + client + `}`,
			"https://accounts.google.com", "https://www.googleapis.com/oauth2/v3/certs",
			"https://accounts.google.com/o/oauth2/v2/auth", "https://oauth2.googleapis.com/token", ""},
		{"keycloak", KeycloakExport, `{"keycloakBaseUrl":"https://sso.example.com/auth/","realm":"acme",` + client + `}`,
			"https://sso.example.com/auth/realms/acme", "https://sso.example.com/auth/realms/acme/protocol/openid-connect/certs",
			"https://sso.example.com/auth/realms/acme/protocol/openid-connect/auth", "https://sso.example.com/auth/realms/acme/protocol/openid-connect/token", ""},
		{"cognito host", CognitoExport, `{"awsRegion":"us-east-1","userPoolId":"us-east-1_AbCdEf123","userPoolDomain":"auth.example.com",` + client + `}`,
			"https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123", "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123/.well-known/jwks.json",
			"https://auth.example.com/oauth2/authorize", "https://auth.example.com/oauth2/token", ""},
		{"cognito prefix", CognitoExport, `{"awsRegion":"eu-west-2","userPoolId":"eu-west-2_AbC","userPoolDomain":"my-pool",` + client + `}`,
			"https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_AbC", "https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_AbC/.well-known/jwks.json",
			"https://my-pool.auth.eu-west-2.amazoncognito.com/oauth2/authorize", "https://my-pool.auth.eu-west-2.amazoncognito.com/oauth2/token", ""},
		{"workos", WorkOSExport, `{` + client + `}`,
			"https://api.workos.com", "https://api.workos.com/sso/jwks/gw_client",
			"https://api.workos.com/user_management/authorize", "https://api.workos.com/user_management/authenticate", ""},
		{"logto", LogtoExport, `{"logtoEndpoint":"https://your-tenant.logto.app/",` + client + `}`,
			"https://your-tenant.logto.app/oidc", "https://your-tenant.logto.app/oidc/jwks",
			"https://your-tenant.logto.app/oidc/auth", "https://your-tenant.logto.app/oidc/token", ""},
		{"onelogin", OneLoginExport, `{"oneLoginSubdomain":"acme",` + client + `}`,
			"https://acme.onelogin.com/oidc/2", "https://acme.onelogin.com/oidc/2/certs",
			"https://acme.onelogin.com/oidc/2/auth", "https://acme.onelogin.com/oidc/2/token", ""},
		{"ping default region", PingExport, `{"environmentId":"11111111-1111-4111-8111-111111111111",` + client + `}`,
			"https://auth.pingone.com/11111111-1111-4111-8111-111111111111/as", "https://auth.pingone.com/11111111-1111-4111-8111-111111111111/as/jwks",
			"https://auth.pingone.com/11111111-1111-4111-8111-111111111111/as/authorize", "https://auth.pingone.com/11111111-1111-4111-8111-111111111111/as/token", ""},
		{"ping europe (Zuplo name)", PingExport, `{"environmentId":"11111111-1111-4111-8111-111111111111","region":"europe",` + client + `}`,
			"https://auth.pingone.eu/11111111-1111-4111-8111-111111111111/as", "https://auth.pingone.eu/11111111-1111-4111-8111-111111111111/as/jwks",
			"https://auth.pingone.eu/11111111-1111-4111-8111-111111111111/as/authorize", "https://auth.pingone.eu/11111111-1111-4111-8111-111111111111/as/token", ""},
		{"ping canada", PingExport, `{"environmentId":"11111111-1111-4111-8111-111111111111","region":"ca",` + client + `}`,
			"https://auth.pingone.ca/11111111-1111-4111-8111-111111111111/as", "https://auth.pingone.ca/11111111-1111-4111-8111-111111111111/as/jwks",
			"https://auth.pingone.ca/11111111-1111-4111-8111-111111111111/as/authorize", "https://auth.pingone.ca/11111111-1111-4111-8111-111111111111/as/token", ""},
		{"ping custom domain wins", PingExport, `{"environmentId":"11111111-1111-4111-8111-111111111111","region":"asia","customDomain":"login.example.com",` + client + `}`,
			"https://login.example.com/as", "https://login.example.com/as/jwks",
			"https://login.example.com/as/authorize", "https://login.example.com/as/token", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := decode(t, tt.export, tt.options).(provisionable).Spec()
			if err != nil {
				t.Fatal(err)
			}
			idp := spec.IdP
			got := []string{idp.Issuer, idp.JWKSURL, idp.AuthorizeURL, idp.TokenURL, idp.Audience}
			want := []string{tt.issuer, tt.jwks, tt.authorize, tt.token, tt.aud}
			if !slices.Equal(got, want) {
				t.Errorf("issuer, JWKS, authorize, token, audience:\n got %q\nwant %q", got, want)
			}
			if idp.ClientID != "gw_client" || idp.ClientSecret.Reveal() != "s3cr3t" {
				t.Errorf("client %q, secret set %v", idp.ClientID, idp.ClientSecret.Reveal() == "s3cr3t")
			}
		})
	}
}

// TestDerivationsTable keeps the table whole: every wrapper has rows, every row expands with the
// options it names, and every option a row names is one of its wrapper's options.
func TestDerivationsTable(t *testing.T) {
	rows := Derivations()
	for _, m := range wrapperModules {
		if !slices.ContainsFunc(rows, func(d Derivation) bool { return d.Export == m.export && d.PolicyType == m.policyType }) {
			t.Errorf("%s (%s) has no derivation row", m.export, m.policyType)
		}
	}
	seen := map[string]bool{}
	for _, d := range rows {
		key := d.Export + "/" + d.Variant
		if seen[key] {
			t.Errorf("two rows for %s", key)
		}
		seen[key] = true
		mod, ok := policy.FindModule(d.Export)
		if !ok || mod.PolicyType != d.PolicyType || !mod.Authenticates || mod.Kind != policy.KindInbound {
			t.Errorf("row %s: registered as %+v", key, mod)
			continue
		}
		options := jsonNames(reflect.TypeOf(mod.New()).Elem())
		vars := map[string]string{"clientId": "CLIENT", "tld": "TLD"}
		for _, f := range d.Fields {
			if !slices.Contains(options, f) {
				t.Errorf("row %s names %q, which is not an option of %s", key, f, d.Export)
			}
			vars[f] = "<" + f + ">"
		}
		idp, err := d.expand(vars)
		if err != nil {
			t.Errorf("row %s: %v", key, err)
			continue
		}
		for _, u := range []string{idp.Issuer, idp.JWKSURL, idp.AuthorizeURL, idp.TokenURL} {
			if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "<") {
				t.Errorf("row %s: %q is not https", key, u)
			}
		}
		if (d.Variant == "") != (countRows(rows, d.Export) == 1) {
			t.Errorf("row %s: a variant is named exactly when a provider has several rows", key)
		}
	}
	// The table handed out is a copy.
	rows[0].Fields[0] = "changed"
	if Derivations()[0].Fields[0] == "changed" {
		t.Error("Derivations shares its slices with the table")
	}
}

func countRows(rows []Derivation, export string) int {
	n := 0
	for _, d := range rows {
		if d.Export == export {
			n++
		}
	}
	return n
}

// jsonNames lists the JSON option names of a struct type, embedded structs flattened.
func jsonNames(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			out = append(out, jsonNames(f.Type)...)
		case f.IsExported():
			out = append(out, name)
		}
	}
	return out
}

func TestSpecDefaults(t *testing.T) {
	for _, tt := range []struct{ export, options string }{
		{Export, `{"oidc":{"issuer":"https://idp.example.com/"},"browserLogin":{"clientId":"gw"}}`},
		{Auth0Export, `{"auth0Domain":"a.auth0.com","clientId":"gw"}`},
		{GoogleExport, `{"clientId":"gw"}`},
	} {
		t.Run(tt.export, func(t *testing.T) {
			f, _, err := provision(t, tt.export, tt.options)
			if err != nil {
				t.Fatal(err)
			}
			s := f.specs[0]
			if s.Name != "signin" || !reflect.DeepEqual(s.Routes, routes) {
				t.Errorf("name %q routes %v", s.Name, s.Routes)
			}
			if s.StateTTL != 15*time.Minute || s.SessionTTL != 8*time.Hour || s.AccessTokenTTL != 15*time.Minute || s.RefreshTokenTTL != 30*24*time.Hour {
				t.Errorf("TTLs state %v session %v access %v refresh %v", s.StateTTL, s.SessionTTL, s.AccessTokenTTL, s.RefreshTokenTTL)
			}
			if !s.CIMDEnabled || s.CIMDAllowedHosts != nil || s.DevLogin {
				t.Errorf("CIMD %v %v, devLogin %v", s.CIMDEnabled, s.CIMDAllowedHosts, s.DevLogin)
			}
			idp := s.IdP
			if idp == nil {
				t.Fatal("no IdP")
			}
			if idp.PKCE != "S256" || idp.Scope != "openid profile email" || idp.SubjectClaim != "sub" || idp.RolesClaim != "roles" ||
				idp.GroupsClaim != "groups" || idp.RemoteTimeout != 10*time.Second || idp.ClientID != "gw" || !idp.ClientSecret.IsZero() {
				t.Errorf("IdP %+v", *idp)
			}
		})
	}
}

func TestSpecOptions(t *testing.T) {
	f, _, err := provision(t, Export, `{"oidc":{"issuer":"https://idp.example.com/","jwksUrl":"https://idp.example.com/jwks","audience":"api","subjectClaim":"oid","rolesClaim":"r","groupsClaim":"g"},
		"browserLogin":{"url":"https://idp.example.com/authorize","tokenUrl":"https://idp.example.com/token","clientId":"gw","clientSecret":"s3cr3t",
			"scope":"openid email","pkce":"none","remoteTimeoutMs":2500,"stateTtlSeconds":120,"sessionTtlSeconds":3600,"devLogin":true},
		"gateway":{"accessTokenTtlSeconds":300,"refreshTokenTtlSeconds":86400,"cimdEnabled":false}}`)
	if err != nil {
		t.Fatal(err)
	}
	s := f.specs[0]
	want := policy.IdPSpec{Issuer: "https://idp.example.com/", JWKSURL: "https://idp.example.com/jwks", AuthorizeURL: "https://idp.example.com/authorize",
		TokenURL: "https://idp.example.com/token", ClientID: "gw", ClientSecret: "s3cr3t", Scope: "openid email", Audience: "api", PKCE: "none",
		SubjectClaim: "oid", RolesClaim: "r", GroupsClaim: "g", RemoteTimeout: 2500 * time.Millisecond}
	if *s.IdP != want {
		t.Errorf("IdP\n got %+v\nwant %+v", *s.IdP, want)
	}
	if !s.DevLogin || s.StateTTL != 2*time.Minute || s.SessionTTL != time.Hour || s.AccessTokenTTL != 5*time.Minute || s.RefreshTokenTTL != 24*time.Hour || s.CIMDEnabled {
		t.Errorf("spec %+v", s)
	}

	// The development sign-in alone has no IdP; CIMD hosts are kept (lower-cased).
	f, _, err = provision(t, Export, `{"browserLogin":{"devLogin":true},"gateway":{"cimdAllowedHosts":["Claude.AI","*.example.com"]}}`)
	if err != nil {
		t.Fatal(err)
	}
	if s := f.specs[0]; s.IdP != nil || !s.DevLogin || !s.CIMDEnabled || !slices.Equal(s.CIMDAllowedHosts, []string{"claude.ai", "*.example.com"}) {
		t.Errorf("dev-login spec %+v", s)
	}

	// A wrapper's overrides and claims.
	f, _, err = provision(t, OktaExport, `{"oktaDomain":"acme.okta.com","clientId":"gw","clientSecret":"s3cr3t","scope":"openid groups","subjectClaim":"uid","groupsClaim":"grp",
		"browserLoginOverrides":{"pkce":"none","remoteTimeoutMs":500,"stateTtlSeconds":60,"sessionTtlSeconds":300},"gateway":{"refreshTokenTtlSeconds":900}}`)
	if err != nil {
		t.Fatal(err)
	}
	s = f.specs[0]
	if idp := s.IdP; idp.PKCE != "none" || idp.RemoteTimeout != 500*time.Millisecond || idp.Scope != "openid groups" || idp.SubjectClaim != "uid" ||
		idp.RolesClaim != "roles" || idp.GroupsClaim != "grp" || idp.ClientSecret.Reveal() != "s3cr3t" {
		t.Errorf("okta IdP %+v", *idp)
	}
	if s.StateTTL != time.Minute || s.SessionTTL != 5*time.Minute || s.RefreshTokenTTL != 15*time.Minute || s.AccessTokenTTL != 15*time.Minute {
		t.Errorf("okta spec %+v", s)
	}
}

// TestProvisionEveryExport: each export attaches once, with the policy's name and routes, and
// its HandleRequest is the sign-in server's step.
func TestProvisionEveryExport(t *testing.T) {
	const client = `"clientId":"gw"`
	options := map[string]string{
		Export:         `{"browserLogin":{"devLogin":true}}`,
		Auth0Export:    `{"auth0Domain":"a.auth0.com",` + client + `}`,
		OktaExport:     `{"oktaDomain":"acme.okta.com",` + client + `}`,
		EntraExport:    `{"tenantId":"9188040d-6c67-4c5b-b112-36a304b66dad",` + client + `}`,
		ClerkExport:    `{"frontendApiUrl":"https://clerk.example.com",` + client + `}`,
		GoogleExport:   `{` + client + `}`,
		KeycloakExport: `{"keycloakBaseUrl":"https://sso.example.com","realm":"r",` + client + `}`,
		CognitoExport:  `{"awsRegion":"us-east-1","userPoolId":"us-east-1_A","userPoolDomain":"p",` + client + `}`,
		WorkOSExport:   `{` + client + `}`,
		LogtoExport:    `{"logtoEndpoint":"https://t.logto.app",` + client + `}`,
		OneLoginExport: `{"oneLoginSubdomain":"acme",` + client + `}`,
		PingExport:     `{"customDomain":"login.example.com",` + client + `}`,
	}
	exports := []string{Export}
	for _, m := range wrapperModules {
		exports = append(exports, m.export)
	}
	for _, export := range exports {
		t.Run(export, func(t *testing.T) {
			opts, ok := options[export]
			if !ok {
				t.Fatal("no options for this export in the test")
			}
			f, p, err := provision(t, export, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.specs) != 1 || f.specs[0].Name != "signin" || len(f.specs[0].Routes) != 1 {
				t.Fatalf("attached %+v", f.specs)
			}
			resp, err := p.HandleRequest(&policy.Context{}, &http.Request{})
			if err != nil || resp.StatusCode != http.StatusTeapot || resp.Status != "signin" {
				t.Errorf("HandleRequest = %v, %v; want the sign-in server's step", resp, err)
			}
		})
	}
}

func TestProvisionFailures(t *testing.T) {
	const generic = `{"browserLogin":{"devLogin":true}}`
	t.Run("no sign-in server", func(t *testing.T) {
		for _, host := range []*policy.Host{nil, {}} {
			p := decode(t, Export, generic).(provisionable)
			err := p.Provision(context.Background(), &policy.Env{Name: "signin", Host: host})
			if err == nil || err.Error() != "mcp-oauth-inbound needs the gateway's sign-in server (Host.SignIn), and the gateway gave none" {
				t.Errorf("Provision = %v", err)
			}
		}
		p := decode(t, Auth0Export, `{"auth0Domain":"a.auth0.com","clientId":"gw"}`).(provisionable)
		err := p.Provision(context.Background(), &policy.Env{Name: "signin", Host: &policy.Host{}})
		if err == nil || !strings.Contains(err.Error(), "mcp-auth0-oauth-inbound needs the gateway's sign-in server (Host.SignIn)") {
			t.Errorf("wrapper Provision = %v", err)
		}
	})
	t.Run("ID-JAG enabled", func(t *testing.T) {
		const jag = `"idJag":{"enabled":true,"trustedIssuers":[{"issuer":"https://okta.example.com","jwksUrl":"https://okta.example.com/keys"}]}`
		for export, opts := range map[string]string{
			Export:       `{"browserLogin":{"devLogin":true},` + jag + `}`,
			GoogleExport: `{"clientId":"gw",` + jag + `}`,
		} {
			m, _ := policy.FindModule(export)
			if err := decode(t, export, opts).Validate(); err != nil {
				t.Errorf("%s: validation should pass offline, got %v", export, err)
			}
			f, _, err := provision(t, export, opts)
			want := m.PolicyType + ": idJag.enabled is true, but ID-JAG token exchange is not supported in this build of mcpgate; set idJag.enabled to false or remove idJag"
			if err == nil || err.Error() != want {
				t.Errorf("%s: Provision = %v, want %s", export, err, want)
			}
			if len(f.specs) != 0 {
				t.Errorf("%s: attached despite ID-JAG", export)
			}
		}
	})
	t.Run("invalid options", func(t *testing.T) {
		f, _, err := provision(t, Auth0Export, `{"auth0Domain":"https://a.auth0.com"}`)
		if err == nil || !strings.Contains(err.Error(), "options.auth0Domain") || len(f.specs) != 0 {
			t.Errorf("Provision = %v, attached %d", err, len(f.specs))
		}
	})
	t.Run("sign-in server refuses", func(t *testing.T) {
		p := decode(t, Export, generic).(provisionable)
		refusal := errors.New("route /mcp/linear is protected by two sign-in policies")
		err := p.Provision(context.Background(), &policy.Env{Name: "signin", Routes: routes, Host: &policy.Host{SignIn: &fakeSignIn{err: refusal}}})
		if !errors.Is(err, refusal) {
			t.Errorf("Provision = %v", err)
		}
		if _, err := p.HandleRequest(&policy.Context{}, &http.Request{}); err == nil {
			t.Error("HandleRequest of an unprovisioned policy succeeded")
		}
	})
}
