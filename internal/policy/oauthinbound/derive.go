package oauthinbound

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// Derivation is how a provider wrapper turns its options into the IdP's endpoints: one row per
// provider, or one per variant when an option changes the shape (Okta's org authorization
// server, Cognito's domain prefix, PingOne's custom domain). The wrappers resolve through this
// table and nothing else, so the documentation rendered from it cannot drift from the code.
type Derivation struct {
	// Provider is the IdP's name as people know it.
	Provider   string
	Export     string
	PolicyType string
	// Variant says when the row applies; empty for a provider with one row.
	Variant string
	// Fields are the provider-specific options the row reads (besides the shared ones).
	Fields []string
	// Issuer, JWKS, Authorize and Token are templates. {name} is the value of option name, with
	// a trailing slash removed from URL options; {clientId} is the shared clientId option and
	// {tld} the PingOne domain of region (com, eu, asia or ca).
	Issuer, JWKS, Authorize, Token string
}

// Exports and policy types of the provider wrappers (docs/configuration.md, "Provider wrappers").
const (
	Auth0Export         = "McpAuth0OAuthInboundPolicy"
	Auth0PolicyType     = "mcp-auth0-oauth-inbound"
	OktaExport          = "McpOktaOAuthInboundPolicy"
	OktaPolicyType      = "mcp-okta-oauth-inbound"
	EntraExport         = "McpEntraOAuthInboundPolicy"
	EntraPolicyType     = "mcp-entra-oauth-inbound"
	ClerkExport         = "McpClerkOAuthInboundPolicy"
	ClerkPolicyType     = "mcp-clerk-oauth-inbound"
	GoogleExport        = "McpGoogleOAuthInboundPolicy"
	GooglePolicyType    = "mcp-google-oauth-inbound"
	KeycloakExport      = "McpKeycloakOAuthInboundPolicy"
	KeycloakPolicyType  = "mcp-keycloak-oauth-inbound"
	CognitoExport       = "McpCognitoOAuthInboundPolicy"
	CognitoPolicyType   = "mcp-cognito-oauth-inbound"
	WorkOSExport        = "McpWorkosOAuthInboundPolicy"
	WorkOSPolicyType    = "mcp-workos-oauth-inbound"
	LogtoExport         = "McpLogtoOAuthInboundPolicy"
	LogtoPolicyType     = "mcp-logto-oauth-inbound"
	OneLoginExport      = "McpOneLoginOAuthInboundPolicy"
	OneLoginPolicyType  = "mcp-onelogin-oauth-inbound"
	PingExport          = "McpPingOAuthInboundPolicy"
	PingPolicyType      = "mcp-ping-oauth-inbound"
	variantOktaCustomAS = "`authorizationServerId` set"
	variantOktaOrgAS    = "`authorizationServerId` empty: the org authorization server"
	variantCognitoHost  = "`userPoolDomain` is a host"
	variantCognitoPref  = "`userPoolDomain` is a Cognito prefix (no dot)"
	variantPingRegion   = "no `customDomain`"
	variantPingCustom   = "`customDomain` set"
)

