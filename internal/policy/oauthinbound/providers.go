package oauthinbound

import (
	"context"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
)

var (
	oktaASPattern      = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	realmPattern       = regexp.MustCompile(`^[^\s/?#%]+$`)
	awsRegionPattern   = regexp.MustCompile(`^[a-z]{2}(?:-[a-z]+)+-[0-9]+$`)
	userPoolIDPattern  = regexp.MustCompile(`^([a-z]{2}(?:-[a-z]+)+-[0-9]+)_[A-Za-z0-9]+$`)
	dnsLabelPattern    = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	cognitoPrefixRegex = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
	// entraAliases are Entra's multi-tenant authorities: their tokens name each user's own
	// tenant as issuer, which an exact issuer check cannot accept.
	entraAliases = []string{"common", "organizations", "consumers"}
	// pingRegions maps region (the PingOne top-level domain, or Zuplo's long name) to the domain.
	pingRegions = map[string]string{
		"com": "com", "eu": "eu", "asia": "asia", "ca": "ca",
		"north-america": "com", "europe": "eu", "asia-pacific": "asia", "canada": "ca",
	}
)

// required reports an empty required option.
func (ps *problems) required(path, v, what string) bool {
	if v == "" {
		ps.add("%s: required: %s", path, what)
		return false
	}
	return true
}

// Auth0Policy is mcp-auth0-oauth-inbound (McpAuth0OAuthInboundPolicy).
type Auth0Policy struct {
	// Auth0Domain is the tenant's domain (or its custom domain) as a bare host.
	Auth0Domain string `json:"auth0Domain"`
	// Audience is sent as the audience parameter of the authorization request (an Auth0 API
	// identifier).
	Audience string `json:"audience,omitempty"`
	Common
}

// Validate checks the options without I/O.
func (p *Auth0Policy) Validate() error {
	var ps problems
	if ps.required("options.auth0Domain", p.Auth0Domain, "your Auth0 tenant's domain, such as my-tenant.us.auth0.com") {
		ps.checkHost("options.auth0Domain", p.Auth0Domain, "my-tenant.us.auth0.com")
	}
	p.validate(&ps, "Auth0")
	return ps.err()
}

func (p *Auth0Policy) derive() (string, map[string]string) {
	return "", map[string]string{"auth0Domain": p.Auth0Domain}
}

func (p *Auth0Policy) audience() string { return p.Audience }

// Spec resolves the options into the sign-in the gateway serves.
func (p *Auth0Policy) Spec() (policy.SignInSpec, error) { return resolve(Auth0Export, p) }

// Provision attaches the sign-in to the gateway's sign-in server (Host.SignIn).
func (p *Auth0Policy) Provision(_ context.Context, env *policy.Env) error {
	return p.attach(env, Auth0PolicyType, p.IDJag, p.Spec)
}

// OktaPolicy is mcp-okta-oauth-inbound (McpOktaOAuthInboundPolicy).
type OktaPolicy struct {
	// OktaDomain is the Okta org's domain as a bare host (acme.okta.com, or a custom domain).
	OktaDomain string `json:"oktaDomain"`
	// AuthorizationServerID names a custom authorization server ("default", "aus…"); empty means
	// the org authorization server.
	AuthorizationServerID string `json:"authorizationServerId,omitempty"`
	Common
}

// Validate checks the options without I/O.
func (p *OktaPolicy) Validate() error {
	var ps problems
	if ps.required("options.oktaDomain", p.OktaDomain, "your Okta domain, such as acme.okta.com") {
		ps.checkHost("options.oktaDomain", p.OktaDomain, "acme.okta.com")
	}
	if id := p.AuthorizationServerID; id != "" && !oktaASPattern.MatchString(id) {
		ps.add("options.authorizationServerId: must be an authorization server id such as default or aus1a2b3c4d5e6f7g8h9, got %q", id)
	}
	p.validate(&ps, "Okta")
	return ps.err()
}

