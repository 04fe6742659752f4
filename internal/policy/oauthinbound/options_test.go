package oauthinbound

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// decode decodes options strictly, as the config loader does, into a fresh module of export.
func decode(t *testing.T, export, options string) policy.Validator {
	t.Helper()
	m, ok := policy.FindModule(export)
	if !ok {
		t.Fatalf("export %s is not registered", export)
	}
	v := m.New()
	dec := json.NewDecoder(strings.NewReader(options))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", options, err)
	}
	return v.(policy.Validator)
}

// lines splits a Validate error into its messages.
func lines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func checkMessages(t *testing.T, err error, want []string) {
	t.Helper()
	got := lines(err)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Validate():\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err != nil && strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("a secret value reached a message: %v", err)
	}
}

func TestValidateGeneric(t *testing.T) {
	const idp = `"oidc":{"issuer":"https://idp.example.com/"},"browserLogin":{"clientId":"gw","clientSecret":"s3cr3t"}`
	tests := []struct {
		name, options string
		want          []string
	}{
		{"minimal IdP", `{` + idp + `}`, nil},
		{"development sign-in only", `{"browserLogin":{"devLogin":true}}`, nil},
		{"IdP and development sign-in", `{"oidc":{"issuer":"https://idp.example.com/"},"browserLogin":{"clientId":"gw","devLogin":true}}`, nil},
		{"public client with PKCE", `{"oidc":{"issuer":"https://idp.example.com/"},"browserLogin":{"clientId":"gw"}}`, nil},
		{"everything", `{"oidc":{"issuer":"https://idp.example.com/","jwksUrl":"https://idp.example.com/jwks","audience":"api","subjectClaim":"oid","rolesClaim":"app_roles","groupsClaim":"grp"},
			"browserLogin":{"url":"https://idp.example.com/authorize","tokenUrl":"https://idp.example.com/token","clientId":"gw","clientSecret":"s3cr3t",
				"scope":"openid email","audience":"api","pkce":"none","remoteTimeoutMs":5000,"stateTtlSeconds":600,"sessionTtlSeconds":3600},
			"gateway":{"accessTokenTtlSeconds":600,"refreshTokenTtlSeconds":86400,"cimdEnabled":true,"cimdAllowedHosts":["claude.ai","*.example.com"]},
			"idJag":{"enabled":false}}`, nil},
		{"loopback http IdP", `{"oidc":{"issuer":"http://127.0.0.1:8080/realms/dev","jwksUrl":"http://localhost:8080/certs"},"browserLogin":{"clientId":"gw","url":"http://[::1]:8080/auth"}}`, nil},
		{"valid idJag", `{` + idp + `,"idJag":{"enabled":true,"trustedIssuers":[{"issuer":"https://okta.example.com","jwksUrl":"https://okta.example.com/keys","expectedClientIds":["a"],"subjectMapping":"iss_tenant_prefix"}],"authorizationDetailsTypesAllowed":["payment"]}}`, nil},

		{"nothing configured", `{}`, []string{
			"options: a sign-in method is required: oidc.issuer with browserLogin.clientId (your OpenID provider), or browserLogin.devLogin: true (the loopback-only development sign-in)",
		}},
		{"client without issuer", `{"browserLogin":{"clientId":"gw"}}`, []string{
			"options.oidc.issuer: required with browserLogin.clientId: the issuer of the OpenID provider people sign in at",
		}},
		{"issuer without client", `{"oidc":{"issuer":"https://idp.example.com/"}}`, []string{
			"options.browserLogin.clientId: required with oidc.issuer: the client id of the gateway's application at the IdP",
		}},
		{"IdP options with only the development sign-in", `{"oidc":{"jwksUrl":"https://idp.example.com/jwks"},"browserLogin":{"devLogin":true,"clientSecret":"s3cr3t","url":"https://idp.example.com/authorize"}}`, []string{
			"options.oidc.issuer: required with oidc.jwksUrl, browserLogin.url, browserLogin.clientSecret; remove them to use only browserLogin.devLogin",
		}},
		{"bad PKCE", `{` + idp[:len(idp)-1] + `,"pkce":"plain"}}`, []string{
			`options.browserLogin.pkce: must be S256 or none, got "plain"`,
		}},
		{"no PKCE for a public client", `{"oidc":{"issuer":"https://idp.example.com/"},"browserLogin":{"clientId":"gw","pkce":"none"}}`, []string{
			"options.browserLogin.pkce: none needs a clientSecret: a public client (no secret) must use PKCE; use S256",
		}},
		{"URLs", `{"oidc":{"issuer":"http://idp.example.com/?x=1","jwksUrl":"idp.example.com/jwks"},"browserLogin":{"clientId":"gw","url":"ftp://idp.example.com/a","tokenUrl":"http://idp.example.com/token"}}`, []string{
			`options.oidc.issuer: must be an absolute https URL (http only for localhost, 127.0.0.1 or ::1), got "http://idp.example.com/?x=1"`,
			`options.oidc.jwksUrl: must be an absolute https URL (http only for localhost, 127.0.0.1 or ::1), got "idp.example.com/jwks"`,
			`options.browserLogin.url: must be an absolute https URL (http only for localhost, 127.0.0.1 or ::1), got "ftp://idp.example.com/a"`,
			`options.browserLogin.tokenUrl: must be an absolute https URL (http only for localhost, 127.0.0.1 or ::1), got "http://idp.example.com/token"`,
		}},
		{"issuer with a fragment", `{"oidc":{"issuer":"https://idp.example.com/#x"},"browserLogin":{"clientId":"gw"}}`, []string{
			`options.oidc.issuer: must not have a query or fragment, got "https://idp.example.com/#x"`,
		}},
		{"two audiences", `{"oidc":{"issuer":"https://idp.example.com/","audience":"a"},"browserLogin":{"clientId":"gw","audience":"b"}}`, []string{
			`options.oidc.audience and options.browserLogin.audience: differ ("a" and "b"); mcpgate uses one audience, set it once`,
		}},
		{"scope without openid, bad claims", `{"oidc":{"issuer":"https://idp.example.com/","subjectClaim":"a b","groupsClaim":"x\"y"},"browserLogin":{"clientId":"gw","scope":"profile email"}}`, []string{
			`options.oidc.subjectClaim: must be a claim name without spaces or quotes, got "a b"`,
			`options.oidc.groupsClaim: must be a claim name without spaces or quotes, got "x\"y"`,
			`options.browserLogin.scope: must include openid (the gateway reads who signed in from the ID token), got "profile email"`,
		}},
		{"TTLs out of range", `{"browserLogin":{"devLogin":true,"remoteTimeoutMs":0,"stateTtlSeconds":30,"sessionTtlSeconds":60},"gateway":{"accessTokenTtlSeconds":-1,"refreshTokenTtlSeconds":0}}`, []string{
			"options.browserLogin.remoteTimeoutMs: must be between 100 and 120000, got 0",
			"options.browserLogin.stateTtlSeconds: must be between 60 and 3600, got 30",
			"options.browserLogin.sessionTtlSeconds: must be between 300 and 2592000, got 60",
			"options.gateway.accessTokenTtlSeconds: must be between 10 and 86400, got -1",
			"options.gateway.refreshTokenTtlSeconds: must be between 60 and 315360000, got 0",
		}},
		{"access outlives refresh", `{"browserLogin":{"devLogin":true},"gateway":{"accessTokenTtlSeconds":3600,"refreshTokenTtlSeconds":600}}`, []string{
			"options.gateway.accessTokenTtlSeconds: must not exceed refreshTokenTtlSeconds (600), got 3600",
		}},
		{"CIMD hosts", `{"browserLogin":{"devLogin":true},"gateway":{"cimdEnabled":false,"cimdAllowedHosts":["https://claude.ai","*","*.com","ok.example.com"]}}`, []string{
			`options.gateway.cimdAllowedHosts[0]: must be a host name such as claude.ai or a wildcard such as *.example.com, got "https://claude.ai"`,
			`options.gateway.cimdAllowedHosts[1]: must be a host name such as claude.ai or a wildcard such as *.example.com, got "*"`,
			`options.gateway.cimdAllowedHosts[2]: must be a host name such as claude.ai or a wildcard such as *.example.com, got "*.com"`,
			"options.gateway.cimdAllowedHosts: only used with cimdEnabled: true",
		}},
		{"idJag enabled without issuers", `{"browserLogin":{"devLogin":true},"idJag":{"enabled":true}}`, []string{
			"options.idJag.trustedIssuers: required with idJag.enabled: at least one issuer whose assertions are accepted",
		}},
		{"idJag issuer problems", `{"browserLogin":{"devLogin":true},"idJag":{"enabled":true,"trustedIssuers":[{"expectedClientIds":[""],"subjectMapping":"email"},{"issuer":"http://x.example.com","jwksUrl":"x"}],"authorizationDetailsTypesAllowed":[" "]}}`, []string{
			"options.idJag.trustedIssuers[0].issuer: required",
			"options.idJag.trustedIssuers[0].jwksUrl: required",
			"options.idJag.trustedIssuers[0].expectedClientIds[0]: must not be empty",
			`options.idJag.trustedIssuers[0].subjectMapping: must be one of iss_prefix, iss_tenant_prefix, sub_id_only, got "email"`,
			`options.idJag.trustedIssuers[1].issuer: must be an absolute https URL (http only for localhost, 127.0.0.1 or ::1), got "http://x.example.com"`,
			`options.idJag.trustedIssuers[1].jwksUrl: must be an absolute https URL (http only for localhost, 127.0.0.1 or ::1), got "x"`,
			"options.idJag.authorizationDetailsTypesAllowed[0]: must not be empty",
		}},
		{"idJag disabled: written values still checked, nothing required", `{"browserLogin":{"devLogin":true},"idJag":{"trustedIssuers":[{"subjectMapping":"x"}]}}`, []string{
			`options.idJag.trustedIssuers[0].subjectMapping: must be one of iss_prefix, iss_tenant_prefix, sub_id_only, got "x"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMessages(t, decode(t, Export, tt.options).Validate(), tt.want)
		})
	}
}

func TestValidateWrappers(t *testing.T) {
	const client = `"clientId":"gw","clientSecret":"s3cr3t"`
	tests := []struct {
		name, export, options string
		want                  []string
	}{
		// Shared options, through the Auth0 wrapper.
		{"auth0 minimal", Auth0Export, `{"auth0Domain":"my-tenant.us.auth0.com",` + client + `}`, nil},
		{"auth0 everything", Auth0Export, `{"auth0Domain":"login.example.com","audience":"https://api.example.com",` + client + `,"scope":"openid profile email offline_access",
			"subjectClaim":"email","rolesClaim":"https://example.com/roles","groupsClaim":"https://example.com/groups",
			"browserLoginOverrides":{"remoteTimeoutMs":2000,"stateTtlSeconds":300,"sessionTtlSeconds":7200,"pkce":"none"},
			"gateway":{"accessTokenTtlSeconds":300,"refreshTokenTtlSeconds":604800,"cimdEnabled":false},"idJag":{"enabled":false}}`, nil},
		{"auth0 public client", Auth0Export, `{"auth0Domain":"my-tenant.us.auth0.com","clientId":"gw"}`, nil},
		{"auth0 nothing", Auth0Export, `{}`, []string{
			"options.auth0Domain: required: your Auth0 tenant's domain, such as my-tenant.us.auth0.com",
			"options.clientId: required: the client id of the gateway's application at Auth0",
		}},
		{"auth0 URL as domain", Auth0Export, `{"auth0Domain":"https://my-tenant.us.auth0.com/",` + client + `}`, []string{
			`options.auth0Domain: must be a bare host name such as my-tenant.us.auth0.com, without https://, got "https://my-tenant.us.auth0.com/"`,
		}},
		{"auth0 domain with a path", Auth0Export, `{"auth0Domain":"my-tenant.us.auth0.com/",` + client + `}`, []string{
			`options.auth0Domain: must be a bare host name such as my-tenant.us.auth0.com, without a path, got "my-tenant.us.auth0.com/"`,
		}},
		{"auth0 shared option problems", Auth0Export, `{"auth0Domain":"my_tenant!.auth0.com","clientId":"gw","scope":"email","subjectClaim":"a b",
			"browserLoginOverrides":{"pkce":"none","stateTtlSeconds":10},"gateway":{"accessTokenTtlSeconds":100000}}`, []string{
			`options.auth0Domain: must be a host name such as my-tenant.us.auth0.com, got "my_tenant!.auth0.com"`,
			`options.scope: must include openid (the gateway reads who signed in from the ID token), got "email"`,
			`options.subjectClaim: must be a claim name without spaces or quotes, got "a b"`,
			"options.browserLoginOverrides.stateTtlSeconds: must be between 60 and 3600, got 10",
			"options.browserLoginOverrides.pkce: none needs a clientSecret: a public client (no secret) must use PKCE; use S256",
			"options.gateway.accessTokenTtlSeconds: must be between 10 and 86400, got 100000",
		}},
		{"auth0 bad pkce", Auth0Export, `{"auth0Domain":"a.auth0.com",` + client + `,"browserLoginOverrides":{"pkce":"plain"}}`, []string{
			`options.browserLoginOverrides.pkce: must be S256 or none, got "plain"`,
		}},

		{"okta custom AS", OktaExport, `{"oktaDomain":"acme.okta.com","authorizationServerId":"default",` + client + `}`, nil},
		{"okta org AS", OktaExport, `{"oktaDomain":"acme.okta.com",` + client + `}`, nil},
		{"okta problems", OktaExport, `{"oktaDomain":"https://acme.okta.com","authorizationServerId":"oauth2/default",` + client + `}`, []string{
			`options.oktaDomain: must be a bare host name such as acme.okta.com, without https://, got "https://acme.okta.com"`,
			`options.authorizationServerId: must be an authorization server id such as default or aus1a2b3c4d5e6f7g8h9, got "oauth2/default"`,
		}},
		{"okta nothing", OktaExport, `{}`, []string{
			"options.oktaDomain: required: your Okta domain, such as acme.okta.com",
			"options.clientId: required: the client id of the gateway's application at Okta",
		}},

		{"entra", EntraExport, `{"tenantId":"9188040D-6C67-4C5B-B112-36A304B66DAD",` + client + `}`, nil},
		{"entra common", EntraExport, `{"tenantId":"common",` + client + `}`, []string{
			`options.tenantId: must be your tenant's Directory (tenant) ID, not the multi-tenant alias "common": the gateway checks the ID token's issuer exactly, and Entra names each user's own tenant there`,
		}},
		{"entra organizations", EntraExport, `{"tenantId":"Organizations",` + client + `}`, []string{
			`options.tenantId: must be your tenant's Directory (tenant) ID, not the multi-tenant alias "Organizations": the gateway checks the ID token's issuer exactly, and Entra names each user's own tenant there`,
		}},
		{"entra domain", EntraExport, `{"tenantId":"contoso.onmicrosoft.com",` + client + `}`, []string{
			`options.tenantId: must be the Directory (tenant) ID, a GUID such as 9188040d-6c67-4c5b-b112-36a304b66dad (a domain cannot be used: Entra's ID tokens name the tenant by its GUID), got "contoso.onmicrosoft.com"`,
		}},
		{"entra nothing", EntraExport, `{}`, []string{
			"options.tenantId: required: your Directory (tenant) ID, a GUID",
			"options.clientId: required: the client id of the gateway's application at Microsoft Entra ID",
		}},

		{"clerk", ClerkExport, `{"frontendApiUrl":"https://clerk.example.com/",` + client + `}`, nil},
		{"clerk http", ClerkExport, `{"frontendApiUrl":"http://clerk.example.com",` + client + `}`, []string{
			`options.frontendApiUrl: must be an absolute https URL (http only for localhost, 127.0.0.1 or ::1), got "http://clerk.example.com"`,
		}},
		{"clerk path", ClerkExport, `{"frontendApiUrl":"https://clerk.example.com/v1",` + client + `}`, []string{
			`options.frontendApiUrl: must be a URL without a path such as https://clerk.example.com, got "https://clerk.example.com/v1"`,
		}},
		{"clerk nothing", ClerkExport, `{` + client + `}`, []string{
			"options.frontendApiUrl: required: your Clerk instance's Frontend API URL, such as https://clerk.example.com",
		}},

		{"google", GoogleExport, `{` + client + `}`, nil},
		{"google nothing", GoogleExport, `{}`, []string{
			"options.clientId: required: the client id of the gateway's application at Google",
		}},

		{"keycloak", KeycloakExport, `{"keycloakBaseUrl":"https://sso.example.com/auth/","realm":"acme",` + client + `}`, nil},
		{"keycloak local", KeycloakExport, `{"keycloakBaseUrl":"http://localhost:8080","realm":"dev",` + client + `}`, nil},
		{"keycloak realm in URL", KeycloakExport, `{"keycloakBaseUrl":"https://sso.example.com/realms/acme","realm":"a/b",` + client + `}`, []string{
			`options.keycloakBaseUrl: must be the server's base URL without /realms/…; put the realm name in realm, got "https://sso.example.com/realms/acme"`,
			`options.realm: must be a realm name without spaces, '/', '?', '#' or '%', got "a/b"`,
		}},
		{"keycloak nothing", KeycloakExport, `{` + client + `}`, []string{
			"options.keycloakBaseUrl: required: your Keycloak server's base URL, such as https://sso.example.com",
			"options.realm: required: the Keycloak realm people sign in to",
		}},

		{"cognito host", CognitoExport, `{"awsRegion":"us-east-1","userPoolId":"us-east-1_AbCdEf123","userPoolDomain":"auth.example.com",` + client + `}`, nil},
		{"cognito prefix", CognitoExport, `{"awsRegion":"eu-west-2","userPoolId":"eu-west-2_AbC","userPoolDomain":"my-pool",` + client + `}`, nil},
		{"cognito problems", CognitoExport, `{"awsRegion":"us-east-1","userPoolId":"eu-west-1_AbC","userPoolDomain":"https://auth.example.com",` + client + `}`, []string{
			"options.userPoolId: is a pool of region eu-west-1, but awsRegion is us-east-1",
			`options.userPoolDomain: must be a bare host name such as auth.example.com, without https://, got "https://auth.example.com"`,
		}},
		{"cognito bad values", CognitoExport, `{"awsRegion":"US East","userPoolId":"AbC","userPoolDomain":"My_Pool",` + client + `}`, []string{
			`options.awsRegion: must be an AWS region such as us-east-1, got "US East"`,
			`options.userPoolId: must be a user pool ID such as us-east-1_AbCdEf123, got "AbC"`,
			`options.userPoolDomain: must be a host such as auth.example.com or a Cognito domain prefix (lower-case letters, digits and '-'), got "My_Pool"`,
		}},
		{"cognito nothing", CognitoExport, `{` + client + `}`, []string{
			"options.awsRegion: required: the AWS region of the user pool, such as us-east-1",
			"options.userPoolId: required: the user pool ID, such as us-east-1_AbCdEf123",
			"options.userPoolDomain: required: the user pool's domain: a host such as auth.example.com, or its Cognito prefix",
		}},

		{"workos", WorkOSExport, `{"clientId":"client_01HXYZ","clientSecret":"s3cr3t"}`, nil},
		{"workos nothing", WorkOSExport, `{}`, []string{
			"options.clientId: required: the client id of the gateway's application at WorkOS",
		}},

		{"logto", LogtoExport, `{"logtoEndpoint":"https://your-tenant.logto.app",` + client + `}`, nil},
		{"logto with /oidc", LogtoExport, `{"logtoEndpoint":"https://your-tenant.logto.app/oidc/",` + client + `}`, []string{
			`options.logtoEndpoint: must be the endpoint without /oidc (the issuer is derived as {logtoEndpoint}/oidc), got "https://your-tenant.logto.app/oidc/"`,
		}},
		{"logto nothing", LogtoExport, `{` + client + `}`, []string{
			"options.logtoEndpoint: required: your Logto endpoint, such as https://your-tenant.logto.app",
		}},

		{"onelogin", OneLoginExport, `{"oneLoginSubdomain":"acme",` + client + `}`, nil},
		{"onelogin host", OneLoginExport, `{"oneLoginSubdomain":"acme.onelogin.com",` + client + `}`, []string{
			`options.oneLoginSubdomain: must be the subdomain only, such as acme for acme.onelogin.com, got "acme.onelogin.com"`,
		}},
		{"onelogin nothing", OneLoginExport, `{` + client + `}`, []string{
			"options.oneLoginSubdomain: required: your OneLogin subdomain, such as acme for acme.onelogin.com",
		}},

		{"ping", PingExport, `{"environmentId":"11111111-1111-4111-8111-111111111111","region":"eu",` + client + `}`, nil},
		{"ping Zuplo region name", PingExport, `{"environmentId":"11111111-1111-4111-8111-111111111111","region":"north-america",` + client + `}`, nil},
		{"ping custom domain", PingExport, `{"customDomain":"login.example.com",` + client + `}`, nil},
		{"ping problems", PingExport, `{"environmentId":"env-1","region":"us","customDomain":"https://login.example.com",` + client + `}`, []string{
			`options.environmentId: must be a PingOne environment ID, a GUID such as 11111111-1111-4111-8111-111111111111, got "env-1"`,
			`options.region: must be one of com, eu, asia, ca (or north-america, europe, asia-pacific, canada), got "us"`,
			`options.customDomain: must be a bare host name such as login.example.com, without https://, got "https://login.example.com"`,
		}},
		{"ping nothing", PingExport, `{` + client + `}`, []string{
			"options.environmentId: required unless customDomain is set: your PingOne environment ID, a GUID",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMessages(t, decode(t, tt.export, tt.options).Validate(), tt.want)
		})
	}
}

// TestUnknownOptions: the wrappers take the shared options but not the generic policy's nested
// ones, and the generic policy no top-level clientId.
func TestUnknownOptions(t *testing.T) {
	for _, tt := range []struct{ export, options string }{
		{Auth0Export, `{"oidc":{}}`},
		{Auth0Export, `{"browserLogin":{}}`},
		{GoogleExport, `{"audience":"x"}`},
		{Export, `{"clientId":"x"}`},
		{Export, `{"browserLoginOverrides":{}}`},
		{PingExport, `{"browserLoginOverrides":{"devLogin":true}}`},
	} {
		m, _ := policy.FindModule(tt.export)
		dec := json.NewDecoder(strings.NewReader(tt.options))
		dec.DisallowUnknownFields()
		if err := dec.Decode(m.New()); err == nil {
			t.Errorf("%s accepted %s", tt.export, tt.options)
		}
	}
}
