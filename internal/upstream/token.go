package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/vault"
)

// Token is what a token endpoint issued.
type Token struct {
	AccessToken  vault.Secret
	RefreshToken vault.Secret // may be empty: no refresh token issued
	TokenType    string
	// Expiry is zero when the reply had no expires_in: "unknown, refresh on 401".
	Expiry time.Time
	// Scopes granted: the reply's scope, else the scopes requested.
	Scopes []string
}

// IssuedUnder is what a connection must remember to refresh exactly where and how its grant was
// issued (docs/architecture.md#refreshed-only-where-issued).
type IssuedUnder struct {
	Issuer        string
	TokenEndpoint string
	ClientID      string
	AuthMethod    string
	Resource      string
}

// Matches reports whether a grant issued under g may still be refreshed given what discovery says
// now: same issuer and same resource. When not, the connection must be re-consented rather than send
// its refresh token somewhere new (docs/architecture.md#refreshed-only-where-issued).
func (g IssuedUnder) Matches(d *Discovery) bool {
	return d != nil && g.Issuer == d.AS.Issuer && g.Resource == d.Resource
}

// ExchangeRequest is an authorization code exchange.
type ExchangeRequest struct {
	Code     vault.Secret
	Verifier vault.Secret
	// Client is the client the authorization request was made with (its RedirectURI is sent).
	Client Client
	// TokenEndpoint is the discovered token endpoint of Client.Issuer.
	TokenEndpoint string
	// Resource is the canonical resource of the authorization request.
	Resource string
	// RequestedScopes are recorded as granted when the reply has no scope.
	RequestedScopes []string
}

// Exchange redeems an authorization code: grant_type=authorization_code with code_verifier,
// redirect_uri, resource, and the client's token endpoint authentication.
func (e *Engine) Exchange(ctx context.Context, up Upstream, r ExchangeRequest) (*Token, IssuedUnder, error) {
	issued := IssuedUnder{Issuer: r.Client.Issuer, TokenEndpoint: r.TokenEndpoint, ClientID: r.Client.ClientID, AuthMethod: r.Client.AuthMethod, Resource: r.Resource}
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {r.Code.Reveal()},
		"code_verifier": {r.Verifier.Reveal()},
		"redirect_uri":  {r.Client.RedirectURI},
	}
	if r.Resource != "" {
		form.Set("resource", r.Resource)
	}
	rep, err := e.tokenRequest(ctx, up, r.TokenEndpoint, form, r.Client.ClientID, r.Client.ClientSecret, r.Client.AuthMethod)
	if err != nil || rep.status/100 != 2 {
		return nil, issued, e.tokenFailure(ctx, up, opExchange, r.TokenEndpoint, r.Client.ClientID, rep, err)
	}
	tok, perr := parseTokenReply(rep, e.now(), r.RequestedScopes)
	if perr != nil {
		perr.URL = displayURL(r.TokenEndpoint)
		return nil, issued, perr
	}
	return tok, issued, nil
}

// RefreshRequest is one refresh_token grant with exactly what the connection remembers.
type RefreshRequest struct {
	IssuedUnder
	// ClientSecret for client_secret_basic/post (from the registration or the config).
	ClientSecret vault.Secret
	RefreshToken vault.Secret
	// Scopes granted so far: kept when the reply has no scope.
	Scopes []string
}

// Refresh performs ONE refresh_token grant at r.TokenEndpoint, sending r.Resource and the remembered
// client authentication. A reply without refresh_token keeps r.RefreshToken. Failures are *Error:
// IsGrantDead (invalid_grant, or 400/401 that is not invalid_client), IsClientRejected
// (invalid_client), isTransient (408, 429, 5xx, network, timeout; RetryAfter when given), and
// token_endpoint_not_found (404: cached discovery is dropped). Deduplication, leases and the
// decision to mark a connection for reconsent are the caller's.
func (e *Engine) Refresh(ctx context.Context, up Upstream, r RefreshRequest) (*Token, error) {
	if r.RefreshToken.IsZero() {
		return nil, &Error{Bucket: BucketUpstreamResponse, Code: CodeRefreshGrantInvalid, Reason: "the connection has no refresh token"}
	}
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {r.RefreshToken.Reveal()},
	}
	if r.Resource != "" {
		form.Set("resource", r.Resource)
	}
	rep, err := e.tokenRequest(ctx, up, r.TokenEndpoint, form, r.ClientID, r.ClientSecret, r.AuthMethod)
	if err != nil || rep.status/100 != 2 {
		return nil, e.tokenFailure(ctx, up, opRefresh, r.TokenEndpoint, r.ClientID, rep, err)
	}
	tok, perr := parseTokenReply(rep, e.now(), r.Scopes)
	if perr != nil {
		perr.URL = displayURL(r.TokenEndpoint)
		return nil, perr
	}
	if tok.RefreshToken.IsZero() {
		tok.RefreshToken = r.RefreshToken
	}
	return tok, nil
}