func (p *OktaPolicy) derive() (string, map[string]string) {
	vars := map[string]string{"oktaDomain": p.OktaDomain}
	if p.AuthorizationServerID == "" {
		return variantOktaOrgAS, vars
	}
	vars["authorizationServerId"] = p.AuthorizationServerID
	return variantOktaCustomAS, vars
}

// Spec resolves the options into the sign-in the gateway serves.
func (p *OktaPolicy) Spec() (policy.SignInSpec, error) { return resolve(OktaExport, p) }

// Provision attaches the sign-in to the gateway's sign-in server (Host.SignIn).
func (p *OktaPolicy) Provision(_ context.Context, env *policy.Env) error {
	return p.attach(env, OktaPolicyType, p.IDJag, p.Spec)
}

// EntraPolicy is mcp-entra-oauth-inbound (McpEntraOAuthInboundPolicy). It is single-tenant.
type EntraPolicy struct {
	// TenantID is the Directory (tenant) ID, a GUID.
	TenantID string `json:"tenantId"`
	Common
}

// Validate checks the options without I/O.
func (p *EntraPolicy) Validate() error {
	var ps problems
	t := p.TenantID
	switch {
	case !ps.required("options.tenantId", t, "your Directory (tenant) ID, a GUID"):
	case slices.Contains(entraAliases, strings.ToLower(t)):
		ps.add("options.tenantId: must be your tenant's Directory (tenant) ID, not the multi-tenant alias %q: the gateway checks the ID token's issuer exactly, and Entra names each user's own tenant there", t)
	case !guidPattern.MatchString(t):
		ps.add("options.tenantId: must be the Directory (tenant) ID, a GUID such as 9188040d-6c67-4c5b-b112-36a304b66dad (a domain cannot be used: Entra's ID tokens name the tenant by its GUID), got %q", t)
	}
	p.validate(&ps, "Microsoft Entra ID")
	return ps.err()
}

func (p *EntraPolicy) derive() (string, map[string]string) {
	return "", map[string]string{"tenantId": strings.ToLower(p.TenantID)}
}

// Spec resolves the options into the sign-in the gateway serves.
func (p *EntraPolicy) Spec() (policy.SignInSpec, error) { return resolve(EntraExport, p) }

// Provision attaches the sign-in to the gateway's sign-in server (Host.SignIn).
func (p *EntraPolicy) Provision(_ context.Context, env *policy.Env) error {
	return p.attach(env, EntraPolicyType, p.IDJag, p.Spec)
}

// ClerkPolicy is mcp-clerk-oauth-inbound (McpClerkOAuthInboundPolicy).
type ClerkPolicy struct {
	// FrontendAPIURL is the instance's Frontend API URL, e.g. https://clerk.example.com.
	FrontendAPIURL string `json:"frontendApiUrl"`
	Common
}

// Validate checks the options without I/O.
func (p *ClerkPolicy) Validate() error {
	var ps problems
	if ps.required("options.frontendApiUrl", p.FrontendAPIURL, "your Clerk instance's Frontend API URL, such as https://clerk.example.com") {
		ps.checkBaseURL("options.frontendApiUrl", p.FrontendAPIURL, false, "https://clerk.example.com")
	}
	p.validate(&ps, "Clerk")
	return ps.err()
}

func (p *ClerkPolicy) derive() (string, map[string]string) {
	return "", map[string]string{"frontendApiUrl": trimURL(p.FrontendAPIURL)}
}

// Spec resolves the options into the sign-in the gateway serves.
func (p *ClerkPolicy) Spec() (policy.SignInSpec, error) { return resolve(ClerkExport, p) }

// Provision attaches the sign-in to the gateway's sign-in server (Host.SignIn).
func (p *ClerkPolicy) Provision(_ context.Context, env *policy.Env) error {
	return p.attach(env, ClerkPolicyType, p.IDJag, p.Spec)
}

// GooglePolicy is mcp-google-oauth-inbound (McpGoogleOAuthInboundPolicy): Google's fixed
// endpoints, no provider-specific options.
type GooglePolicy struct {
	Common
}

