package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"time"

	"github.com/mcpgate/mcpgate/internal/vault"
)

// Records of the gateway's own OAuth authorization server (sign-in for MCP clients,
// mcp-oauth-inbound). Every token and code is stored only as its SHA-256 (HashToken); the IdP's ID
// token is sealed.

// OAuthClient is an MCP client registered with the gateway by RFC 7591 dynamic client
// registration (client ids "dcr:…"). Clients identified by a metadata document (an https
// client_id) are not stored: their document is fetched and cached in memory.
type OAuthClient struct {
	ID string
	// SecretHash is the SHA-256 of the client secret; nil for public clients (auth method none).
	SecretHash   []byte
	Name         string
	RedirectURIs []string
	// AuthMethod is none, client_secret_basic or client_secret_post.
	AuthMethod string
	GrantTypes []string
	// RegisteredFrom is the address the registration came from (rate limiting, audit).
	RegisteredFrom string
	CreatedAt      time.Time
	ExpiresAt      time.Time // zero: does not expire
}

// OAuthClients stores dynamically registered clients.
type OAuthClients interface {
	// CreateOAuthClient stores c (ErrConflict when the id exists).
	CreateOAuthClient(ctx context.Context, c *OAuthClient) error
	// GetOAuthClient returns the client, or ErrNotFound when it is absent or expired.
	GetOAuthClient(ctx context.Context, id string) (*OAuthClient, error)
}

// SignInRequest is a short-lived, single-use record of the gateway's sign-in flow, stored under
// the SHA-256 of a random handle (HashToken): an authorization request waiting for the person's
// IdP login and consent ("request"), or an issued authorization code ("code"). Payload is sealed
// (it holds PKCE verifiers and the IdP's tokens) and opaque to the store.
type SignInRequest struct {
	Kind      string
	Payload   vault.Secret // JSON, sealed at rest
	CreatedAt time.Time
	ExpiresAt time.Time
}

// SignInRequests stores sign-in flow records.
type SignInRequests interface {
	// PutSignInRequest stores r under hash, replacing an unexpired record of the same hash and
	// kind (the flow updates its request as the person moves through it). r.ExpiresAt is required.
	// ErrAlreadyUsed when that record was consumed, ErrConflict when an unexpired record of another
	// kind holds hash.
	PutSignInRequest(ctx context.Context, hash []byte, r *SignInRequest) error
	// GetSignInRequest returns the record without consuming it; ErrNotFound when absent, expired,
	// or of another kind.
	GetSignInRequest(ctx context.Context, hash []byte, kind string) (*SignInRequest, error)
	// ConsumeSignInRequest returns and deletes the record in one step: of two concurrent callers
	// exactly one gets it, the other ErrAlreadyUsed (as does any later caller until the record's
	// expiry: a used record stays behind, without its payload, until then). ErrNotFound when absent,
	// expired, or of another kind.
	ConsumeSignInRequest(ctx context.Context, hash []byte, kind string) (*SignInRequest, error)
}

// OAuthGrant is what a person granted one MCP client for one route: the refresh-token family.
// Access tokens are not stored (they are sealed, self-contained and short-lived); a revoked
// grant stops them within the validation cache's age.
type OAuthGrant struct {
	ID       string
	Subject  string // the namespaced gateway subject (policy.User.Subject)
	ClientID string
	// Resource is the route's canonical URL; OperationID the route's operationId.
	Resource    string
	OperationID string
	Scopes      []string
	// UserData is what the login captured for request.user.data (roles, groups, name, email).
	UserData json.RawMessage
	// IDToken is the IdP's ID token of the login that created the grant, sealed at rest.
	IDToken vault.Secret
	// RefreshHash is the SHA-256 of the current refresh token; PrevRefreshHash that of the one it
	// replaced at RotatedAt, still accepted within the grace window for concurrent refreshes.
	RefreshHash     []byte
	PrevRefreshHash []byte
	RotatedAt       time.Time
	CreatedAt       time.Time
	ExpiresAt       time.Time
	RevokedAt       time.Time // zero: active
	RevokeReason    string
	// Version is the optimistic-concurrency counter (CAS on rotation).
	Version int64
}

// OAuthGrants stores grants.
type OAuthGrants interface {
	// CreateOAuthGrant stores g (Version becomes 1; ErrConflict when the id exists).
	CreateOAuthGrant(ctx context.Context, g *OAuthGrant) error
	// GetOAuthGrant returns the grant by id, revoked and expired ones included; ErrNotFound.
	GetOAuthGrant(ctx context.Context, id string) (*OAuthGrant, error)
	// FindOAuthGrantByRefresh returns the grant whose current or previous refresh hash is hash,
	// revoked and expired ones included; ErrNotFound.
	FindOAuthGrantByRefresh(ctx context.Context, hash []byte) (*OAuthGrant, error)
	// RotateOAuthGrant replaces the grant's refresh hash with newHash (the current one becomes
	// the previous one, RotatedAt = now) if its version is still version; ErrConflict otherwise
	// (revoking bumps the version, and a revoked grant is never rotated), ErrNotFound when absent.
	// It returns the grant as stored.
	RotateOAuthGrant(ctx context.Context, id string, version int64, newHash []byte) (*OAuthGrant, error)
	// RevokeOAuthGrant marks the grant revoked with reason and bumps its version (revoking twice is
	// not an error and keeps the first time and reason; ErrNotFound when absent).
	RevokeOAuthGrant(ctx context.Context, id, reason string) error
	// ListOAuthGrants lists the grants of subject ("" for all), newest first, at most limit (0: 100).
	ListOAuthGrants(ctx context.Context, subject string, limit int) ([]OAuthGrant, error)
}

// ClientConsent records that a person approved an MCP client for a route (the confused-deputy
// rule: consent is asked once per person, client and route).
type ClientConsent struct {
	Subject     string
	ClientID    string
	OperationID string
	// RedirectURIsHash is the SHA-256 of the client's sorted redirect URIs when consent was given:
	// a self-asserted (DCR) client whose URIs changed is asked again.
	RedirectURIsHash []byte
	ApprovedAt       time.Time
}

// ClientConsents stores consents.
type ClientConsents interface {
	// GetClientConsent returns the consent, or ErrNotFound.
	GetClientConsent(ctx context.Context, subject, clientID, operationID string) (*ClientConsent, error)
	// PutClientConsent stores c, replacing an earlier one of the same key.
	PutClientConsent(ctx context.Context, c *ClientConsent) error
}

// HashToken is the stored form of a token, code or handle: its SHA-256.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
