package upstream

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/oauth2"

	"github.com/mcpgate/mcpgate/internal/vault"
)

// OfflineAccess is the scope that asks for a refresh token.
const OfflineAccess = "offline_access"

// SelectScopes picks the scopes to request (docs/architecture.md#scope-selection): explicit option
// scopes, else the challenge's scope, else the PRM's scopes_supported, else none. offline_access is
// requested only when the authorization server lists it in scopes_supported: it is removed
// otherwise, and added when the AS lists it and some scope is requested (an otherwise empty request
// is left empty, so the AS applies its default scopes).
func SelectScopes(up Upstream, challengeScopes []string, d *Discovery) []string {
	var src []string
	switch {
	case len(up.Scopes) > 0:
		src = up.Scopes
	case len(challengeScopes) > 0:
		src = challengeScopes
	case d != nil:
		src = d.PRM.ScopesSupported
	}
	var out []string
	for _, s := range src {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	asLists := d != nil && slices.Contains(d.AS.ScopesSupported, OfflineAccess)
	out = slices.DeleteFunc(out, func(s string) bool { return s == OfflineAccess && !asLists })
	if asLists && len(out) > 0 && !slices.Contains(out, OfflineAccess) {
		out = append(out, OfflineAccess)
	}
	return out
}

// joinScopes joins scopes with the upstream's scopeDelimiter.
func joinScopes(up Upstream, scopes []string) string {
	d := up.ScopeDelimiter
	if d == "" {
		d = DefaultScopeDelimiter
	}
	return strings.Join(scopes, d)
}

// promptFor is the prompt parameter for an authorization request: none when the option is false;
// the option's value when set; consent when offline_access is requested (many servers only issue a
// refresh token on an explicit consent); else none.
func promptFor(up Upstream, scopes []string) string {
	switch {
	case up.Prompt.Disabled:
		return ""
	case up.Prompt.Value != "":
		return up.Prompt.Value
	case slices.Contains(scopes, OfflineAccess):
		return "consent"
	}
	return ""
}

// AuthRequest is one authorization request: the URL to send the browser to and what the callback
// needs (the caller stores State hashed and Verifier encrypted in a pending authorization).
type AuthRequest struct {
	URL         string
	State       vault.Secret
	Verifier    vault.Secret
	Scopes      []string
	Prompt      string
	RedirectURI string
	Resource    string
	Issuer      string
	ClientID    string
}

// stateBytes is the entropy of state (≥ 32 bytes; base64url gives 43 characters, well over
// Hydra's minimum of 8).
const stateBytes = 32

// NewState returns a fresh random state.
func NewState() vault.Secret {
	b := make([]byte, stateBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return vault.Secret(base64.RawURLEncoding.EncodeToString(b))
}

// AuthorizationRequest builds the authorize URL with a fresh state and PKCE S256 verifier:
// response_type=code, client_id, redirect_uri, scope (joined by scopeDelimiter, omitted when
// empty), state, code_challenge, code_challenge_method=S256, resource and prompt.
func (e *Engine) AuthorizationRequest(up Upstream, d *Discovery, c *Client, scopes []string) (*AuthRequest, error) {
	if d == nil || d.AS.AuthorizationEndpoint == "" {
		return nil, &Error{Bucket: BucketOAuthSetup, Code: CodeASMetadataNotFound, Reason: "no authorization endpoint was discovered"}
	}
	if !slices.Contains(d.AS.CodeChallengeMethodsSupported, "S256") {
		return nil, &Error{Bucket: BucketOAuthSetup, Code: CodePKCES256Unsupported, Reason: fmt.Sprintf("authorization server %q does not support PKCE S256", d.AS.Issuer)}
	}
	cfg := oauth2.Config{ClientID: c.ClientID, RedirectURL: c.RedirectURI, Endpoint: oauth2.Endpoint{AuthURL: d.AS.AuthorizationEndpoint}}
	verifier := oauth2.GenerateVerifier()
	state := NewState()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", d.Resource)}
	if len(scopes) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("scope", joinScopes(up, scopes)))
	}
	prompt := promptFor(up, scopes)
	if prompt != "" {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", prompt))
	}
	return &AuthRequest{
		URL:         cfg.AuthCodeURL(state.Reveal(), opts...),
		State:       state,
		Verifier:    vault.Secret(verifier),
		Scopes:      slices.Clone(scopes),
		Prompt:      prompt,
		RedirectURI: c.RedirectURI,
		Resource:    d.Resource,
		Issuer:      d.AS.Issuer,
		ClientID:    c.ClientID,
	}, nil
}

// CheckIssuerParameter applies RFC 9207 to an authorization response's query: iss, when present,
// must equal the issuer recorded for the flow (simple string comparison); when the AS advertises
// authorization_response_iss_parameter_supported, iss is required. The callback calls it right after
// checking state and before looking at error= (on mismatch nothing else in the response is trusted).
func CheckIssuerParameter(q url.Values, issuer string, issSupported bool) error {
	if !q.Has("iss") {
		if issSupported {
			return &Error{Bucket: BucketOAuthSetup, Code: CodeIssMissing, Reason: "the authorization response has no iss parameter although the authorization server advertises it (RFC 9207); the response was refused"}
		}
		return nil
	}
	if got := q.Get("iss"); got != issuer {
		return &Error{Bucket: BucketOAuthSetup, Code: CodeIssMismatch, Reason: fmt.Sprintf("the authorization response came from issuer %q, not %q (RFC 9207 mix-up protection); the response was refused", bounded(got, 200), issuer)}
	}
	return nil
}