// Validate checks the options without I/O.
func (p *GooglePolicy) Validate() error {
	var ps problems
	p.validate(&ps, "Google")
	return ps.err()
}

func (p *GooglePolicy) derive() (string, map[string]string) { return "", nil }

// Spec resolves the options into the sign-in the gateway serves.
func (p *GooglePolicy) Spec() (policy.SignInSpec, error) { return resolve(GoogleExport, p) }

// Provision attaches the sign-in to the gateway's sign-in server (Host.SignIn).
func (p *GooglePolicy) Provision(_ context.Context, env *policy.Env) error {
	return p.attach(env, GooglePolicyType, p.IDJag, p.Spec)
}

// KeycloakPolicy is mcp-keycloak-oauth-inbound (McpKeycloakOAuthInboundPolicy).
type KeycloakPolicy struct {
	// KeycloakBaseURL is the server's base URL (with /auth on Keycloak before 17), without
	// /realms/….
	KeycloakBaseURL string `json:"keycloakBaseUrl"`
	Realm           string `json:"realm"`
	Common
}

// Validate checks the options without I/O.
func (p *KeycloakPolicy) Validate() error {
	var ps problems
	if ps.required("options.keycloakBaseUrl", p.KeycloakBaseURL, "your Keycloak server's base URL, such as https://sso.example.com") &&
		ps.checkBaseURL("options.keycloakBaseUrl", p.KeycloakBaseURL, true, "https://sso.example.com") {
		if u, _ := url.Parse(p.KeycloakBaseURL); strings.Contains(u.Path+"/", "/realms/") {
			ps.add("options.keycloakBaseUrl: must be the server's base URL without /realms/…; put the realm name in realm, got %q", p.KeycloakBaseURL)
		}
	}
	if ps.required("options.realm", p.Realm, "the Keycloak realm people sign in to") && !realmPattern.MatchString(p.Realm) {
		ps.add("options.realm: must be a realm name without spaces, '/', '?', '#' or '%%', got %q", p.Realm)
	}
	p.validate(&ps, "Keycloak")
	return ps.err()
}

func (p *KeycloakPolicy) derive() (string, map[string]string) {
	return "", map[string]string{"keycloakBaseUrl": trimURL(p.KeycloakBaseURL), "realm": p.Realm}
}

// Spec resolves the options into the sign-in the gateway serves.
func (p *KeycloakPolicy) Spec() (policy.SignInSpec, error) { return resolve(KeycloakExport, p) }

// Provision attaches the sign-in to the gateway's sign-in server (Host.SignIn).
func (p *KeycloakPolicy) Provision(_ context.Context, env *policy.Env) error {
	return p.attach(env, KeycloakPolicyType, p.IDJag, p.Spec)
}

// CognitoPolicy is mcp-cognito-oauth-inbound (McpCognitoOAuthInboundPolicy). Cognito serves
// discovery and keys from cognito-idp.{region}.amazonaws.com and the browser login from the user
// pool's domain.
type CognitoPolicy struct {
	AWSRegion  string `json:"awsRegion"`
	UserPoolID string `json:"userPoolId"`
	// UserPoolDomain is the hosted UI domain: a host (auth.example.com,
	// my-pool.auth.us-east-1.amazoncognito.com) or just the Cognito prefix (my-pool).
	UserPoolDomain string `json:"userPoolDomain"`
	Common
}

