// Package store holds mcpgate's durable state: upstream connections and their tokens, OAuth client
// registrations, pending authorizations, browser-ticket uses, audit events, API keys and refresh leases.
//
// Each concern has its own small interface; consumers depend on the one they use. The backends
// (store/sqlite, the embedded default, and store/postgres, for several replicas) implement all of them
// with the same schema and semantics, proven by the shared conformance suite in store/storetest.
//
// Secrets: fields of type vault.Secret (tokens, client secrets, PKCE verifiers) are sealed by the
// backend itself with the vault key ring it was opened with, using the record's key as additional data
// (vault.Record), so callers never handle ciphertexts and a ciphertext copied into another row does not
// open. The database holds ciphertexts only. A read that cannot decrypt fails with an error wrapping
// vault.ErrUnknownKey or vault.ErrDecrypt: that is a storage failure, never "not connected".
//
// Concurrency: connection writes are compare-and-swap on Connection.Version; a lost race returns
// ErrConflict and the caller re-reads (see Update). Single-use records (pending authorizations, ticket
// uses) are claimed atomically, and leases are taken by one short compare-and-swap statement, never
// a transaction held open across a network call.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"time"

	"github.com/mcpgate/mcpgate/internal/vault"
)

// Typed errors. Backends wrap them; test with errors.Is.
var (
	// ErrNotFound means no such record (or it has expired).
	ErrNotFound = errors.New("not found")
	// ErrConflict means a compare-and-swap lost: the record changed (or was created) since it was read.
	ErrConflict = errors.New("conflict: record changed since it was read")
	// ErrAlreadyUsed means a single-use record was already claimed.
	ErrAlreadyUsed = errors.New("already used")
	// ErrLeaseHeld means another holder owns an unexpired lease.
	ErrLeaseHeld = errors.New("lease held by another holder")
)

// Mode is how a connection is shared.
type Mode string

// Connection modes.
const (
	ModeUser   Mode = "user"   // one connection per (namespaced) user
	ModeShared Mode = "shared" // one connection for every caller of the upstream
)

// Status is the state of a connection.
type Status string

// Connection statuses.
const (
	StatusActive            Status = "active"
	StatusReconsentRequired Status = "reconsent_required"
	StatusRevoked           Status = "revoked"
)

// ConnectionKey identifies a connection. Subject is namespaced (policy.User.Subject(),
// docs/architecture.md#subjects), or subject.Shared in shared mode.
type ConnectionKey struct {
	UpstreamID string
	Mode       Mode
	Subject    string
}

// Connection is a user's (or the shared) OAuth grant for one upstream, with what it was issued under
// (docs/architecture.md#refreshed-only-where-issued).
type Connection struct {
	ConnectionKey
	Status        Status
	AccessToken   vault.Secret // sealed at rest
	RefreshToken  vault.Secret // sealed at rest
	Expiry        time.Time    // zero: the token did not say
	Scopes        []string     // granted, from the token response
	Issuer        string
	TokenEndpoint string
	ClientID      string
	AuthMethod    string // token endpoint auth method
	Resource      string
	LastError     *LastError
	LastRefreshAt time.Time
	ConnectedBy   string // actor that created it (the subject, or an admin for shared connections)
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// Version is the row version for compare-and-swap. PutConnection with Version 0 creates; any
	// other value updates the row only if it still has that version. On success it is incremented.
	Version int64
	// HasAccessToken and HasRefreshToken are set on reads, also by ListConnections which never
	// decrypts.
	HasAccessToken, HasRefreshToken bool
}

// LastError is the last failure recorded on a connection (a refresh's OAuth error code, say).
type LastError struct {
	Code    string
	Message string
	At      time.Time
}

// ConnectionFilter selects connections to list. Empty fields match everything.
type ConnectionFilter struct {
	UpstreamID string
	Subject    string
	Status     Status
	Limit      int // 0: no limit
}

