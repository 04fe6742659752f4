package signin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// idp is the organisation's OpenID provider, as a relying party sees it: go-oidc verifies its ID
// tokens, x/oauth2 runs the authorization code exchange. Endpoints the config leaves out come from
// the issuer's discovery document, fetched on first use (and retried on the next login when the
// IdP was unreachable).
type idp struct {
	spec *policy.IdPSpec
	log  *slog.Logger
	http *http.Client

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	endpoint oauth2.Endpoint
}

func newIdP(spec *policy.IdPSpec, log *slog.Logger) *idp {
	timeout := spec.RemoteTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &idp{spec: spec, log: log, http: &http.Client{Timeout: timeout}}
}

// ready resolves the endpoints and the key set once.
func (p *idp) ready(ctx context.Context) (*oidc.IDTokenVerifier, oauth2.Endpoint, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.verifier != nil {
		return p.verifier, p.endpoint, nil
	}
	ctx = oidc.ClientContext(ctx, p.http)
	ep := oauth2.Endpoint{AuthURL: p.spec.AuthorizeURL, TokenURL: p.spec.TokenURL, AuthStyle: oauth2.AuthStyleAutoDetect}
	jwks := p.spec.JWKSURL
	if ep.AuthURL == "" || ep.TokenURL == "" || jwks == "" {
		prov, err := oidc.NewProvider(ctx, p.spec.Issuer)
		if err != nil {
			return nil, oauth2.Endpoint{}, fmt.Errorf("discovering the IdP %s: %w", p.spec.Issuer, err)
		}
		var doc struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if err := prov.Claims(&doc); err != nil {
			return nil, oauth2.Endpoint{}, fmt.Errorf("reading the discovery document of %s: %w", p.spec.Issuer, err)
		}
		if ep.AuthURL == "" {
			ep.AuthURL = prov.Endpoint().AuthURL
		}
		if ep.TokenURL == "" {
			ep.TokenURL = prov.Endpoint().TokenURL
		}
		if jwks == "" {
			jwks = doc.JWKSURI
		}
	}
	if ep.AuthURL == "" || ep.TokenURL == "" || jwks == "" {
		return nil, oauth2.Endpoint{}, fmt.Errorf("the IdP %s names no authorization, token or JWKS endpoint", p.spec.Issuer)
	}
	keys := oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), p.http), jwks)
	p.verifier = oidc.NewVerifier(p.spec.Issuer, keys, &oidc.Config{ClientID: p.spec.ClientID})
	p.endpoint = ep
	return p.verifier, p.endpoint, nil
}

// config is the OAuth client config of a login whose callback is redirectURI.
func (p *idp) config(ep oauth2.Endpoint, redirectURI string) *oauth2.Config {
	return &oauth2.Config{ClientID: p.spec.ClientID, ClientSecret: p.spec.ClientSecret.Reveal(), Endpoint: ep,
		RedirectURL: redirectURI, Scopes: splitScope(p.spec.Scope)}
}

// authCodeURL is where the browser goes to sign in.
func (p *idp) authCodeURL(ctx context.Context, redirectURI, state, nonce, verifier string) (string, error) {
	_, ep, err := p.ready(ctx)
	if err != nil {
		return "", err
	}
	opts := []oauth2.AuthCodeOption{oidc.Nonce(nonce)}
	if p.spec.PKCE != "none" {
		opts = append(opts, oauth2.S256ChallengeOption(verifier))
	}
	if p.spec.Audience != "" {
		opts = append(opts, oauth2.SetAuthURLParam("audience", p.spec.Audience))
	}
	return p.config(ep, redirectURI).AuthCodeURL(state, opts...), nil
}

// identity is what a verified login says about the person.
type identity struct {
	Sub, Name, Email string
	Roles, Groups    []string
	RawIDToken       string
}

// exchange redeems the IdP's code and verifies the ID token (signature, issuer, audience, expiry,
// nonce).
func (p *idp) exchange(ctx context.Context, redirectURI, code, verifier, nonce string) (*identity, error) {
	v, ep, err := p.ready(ctx)
	if err != nil {
		return nil, err
	}
	ctx = oidc.ClientContext(ctx, p.http)
	var opts []oauth2.AuthCodeOption
	if p.spec.PKCE != "none" {
		opts = append(opts, oauth2.VerifierOption(verifier))
	}
	tok, err := p.config(ep, redirectURI).Exchange(ctx, code, opts...)
	if err != nil {
		return nil, fmt.Errorf("exchanging the IdP's code: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("the IdP's token response has no id_token (is the openid scope requested?)")
	}
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("verifying the IdP's ID token: %w", err)
	}
	if idt.Nonce != nonce {
		return nil, errors.New("the IdP's ID token carries another login's nonce")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("reading the ID token's claims: %w", err)
	}
	id := &identity{RawIDToken: raw, Name: str(claims["name"]), Email: str(claims["email"])}
	claim := p.spec.SubjectClaim
	if claim == "" {
		claim = "sub"
	}
	if id.Sub = str(claims[claim]); id.Sub == "" {
		return nil, fmt.Errorf("the IdP's ID token has no %q claim to identify the person", claim)
	}
	id.Roles = strs(claims[orDefault(p.spec.RolesClaim, "roles")])
	id.Groups = strs(claims[orDefault(p.spec.GroupsClaim, "groups")])
	return id, nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// strs reads a claim that is a list of strings or one string.
func strs(v any) []string {
	switch t := v.(type) {
	case string:
		if t != "" {
			return []string{t}
		}
	case []any:
		var out []string
		for _, e := range t {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