// Validate checks the options without I/O.
func (p *CognitoPolicy) Validate() error {
	var ps problems
	regionOK := false
	if ps.required("options.awsRegion", p.AWSRegion, "the AWS region of the user pool, such as us-east-1") {
		if regionOK = awsRegionPattern.MatchString(p.AWSRegion); !regionOK {
			ps.add("options.awsRegion: must be an AWS region such as us-east-1, got %q", p.AWSRegion)
		}
	}
	if ps.required("options.userPoolId", p.UserPoolID, "the user pool ID, such as us-east-1_AbCdEf123") {
		m := userPoolIDPattern.FindStringSubmatch(p.UserPoolID)
		switch {
		case m == nil:
			ps.add("options.userPoolId: must be a user pool ID such as us-east-1_AbCdEf123, got %q", p.UserPoolID)
		case regionOK && m[1] != p.AWSRegion:
			ps.add("options.userPoolId: is a pool of region %s, but awsRegion is %s", m[1], p.AWSRegion)
		}
	}
	if d := p.UserPoolDomain; ps.required("options.userPoolDomain", d, "the user pool's domain: a host such as auth.example.com, or its Cognito prefix") {
		if strings.ContainsAny(d, ".:/") {
			ps.checkHost("options.userPoolDomain", d, "auth.example.com")
		} else if !cognitoPrefixRegex.MatchString(d) {
			ps.add("options.userPoolDomain: must be a host such as auth.example.com or a Cognito domain prefix (lower-case letters, digits and '-'), got %q", d)
		}
	}
	p.validate(&ps, "Amazon Cognito")
	return ps.err()
}

func (p *CognitoPolicy) derive() (string, map[string]string) {
	vars := map[string]string{"awsRegion": p.AWSRegion, "userPoolId": p.UserPoolID, "userPoolDomain": p.UserPoolDomain}
	if strings.Contains(p.UserPoolDomain, ".") {
		return variantCognitoHost, vars
	}
	return variantCognitoPref, vars
}

// Spec resolves the options into the sign-in the gateway serves.
func (p *CognitoPolicy) Spec() (policy.SignInSpec, error) { return resolve(CognitoExport, p) }

// Provision attaches the sign-in to the gateway's sign-in server (Host.SignIn).
func (p *CognitoPolicy) Provision(_ context.Context, env *policy.Env) error {
	return p.attach(env, CognitoPolicyType, p.IDJag, p.Spec)
}

// WorkOSPolicy is mcp-workos-oauth-inbound (McpWorkosOAuthInboundPolicy): WorkOS AuthKit's
// fixed endpoints, its key set named by clientId.
type WorkOSPolicy struct {
	Common
}

// Validate checks the options without I/O.
func (p *WorkOSPolicy) Validate() error {
	var ps problems
	p.validate(&ps, "WorkOS")
	return ps.err()
}

func (p *WorkOSPolicy) derive() (string, map[string]string) { return "", nil }

// Spec resolves the options into the sign-in the gateway serves.
func (p *WorkOSPolicy) Spec() (policy.SignInSpec, error) { return resolve(WorkOSExport, p) }

// Provision attaches the sign-in to the gateway's sign-in server (Host.SignIn).
func (p *WorkOSPolicy) Provision(_ context.Context, env *policy.Env) error {
	return p.attach(env, WorkOSPolicyType, p.IDJag, p.Spec)
}

// LogtoPolicy is mcp-logto-oauth-inbound (McpLogtoOAuthInboundPolicy).
type LogtoPolicy struct {
	// LogtoEndpoint is the tenant's endpoint, e.g. https://your-tenant.logto.app, without /oidc.
	LogtoEndpoint string `json:"logtoEndpoint"`
	Common
}

// Validate checks the options without I/O.
func (p *LogtoPolicy) Validate() error {
	var ps problems
	if ps.required("options.logtoEndpoint", p.LogtoEndpoint, "your Logto endpoint, such as https://your-tenant.logto.app") &&
		ps.checkBaseURL("options.logtoEndpoint", p.LogtoEndpoint, true, "https://your-tenant.logto.app") &&
		strings.HasSuffix(trimURL(p.LogtoEndpoint), "/oidc") {
		ps.add("options.logtoEndpoint: must be the endpoint without /oidc (the issuer is derived as {logtoEndpoint}/oidc), got %q", p.LogtoEndpoint)
	}
	p.validate(&ps, "Logto")
	return ps.err()
}

func (p *LogtoPolicy) derive() (string, map[string]string) {
	return "", map[string]string{"logtoEndpoint": trimURL(p.LogtoEndpoint)}
}

// Spec resolves the options into the sign-in the gateway serves.
func (p *LogtoPolicy) Spec() (policy.SignInSpec, error) { return resolve(LogtoExport, p) }