// RevokeRequest is an RFC 7009 revocation.
type RevokeRequest struct {
	Endpoint      string // the AS's revocation_endpoint
	ClientID      string
	ClientSecret  vault.Secret
	AuthMethod    string
	Token         vault.Secret
	TokenTypeHint string // refresh_token or access_token
}

// Revoke asks the AS to revoke a token (RFC 7009). Success includes the AS saying the token was
// already invalid (it answers 200 either way).
func (e *Engine) Revoke(ctx context.Context, up Upstream, r RevokeRequest) error {
	form := url.Values{"token": {r.Token.Reveal()}}
	if r.TokenTypeHint != "" {
		form.Set("token_type_hint", r.TokenTypeHint)
	}
	rep, err := e.tokenRequest(ctx, up, r.Endpoint, form, r.ClientID, r.ClientSecret, r.AuthMethod)
	if err == nil && rep.status/100 == 2 {
		return nil
	}
	return e.tokenFailure(ctx, up, opRevoke, r.Endpoint, r.ClientID, rep, err)
}

// tokenRequest POSTs a form to an AS endpoint with client authentication.
func (e *Engine) tokenRequest(ctx context.Context, up Upstream, endpoint string, form url.Values, clientID string, secret vault.Secret, method string) (*reply, error) {
	switch method {
	case AuthBasic:
		// RFC 6749 §2.3.1: form-encode the id and secret before Basic encoding.
	case AuthPost:
		form.Set("client_id", clientID)
		form.Set("client_secret", secret.Reveal())
	case AuthNone, "":
		form.Set("client_id", clientID)
	default:
		return nil, &Error{Bucket: BucketGatewayConfig, Code: CodeInvalidOption, Reason: fmt.Sprintf("unsupported token endpoint auth method %q", method)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, &Error{Bucket: BucketOAuthSetup, Code: CodeASMetadataInvalid, URL: displayURL(endpoint), Reason: "the endpoint is not a usable URL"}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if method == AuthBasic {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret.Reveal()))
	}
	return do(e.httpClient(up), req)
}

type tokenOp int

const (
	opExchange tokenOp = iota
	opRefresh
	opRevoke
)