// Connections stores connections.
type Connections interface {
	// GetConnection returns the connection with its tokens decrypted, or ErrNotFound.
	GetConnection(ctx context.Context, k ConnectionKey) (*Connection, error)
	// PutConnection creates (c.Version == 0) or compare-and-swap updates (c.Version == the version read)
	// the connection, sets c.Version to the new version and c.UpdatedAt, and returns ErrConflict when
	// the row exists (create) or has another version (update), ErrNotFound when updating a missing row.
	PutConnection(ctx context.Context, c *Connection) error
	// DeleteConnection removes the connection if it still has version (compare-and-swap).
	DeleteConnection(ctx context.Context, k ConnectionKey, version int64) error
	// ListConnections lists connections ordered by upstream, mode, subject, without tokens: it never
	// decrypts, so it works even when a key was lost.
	ListConnections(ctx context.Context, f ConnectionFilter) ([]Connection, error)
}

// ClientRegistrationKey identifies an OAuth client registration.
type ClientRegistrationKey struct {
	Issuer      string
	UpstreamID  string
	RedirectURI string
}

// ClientRegistration is a cached OAuth client for an upstream's authorization server.
type ClientRegistration struct {
	ClientRegistrationKey
	Method       string // manual, cimd, dcr
	ClientID     string
	ClientSecret vault.Secret // sealed at rest
	AuthMethod   string
	RegisteredAt time.Time
	ExpiresAt    time.Time // zero: does not expire
}

// ClientRegistrations stores OAuth client registrations.
type ClientRegistrations interface {
	// GetClientRegistration returns the registration (ErrNotFound when absent or expired).
	GetClientRegistration(ctx context.Context, k ClientRegistrationKey) (*ClientRegistration, error)
	// PutClientRegistration creates or replaces the registration. An upstream keeps at most
	// MaxDynamicRegistrations dynamic (DCR) registrations: putting one more removes the oldest.
	PutClientRegistration(ctx context.Context, r *ClientRegistration) error
	// DeleteClientRegistrations removes every registration of an upstream (after invalid_client or a
	// token endpoint 404) and returns how many it removed.
	DeleteClientRegistrations(ctx context.Context, upstreamID string) (int, error)
}

// MaxDynamicRegistrations bounds the dynamic client registrations kept per upstream. A
// registration is keyed by issuer and redirect URI, and one is enough per public URL; more appear
// only when the redirect URI is derived from requests (no --public-url) or an upstream moves its
// authorization server. The bound keeps such churn from growing the store; the oldest
// registration goes first and is registered again if it is still needed.
const MaxDynamicRegistrations = 32

// PendingAuthorization is an authorization request in flight between Approve and the callback.
type PendingAuthorization struct {
	UpstreamID       string
	Mode             Mode
	Subject          string
	Verifier         vault.Secret // PKCE verifier, sealed at rest
	Scopes           []string
	ElicitationID    string
	BrowserNonceHash []byte // sha256 of the browser-binding cookie (docs/architecture.md#browser-binding)
	RedirectURI      string
	Resource         string
	Issuer           string
	OperationID      string
	CreatedAt        time.Time
	ExpiresAt        time.Time
}

// PendingTTL is how long a pending authorization lives.
const PendingTTL = 10 * time.Minute

// PendingAuthorizations stores pending authorizations, keyed by sha256(state): the state itself is
// never stored.
type PendingAuthorizations interface {
	// CreatePending stores p under sha256(state). A zero ExpiresAt means now + PendingTTL.
	CreatePending(ctx context.Context, state string, p *PendingAuthorization) error
	// ConsumePending atomically claims and deletes the pending authorization for state: of concurrent
	// callers exactly one gets it, the others (and any caller after expiry) get ErrNotFound.
	ConsumePending(ctx context.Context, state string) (*PendingAuthorization, error)
}

// TicketUses records browser tickets that were used, so each is used once.
type TicketUses interface {
	// UseTicket records the use of ticket id, valid until expiresAt. The first call wins; later calls
	// get ErrAlreadyUsed.
	UseTicket(ctx context.Context, id string, expiresAt time.Time) error
}