// Provision attaches the sign-in to the gateway's sign-in server (Host.SignIn).
func (p *LogtoPolicy) Provision(_ context.Context, env *policy.Env) error {
	return p.attach(env, LogtoPolicyType, p.IDJag, p.Spec)
}

// OneLoginPolicy is mcp-onelogin-oauth-inbound (McpOneLoginOAuthInboundPolicy).
type OneLoginPolicy struct {
	// OneLoginSubdomain is the account's subdomain: acme for acme.onelogin.com.
	OneLoginSubdomain string `json:"oneLoginSubdomain"`
	Common
}

// Validate checks the options without I/O.
func (p *OneLoginPolicy) Validate() error {
	var ps problems
	if s := p.OneLoginSubdomain; ps.required("options.oneLoginSubdomain", s, "your OneLogin subdomain, such as acme for acme.onelogin.com") && !dnsLabelPattern.MatchString(s) {
		ps.add("options.oneLoginSubdomain: must be the subdomain only, such as acme for acme.onelogin.com, got %q", s)
	}
	p.validate(&ps, "OneLogin")
	return ps.err()
}

func (p *OneLoginPolicy) derive() (string, map[string]string) {
	return "", map[string]string{"oneLoginSubdomain": p.OneLoginSubdomain}
}

// Spec resolves the options into the sign-in the gateway serves.
func (p *OneLoginPolicy) Spec() (policy.SignInSpec, error) { return resolve(OneLoginExport, p) }

// Provision attaches the sign-in to the gateway's sign-in server (Host.SignIn).
func (p *OneLoginPolicy) Provision(_ context.Context, env *policy.Env) error {
	return p.attach(env, OneLoginPolicyType, p.IDJag, p.Spec)
}

// PingPolicy is mcp-ping-oauth-inbound (McpPingOAuthInboundPolicy), for PingOne cloud.
type PingPolicy struct {
	// EnvironmentID is the PingOne environment (a GUID); required unless customDomain is set.
	EnvironmentID string `json:"environmentId,omitempty"`
	// Region is the PingOne domain: com (default), eu, asia or ca; Zuplo's north-america,
	// europe, asia-pacific and canada are accepted too.
	Region string `json:"region,omitempty"`
	// CustomDomain is the environment's custom domain as a bare host; it replaces
	// auth.pingone.{tld}/{environmentId}.
	CustomDomain string `json:"customDomain,omitempty"`
	Common
}

// Validate checks the options without I/O.
func (p *PingPolicy) Validate() error {
	var ps problems
	switch {
	case p.EnvironmentID == "" && p.CustomDomain == "":
		ps.add("options.environmentId: required unless customDomain is set: your PingOne environment ID, a GUID")
	case p.EnvironmentID != "" && !guidPattern.MatchString(p.EnvironmentID):
		ps.add("options.environmentId: must be a PingOne environment ID, a GUID such as 11111111-1111-4111-8111-111111111111, got %q", p.EnvironmentID)
	}
	if _, ok := pingRegions[p.Region]; p.Region != "" && !ok {
		ps.add("options.region: must be one of com, eu, asia, ca (or north-america, europe, asia-pacific, canada), got %q", p.Region)
	}
	if p.CustomDomain != "" {
		ps.checkHost("options.customDomain", p.CustomDomain, "login.example.com")
	}
	p.validate(&ps, "PingOne")
	return ps.err()
}

func (p *PingPolicy) derive() (string, map[string]string) {
	if p.CustomDomain != "" {
		return variantPingCustom, map[string]string{"customDomain": p.CustomDomain}
	}
	tld := pingRegions[p.Region]
	if tld == "" {
		tld = "com"
	}
	return variantPingRegion, map[string]string{"environmentId": strings.ToLower(p.EnvironmentID), "tld": tld}
}

// Spec resolves the options into the sign-in the gateway serves.
func (p *PingPolicy) Spec() (policy.SignInSpec, error) { return resolve(PingExport, p) }