// tokenFailure classifies a failed token-endpoint call. rep is nil when err is a transport error.
func (e *Engine) tokenFailure(ctx context.Context, up Upstream, op tokenOp, endpoint, clientID string, rep *reply, err error) error {
	if ue, ok := err.(*Error); ok {
		return ue
	}
	transient := map[tokenOp]string{opExchange: CodeTokenTransient, opRefresh: CodeRefreshTransient, opRevoke: CodeTokenTransient}[op]
	what := map[tokenOp]string{opExchange: "exchanging the authorization code", opRefresh: "refreshing the token", opRevoke: "revoking the token"}[op]
	base := &Error{URL: displayURL(endpoint)}
	if err != nil {
		code, bucket := transportCode(err)
		if code == CodeSSRFBlocked {
			base.Bucket, base.Code, base.Reason, base.Err = bucket, code, what+": the token endpoint is not an allowed address", err
			return base
		}
		base.Bucket, base.Code, base.Reason, base.Err = BucketUpstreamResponse, transient, what+": the authorization server did not answer", err
		return base
	}
	oe := parseOAuthError(rep)
	base.HTTPStatus = rep.status
	base.OAuthError = oe.Error
	base.OAuthErrorDescription = oe.ErrorDescription
	base.UpstreamBody, base.UpstreamContentType = upstreamBody(rep)
	base.RetryAfter = retryAfter(rep.header, e.now())
	detail := ""
	if oe.Error != "" {
		detail = ": " + oe.Error
		if oe.ErrorDescription != "" {
			detail += ": " + oe.ErrorDescription
		}
	}
	switch {
	case rep.status == http.StatusNotFound:
		// The endpoint moved: what discovery cached is stale
		// (docs/architecture.md#caches-and-invalidation).
		if ierr := e.Invalidate(ctx, up.ID); ierr != nil {
			base.Err = ierr
		}
		base.Bucket, base.Code = BucketOAuthSetup, CodeTokenEndpointNotFound
		base.Reason = what + ": the token endpoint answered 404; cached discovery and registration were dropped"
		return base
	case rep.status == http.StatusRequestTimeout || rep.status == http.StatusTooManyRequests || rep.status >= 500:
		base.Bucket, base.Code = BucketUpstreamResponse, transient
		base.Reason = fmt.Sprintf("%s: the authorization server answered HTTP %d; try again later", what, rep.status)
		return base
	case oe.Error == "invalid_client":
		return e.clientRejected(ctx, up, clientID, base)
	}
	switch op {
	case opRefresh:
		if rep.status == http.StatusBadRequest || rep.status == http.StatusUnauthorized {
			base.Bucket, base.Code = BucketUpstreamResponse, CodeRefreshGrantInvalid
			base.Reason = fmt.Sprintf("the authorization server no longer honours the refresh token (HTTP %d%s); the user must connect again", rep.status, detail)
			return base
		}
		base.Bucket, base.Code = BucketUpstreamResponse, CodeRefreshFailed
	case opExchange:
		base.Bucket, base.Code = BucketUpstreamResponse, CodeTokenExchangeFailed
	default:
		base.Bucket, base.Code = BucketUpstreamResponse, CodeRevocationFailed
	}
	base.Reason = fmt.Sprintf("%s: the authorization server answered HTTP %d%s", what, rep.status, detail)
	return base
}

// tokenReply is RFC 6749 §5.1, decoded leniently (expires_in as a number or a string).
type tokenReply struct {
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	RefreshToken string          `json:"refresh_token"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
	Scope        json.RawMessage `json:"scope"`
}

// parseTokenReply reads a 2xx token reply. Its errors never quote the body (it carries tokens).
func parseTokenReply(rep *reply, now time.Time, requested []string) (*Token, *Error) {
	bad := func(why string) *Error {
		return &Error{Bucket: BucketUpstreamResponse, Code: CodeTokenResponseInvalid, HTTPStatus: rep.status, Reason: "the token endpoint's reply is not usable: " + why}
	}
	var tr tokenReply
	if err := decodeJSON(rep.body, &tr); err != nil {
		return nil, bad("not a JSON object")
	}
	if tr.AccessToken == "" {
		return nil, bad("no access_token")
	}
	if tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "bearer") {
		// A sender-constrained token (DPoP, say) sent as a bearer token would be refused upstream,
		// and every refusal would look like a dead grant.
		return nil, bad(fmt.Sprintf("token_type %q is not Bearer", bounded(tr.TokenType, 40)))
	}
	tok := &Token{AccessToken: vault.Secret(tr.AccessToken), RefreshToken: vault.Secret(tr.RefreshToken), TokenType: tr.TokenType}
	if s := flexString(tr.ExpiresIn); s != "" {
		secs, err := strconv.ParseFloat(s, 64)
		if err != nil || secs < 0 {
			return nil, bad("expires_in is not a number of seconds")
		}
		if secs > 0 {
			tok.Expiry = now.Add(time.Duration(secs * float64(time.Second)))
		}
	}
	// scope is a space-delimited string (RFC 6749); some servers send an array.
	var scopeStr string
	var scopeList []string
	switch {
	case json.Unmarshal(tr.Scope, &scopeStr) == nil && strings.TrimSpace(scopeStr) != "":
		tok.Scopes = strings.Fields(scopeStr)
	case json.Unmarshal(tr.Scope, &scopeList) == nil && len(scopeList) > 0:
		tok.Scopes = scopeList
	default:
		tok.Scopes = append([]string(nil), requested...)
	}
	return tok, nil
}