// AuditEvent is one audit log entry. Details never hold secrets.
type AuditEvent struct {
	ID          int64 // assigned by AppendAudit
	Time        time.Time
	Event       string // e.g. connection.created, token.refreshed, connection.revoked
	Outcome     string // success, failure, denied
	ReasonCode  string
	UpstreamID  string
	OperationID string
	Subject     string
	Actor       string
	RequestID   string
	Details     json.RawMessage
}

// AuditQuery selects audit events. Empty fields match everything; results are newest first.
type AuditQuery struct {
	Subject    string
	UpstreamID string
	Event      string
	Outcome    string
	Since      time.Time // inclusive
	Until      time.Time // exclusive
	BeforeID   int64     // paging: only events with ID < BeforeID (pass the last ID of the previous page)
	Limit      int       // 0: 100
}

// Audit stores audit events.
type Audit interface {
	// AppendAudit stores e and sets e.ID (and e.Time when zero).
	AppendAudit(ctx context.Context, e *AuditEvent) error
	// QueryAudit returns one page of events matching q, newest first.
	QueryAudit(ctx context.Context, q AuditQuery) ([]AuditEvent, error)
	// DeleteAuditBefore removes events older than t (retention) and returns how many.
	DeleteAuditBefore(ctx context.Context, t time.Time) (int, error)
}

// APIKey is a gateway API key. Only the sha256 of the secret is stored.
type APIKey struct {
	ID        string
	Consumer  string
	Hash      []byte // sha256 of the full key string (HashAPIKey)
	Metadata  json.RawMessage
	Admin     bool
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	RevokedAt time.Time // zero: not revoked
}

// APIKeys stores API keys.
type APIKeys interface {
	// CreateAPIKey stores k (ErrConflict when the id or hash exists).
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// LookupAPIKey returns the key whose hash is hash, revoked and expired ones included (the caller
	// decides and reports why), or ErrNotFound.
	LookupAPIKey(ctx context.Context, hash []byte) (*APIKey, error)
	// ListAPIKeys lists keys ordered by creation time.
	ListAPIKeys(ctx context.Context) ([]APIKey, error)
	// RevokeAPIKey marks the key revoked (ErrNotFound when absent; revoking twice is not an error).
	RevokeAPIKey(ctx context.Context, id string) error
}

// Leases is a named mutual-exclusion lease shared by every instance ("one refresher per
// connection"). Each method is one short compare-and-swap statement.
type Leases interface {
	// TryAcquireLease takes name for holder until now+ttl when it is free, expired, or already held by
	// holder (which extends it); otherwise ErrLeaseHeld.
	TryAcquireLease(ctx context.Context, name, holder string, ttl time.Duration) error
	// RenewLease extends a lease holder still holds; ErrLeaseHeld when it lost it (expired and taken,
	// or never held).
	RenewLease(ctx context.Context, name, holder string, ttl time.Duration) error
	// ReleaseLease gives the lease up if holder holds it; releasing a lease one does not hold is a no-op.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Sweeper removes expired single-use records (docs/architecture.md#sweeping).
type Sweeper interface {
	// Sweep deletes expired pending authorizations, ticket uses, client registrations, leases, OAuth
	// clients and sign-in requests, and grants expired for more than a day, and returns how many rows
	// it removed.
	Sweep(ctx context.Context) (int, error)
}

// Store is everything a backend provides. Consumers should take the narrow interface they need.
type Store interface {
	Connections
	ClientRegistrations
	PendingAuthorizations
	TicketUses
	Audit
	APIKeys
	Leases
	OAuthClients
	SignInRequests
	OAuthGrants
	ClientConsents
	Sweeper
	Rekeyer
	// Migrate brings the schema to the newest version this binary knows.
	Migrate(ctx context.Context) error
	// Ping checks the database is reachable.
	Ping(ctx context.Context) error
	Close() error
}

// HashState is the key of a pending authorization.
func HashState(state string) []byte {
	h := sha256.Sum256([]byte(state))
	return h[:]
}

// HashAPIKey is the stored form of an API key.
func HashAPIKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}