// Provision attaches the sign-in to the gateway's sign-in server (Host.SignIn).
func (p *PingPolicy) Provision(_ context.Context, env *policy.Env) error {
	return p.attach(env, PingPolicyType, p.IDJag, p.Spec)
}

// wrapperModules are the provider wrappers init registers.
var wrapperModules = []struct {
	export, policyType string
	new                func() any
}{
	{Auth0Export, Auth0PolicyType, func() any { return new(Auth0Policy) }},
	{OktaExport, OktaPolicyType, func() any { return new(OktaPolicy) }},
	{EntraExport, EntraPolicyType, func() any { return new(EntraPolicy) }},
	{ClerkExport, ClerkPolicyType, func() any { return new(ClerkPolicy) }},
	{GoogleExport, GooglePolicyType, func() any { return new(GooglePolicy) }},
	{KeycloakExport, KeycloakPolicyType, func() any { return new(KeycloakPolicy) }},
	{CognitoExport, CognitoPolicyType, func() any { return new(CognitoPolicy) }},
	{WorkOSExport, WorkOSPolicyType, func() any { return new(WorkOSPolicy) }},
	{LogtoExport, LogtoPolicyType, func() any { return new(LogtoPolicy) }},
	{OneLoginExport, OneLoginPolicyType, func() any { return new(OneLoginPolicy) }},
	{PingExport, PingPolicyType, func() any { return new(PingPolicy) }},
}

func init() {
	policy.Register(policy.Module{
		Export: Export, PolicyType: PolicyType, Kind: policy.KindInbound,
		// Sets the request user (the person who signed in).
		Authenticates: true,
		New:           func() any { return new(Policy) },
	})
	for _, m := range wrapperModules {
		policy.Register(policy.Module{
			Export: m.export, PolicyType: m.policyType, Kind: policy.KindInbound,
			Authenticates: true,
			New:           m.new,
		})
	}
}

var (
	_ wrapper = (*Auth0Policy)(nil)
	_ wrapper = (*OktaPolicy)(nil)
	_ wrapper = (*EntraPolicy)(nil)
	_ wrapper = (*ClerkPolicy)(nil)
	_ wrapper = (*GooglePolicy)(nil)
	_ wrapper = (*KeycloakPolicy)(nil)
	_ wrapper = (*CognitoPolicy)(nil)
	_ wrapper = (*WorkOSPolicy)(nil)
	_ wrapper = (*LogtoPolicy)(nil)
	_ wrapper = (*OneLoginPolicy)(nil)
	_ wrapper = (*PingPolicy)(nil)

	_ audiencer = (*Auth0Policy)(nil)

	_ policy.Provisioner = (*Auth0Policy)(nil)
	_ policy.Provisioner = (*OktaPolicy)(nil)
	_ policy.Provisioner = (*EntraPolicy)(nil)
	_ policy.Provisioner = (*ClerkPolicy)(nil)
	_ policy.Provisioner = (*GooglePolicy)(nil)
	_ policy.Provisioner = (*KeycloakPolicy)(nil)
	_ policy.Provisioner = (*CognitoPolicy)(nil)
	_ policy.Provisioner = (*WorkOSPolicy)(nil)
	_ policy.Provisioner = (*LogtoPolicy)(nil)
	_ policy.Provisioner = (*OneLoginPolicy)(nil)
	_ policy.Provisioner = (*PingPolicy)(nil)

	_ policy.Inbound = (*Auth0Policy)(nil)
	_ policy.Inbound = (*OktaPolicy)(nil)
	_ policy.Inbound = (*EntraPolicy)(nil)
	_ policy.Inbound = (*ClerkPolicy)(nil)
	_ policy.Inbound = (*GooglePolicy)(nil)
	_ policy.Inbound = (*KeycloakPolicy)(nil)
	_ policy.Inbound = (*CognitoPolicy)(nil)
	_ policy.Inbound = (*WorkOSPolicy)(nil)
	_ policy.Inbound = (*LogtoPolicy)(nil)
	_ policy.Inbound = (*OneLoginPolicy)(nil)
	_ policy.Inbound = (*PingPolicy)(nil)
)
