package apikey

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/policy/authcommon"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
)

// storeRetryAfter is the Retry-After of the 503 answered when the key store fails.
const storeRetryAfter = "5"

// keyLookup is the part of the store this policy uses.
type keyLookup interface {
	LookupAPIKey(ctx context.Context, hash []byte) (*store.APIKey, error)
}

// state is what Provision hydrates; the option fields of Policy stay as decoded.
type state struct {
	name  string
	keys  keyLookup
	audit *audit.Recorder
	cache *keyCache
	now   func() time.Time
}

// Provision connects the policy to the gateway's key store.
func (p *Policy) Provision(_ context.Context, env *policy.Env) error {
	if env.Host == nil || env.Host.APIKeys == nil {
		return errors.New("api-key-inbound needs the gateway's key store (Host.APIKeys), and the gateway gave none")
	}
	st := &state{
		name:  env.Name,
		keys:  env.Host.APIKeys,
		audit: env.Host.Audit,
		now:   time.Now,
	}
	st.cache = newKeyCache(time.Duration(p.CacheTTL())*time.Second, maxCacheEntries, st.lookupStore)
	st.cache.now = func() time.Time { return st.now() }
	p.st = st
	return nil
}

func (s *state) lookupStore(ctx context.Context, hash []byte) (*store.APIKey, error) {
	k, err := s.keys.LookupAPIKey(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// The store found the row by its hash; compare again in constant time so that no backend
	// quirk (a prefix index, a collation) can make another key match.
	if subtle.ConstantTimeCompare(k.Hash, hash) != 1 {
		return nil, nil
	}
	return k, nil
}

// HandleRequest authenticates the caller by API key and sets the request user to the key's
// consumer. The key header never reaches the upstream. An admin key (mcpgate keys create --admin)
// is refused (admin_key_on_mcp_route): it is for the setup UI and the admin API only.
func (p *Policy) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	if p.st == nil {
		return nil, problem.New(http.StatusInternalServerError, "The API key policy is not ready.", errors.New("api-key-inbound used before Provision"))
	}
	header := p.Header()
	key, present, wellFormed := authcommon.Credential(r, header, p.Scheme())
	u, refusal, err := p.authenticate(r.Context(), key, present, wellFormed)
	if err != nil {
		r.Header.Del(header)
		return nil, problem.New(http.StatusServiceUnavailable, "The gateway cannot check API keys right now; try again shortly.", err).
			WithReason("store_unavailable").WithHeader("Retry-After", storeRetryAfter)
	}
	return nil, authcommon.Conclude(c, r, header, u, present, p.AllowUnauthenticatedRequests, func() error {
		refusal.Policy = p.st.name
		refusal.Challenge = p.challenge(refusal.Reason)
		return authcommon.Refuse(c, r, p.st.audit, *refusal)
	})
}

// authenticate returns the user of a valid key, or why the key was refused, or a store error.
func (p *Policy) authenticate(ctx context.Context, key string, present, wellFormed bool) (*policy.User, *authcommon.Refusal, error) {
	switch {
	case !present:
		return nil, &authcommon.Refusal{Reason: authcommon.ReasonMissingToken, Detail: p.missingDetail()}, nil
	case !wellFormed:
		return nil, &authcommon.Refusal{Reason: authcommon.ReasonInvalidToken,
			Detail: fmt.Sprintf("The %s header does not carry an API key in the form %q.", p.Header(), p.form())}, nil
	}
	k, err := p.st.cache.get(ctx, store.HashAPIKey(key))
	if err != nil {
		return nil, nil, err
	}
	if k == nil {
		return nil, &authcommon.Refusal{Reason: authcommon.ReasonInvalidToken, Detail: "The API key is not valid."}, nil
	}
	refused := func(reason, detail string) *authcommon.Refusal {
		return &authcommon.Refusal{Reason: reason, Detail: detail, Subject: subject.New(subject.APIKey, k.Consumer).String(),
			Details: map[string]any{"keyId": k.ID}}
	}
	if !k.RevokedAt.IsZero() {
		return nil, refused(authcommon.ReasonRevoked, "The API key was revoked."), nil
	}
	if !k.ExpiresAt.IsZero() && !p.st.now().Before(k.ExpiresAt) {
		return nil, refused(authcommon.ReasonExpired, "The API key expired."), nil
	}
	if k.Admin {
		// Privilege separation: an admin key opens the setup UI and the admin API. Were it also
		// accepted here, every MCP client, upstream-facing tool and log it passes through would
		// hold an administrator's credential.
		return nil, refused(authcommon.ReasonAdminKeyOnMCPRoute,
			"This is an admin API key: it signs in to the setup UI and the admin API only. Give MCP clients a key created without --admin."), nil
	}
	return &policy.User{Sub: k.Consumer, Data: k.data, Namespace: subject.APIKey}, nil, nil
}

// metadata decodes the consumer metadata for request.user.data. Metadata that is not a JSON
// object (mcpgate keys create only stores objects) is kept under "value".
func metadata(raw json.RawMessage) map[string]any {
	out := map[string]any{}
	if len(raw) == 0 {
		return out
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		var v any
		if json.Unmarshal(raw, &v) == nil {
			return map[string]any{"value": v}
		}
		return map[string]any{}
	}
	return out
}

func (p *Policy) form() string {
	if p.Scheme() == "" {
		return "YOUR_KEY"
	}
	return p.Scheme() + " YOUR_KEY"
}

func (p *Policy) missingDetail() string {
	return fmt.Sprintf("No API key was sent. Send it in the %s header as %q.", p.Header(), p.form())
}

// challenge is the WWW-Authenticate of a refusal. An API key is no OAuth bearer token: the
// challenge names the scheme the key is expected in and carries no resource_metadata, so MCP
// clients do not start an OAuth flow against the gateway.
func (p *Policy) challenge(reason string) string {
	scheme := p.Scheme()
	if scheme == "" {
		scheme = "ApiKey"
	}
	params := []authcommon.Param{{Name: "realm", Value: "mcpgate"}}
	if scheme == "ApiKey" {
		params = append(params, authcommon.Param{Name: "header", Value: p.Header()})
	}
	if reason != authcommon.ReasonMissingToken {
		params = append(params, authcommon.Param{Name: "error", Value: "invalid_token"})
	}
	return authcommon.Challenge(scheme, params...)
}

var (
	_ policy.Provisioner = (*Policy)(nil)
	_ policy.Inbound     = (*Policy)(nil)
	_ keyLookup          = (store.Store)(nil)
)