var derivations = []Derivation{
	{Provider: "Auth0", Export: Auth0Export, PolicyType: Auth0PolicyType, Fields: []string{"auth0Domain", "audience"},
		Issuer: "https://{auth0Domain}/", JWKS: "https://{auth0Domain}/.well-known/jwks.json",
		Authorize: "https://{auth0Domain}/authorize", Token: "https://{auth0Domain}/oauth/token"},
	{Provider: "Okta", Export: OktaExport, PolicyType: OktaPolicyType, Variant: variantOktaCustomAS, Fields: []string{"oktaDomain", "authorizationServerId"},
		Issuer: "https://{oktaDomain}/oauth2/{authorizationServerId}", JWKS: "https://{oktaDomain}/oauth2/{authorizationServerId}/v1/keys",
		Authorize: "https://{oktaDomain}/oauth2/{authorizationServerId}/v1/authorize", Token: "https://{oktaDomain}/oauth2/{authorizationServerId}/v1/token"},
	{Provider: "Okta", Export: OktaExport, PolicyType: OktaPolicyType, Variant: variantOktaOrgAS, Fields: []string{"oktaDomain"},
		Issuer: "https://{oktaDomain}", JWKS: "https://{oktaDomain}/oauth2/v1/keys",
		Authorize: "https://{oktaDomain}/oauth2/v1/authorize", Token: "https://{oktaDomain}/oauth2/v1/token"},
	{Provider: "Microsoft Entra ID", Export: EntraExport, PolicyType: EntraPolicyType, Fields: []string{"tenantId"},
		Issuer: "https://login.microsoftonline.com/{tenantId}/v2.0", JWKS: "https://login.microsoftonline.com/{tenantId}/discovery/v2.0/keys",
		Authorize: "https://login.microsoftonline.com/{tenantId}/oauth2/v2.0/authorize", Token: "https://login.microsoftonline.com/{tenantId}/oauth2/v2.0/token"},
	{Provider: "Clerk", Export: ClerkExport, PolicyType: ClerkPolicyType, Fields: []string{"frontendApiUrl"},
		Issuer: "{frontendApiUrl}", JWKS: "{frontendApiUrl}/.well-known/jwks.json",
		Authorize: "{frontendApiUrl}/oauth/authorize", Token: "{frontendApiUrl}/oauth/token"},
	{Provider: "Google", Export: GoogleExport, PolicyType: GooglePolicyType,
		Issuer: "https://accounts.google.com", JWKS: "https://www.googleapis.com/oauth2/v3/certs",
		Authorize: "https://accounts.google.com/o/oauth2/v2/auth", Token: "https://oauth2.googleapis.com/token"},
	{Provider: "Keycloak", Export: KeycloakExport, PolicyType: KeycloakPolicyType, Fields: []string{"keycloakBaseUrl", "realm"},
		Issuer: "{keycloakBaseUrl}/realms/{realm}", JWKS: "{keycloakBaseUrl}/realms/{realm}/protocol/openid-connect/certs",
		Authorize: "{keycloakBaseUrl}/realms/{realm}/protocol/openid-connect/auth", Token: "{keycloakBaseUrl}/realms/{realm}/protocol/openid-connect/token"},
	{Provider: "Amazon Cognito", Export: CognitoExport, PolicyType: CognitoPolicyType, Variant: variantCognitoHost, Fields: []string{"awsRegion", "userPoolId", "userPoolDomain"},
		Issuer: "https://cognito-idp.{awsRegion}.amazonaws.com/{userPoolId}", JWKS: "https://cognito-idp.{awsRegion}.amazonaws.com/{userPoolId}/.well-known/jwks.json",
		Authorize: "https://{userPoolDomain}/oauth2/authorize", Token: "https://{userPoolDomain}/oauth2/token"},
	{Provider: "Amazon Cognito", Export: CognitoExport, PolicyType: CognitoPolicyType, Variant: variantCognitoPref, Fields: []string{"awsRegion", "userPoolId", "userPoolDomain"},
		Issuer: "https://cognito-idp.{awsRegion}.amazonaws.com/{userPoolId}", JWKS: "https://cognito-idp.{awsRegion}.amazonaws.com/{userPoolId}/.well-known/jwks.json",
		Authorize: "https://{userPoolDomain}.auth.{awsRegion}.amazoncognito.com/oauth2/authorize", Token: "https://{userPoolDomain}.auth.{awsRegion}.amazoncognito.com/oauth2/token"},
	{Provider: "WorkOS", Export: WorkOSExport, PolicyType: WorkOSPolicyType,
		Issuer: "https://api.workos.com", JWKS: "https://api.workos.com/sso/jwks/{clientId}",
		Authorize: "https://api.workos.com/user_management/authorize", Token: "https://api.workos.com/user_management/authenticate"},
	{Provider: "Logto", Export: LogtoExport, PolicyType: LogtoPolicyType, Fields: []string{"logtoEndpoint"},
		Issuer: "{logtoEndpoint}/oidc", JWKS: "{logtoEndpoint}/oidc/jwks",
		Authorize: "{logtoEndpoint}/oidc/auth", Token: "{logtoEndpoint}/oidc/token"},
	{Provider: "OneLogin", Export: OneLoginExport, PolicyType: OneLoginPolicyType, Fields: []string{"oneLoginSubdomain"},
		Issuer: "https://{oneLoginSubdomain}.onelogin.com/oidc/2", JWKS: "https://{oneLoginSubdomain}.onelogin.com/oidc/2/certs",
		Authorize: "https://{oneLoginSubdomain}.onelogin.com/oidc/2/auth", Token: "https://{oneLoginSubdomain}.onelogin.com/oidc/2/token"},
	{Provider: "PingOne", Export: PingExport, PolicyType: PingPolicyType, Variant: variantPingRegion, Fields: []string{"environmentId", "region"},
		Issuer: "https://auth.pingone.{tld}/{environmentId}/as", JWKS: "https://auth.pingone.{tld}/{environmentId}/as/jwks",
		Authorize: "https://auth.pingone.{tld}/{environmentId}/as/authorize", Token: "https://auth.pingone.{tld}/{environmentId}/as/token"},
	{Provider: "PingOne", Export: PingExport, PolicyType: PingPolicyType, Variant: variantPingCustom, Fields: []string{"customDomain"},
		Issuer: "https://{customDomain}/as", JWKS: "https://{customDomain}/as/jwks",
		Authorize: "https://{customDomain}/as/authorize", Token: "https://{customDomain}/as/token"},
}

// Derivations returns the derivation table of the provider wrappers, in documentation order.
func Derivations() []Derivation {
	out := make([]Derivation, len(derivations))
	for i, d := range derivations {
		d.Fields = append([]string(nil), d.Fields...)
		out[i] = d
	}
	return out
}

var placeholder = regexp.MustCompile(`\{[A-Za-z][A-Za-z0-9]*\}`)

// expand fills the templates of d from vars. A placeholder without a value is a programming
// error (the tests expand every row).
func (d Derivation) expand(vars map[string]string) (*policy.IdPSpec, error) {
	var missing []string
	fill := func(tmpl string) string {
		return placeholder.ReplaceAllStringFunc(tmpl, func(ph string) string {
			v, ok := vars[strings.Trim(ph, "{}")]
			if !ok {
				missing = append(missing, ph)
			}
			return v
		})
	}
	idp := &policy.IdPSpec{Issuer: fill(d.Issuer), JWKSURL: fill(d.JWKS), AuthorizeURL: fill(d.Authorize), TokenURL: fill(d.Token)}
	for _, u := range []string{d.Issuer, d.JWKS, d.Authorize, d.Token} {
		if strings.ContainsAny(placeholder.ReplaceAllString(u, ""), "{}") {
			missing = append(missing, "a malformed placeholder in "+u)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s derivation %q: no value for %s", d.Export, d.Variant, strings.Join(missing, ", "))
	}
	return idp, nil
}

// derivation finds the row of export and variant.
func derivation(export, variant string) (Derivation, bool) {
	for _, d := range derivations {
		if d.Export == export && d.Variant == variant {
			return d, true
		}
	}
	return Derivation{}, false
}
