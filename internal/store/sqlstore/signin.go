package sqlstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// The records of the gateway's own authorization server (store/signin.go).

// grantSweepDelay is how long after its expiry a grant is kept (so a late refresh is told "expired",
// and an admin listing still shows it) before Sweep removes it.
const grantSweepDelay = 24 * time.Hour

func signinRecord(hash []byte, kind string) string {
	return vault.Record("signin_request", hex.EncodeToString(hash), kind, "payload")
}

func grantRecord(id string) string {
	return vault.Record("oauth_grant", id, "id_token")
}

// ---- OAuth clients

// CreateOAuthClient implements store.OAuthClients.
func (db *DB) CreateOAuthClient(ctx context.Context, c *store.OAuthClient) error {
	if c.ID == "" {
		return errors.New("creating oauth client: empty id")
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = db.now()
	}
	n, err := db.exec(ctx, `INSERT INTO oauth_clients (id, secret_hash, name, redirect_uris, auth_method, grant_types,
		registered_from, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		c.ID, nonNil(c.SecretHash), c.Name, joinList(c.RedirectURIs), c.AuthMethod, joinList(c.GrantTypes),
		c.RegisteredFrom, ms(c.CreatedAt), ms(c.ExpiresAt))
	if err != nil {
		return fmt.Errorf("creating oauth client: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("creating oauth client %s: %w", c.ID, store.ErrConflict)
	}
	return nil
}

// GetOAuthClient implements store.OAuthClients. A zero ExpiresAt never expires.
func (db *DB) GetOAuthClient(ctx context.Context, id string) (*store.OAuthClient, error) {
	c := store.OAuthClient{ID: id}
	var uris, grants string
	var created, expires int64
	err := db.queryRow(ctx, db.read, `SELECT secret_hash, name, redirect_uris, auth_method, grant_types, registered_from,
		created_at, expires_at FROM oauth_clients WHERE id = ? AND (expires_at = 0 OR expires_at > ?)`,
		[]any{id, db.nowMS()}, func(r *sql.Row) error {
			return r.Scan(&c.SecretHash, &c.Name, &uris, &c.AuthMethod, &grants, &c.RegisteredFrom, &created, &expires)
		})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("getting oauth client %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("getting oauth client: %w", err)
	}
	if c.RedirectURIs, err = splitList(uris); err != nil {
		return nil, err
	}
	if c.GrantTypes, err = splitList(grants); err != nil {
		return nil, err
	}
	if len(c.SecretHash) == 0 {
		c.SecretHash = nil
	}
	c.CreatedAt, c.ExpiresAt = fromMS(created), fromMS(expires)
	return &c, nil
}

// ---- sign-in requests

// PutSignInRequest implements store.SignInRequests: one upsert that replaces only an unconsumed
// record of the same kind, or any expired one. A consumed record is not revived (ErrAlreadyUsed);
// an unexpired record of another kind is not replaced (ErrConflict).
func (db *DB) PutSignInRequest(ctx context.Context, hash []byte, r *store.SignInRequest) error {
	if len(hash) == 0 || r.Kind == "" {
		return errors.New("putting sign-in request: hash and kind are required")
	}
	if r.ExpiresAt.IsZero() {
		return errors.New("putting sign-in request: expiry is required")
	}
	payload, err := db.ring.Seal(r.Payload, signinRecord(hash, r.Kind))
	if err != nil {
		return err
	}
	now := db.now()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	n, err := db.exec(ctx, `INSERT INTO signin_requests (hash, kind, payload, created_at, expires_at, consumed_at)
		VALUES (?, ?, ?, ?, ?, 0)
		ON CONFLICT (hash) DO UPDATE SET kind = excluded.kind, payload = excluded.payload,
		created_at = excluded.created_at, expires_at = excluded.expires_at, consumed_at = 0
		WHERE (signin_requests.kind = excluded.kind AND signin_requests.consumed_at = 0) OR signin_requests.expires_at <= ?`,
		hash, r.Kind, payload, ms(r.CreatedAt), ms(r.ExpiresAt), ms(now))
	if err != nil {
		return fmt.Errorf("putting sign-in request: %w", err)
	}
	if n == 0 {
		if db.signinConsumed(ctx, hash, r.Kind) {
			return fmt.Errorf("putting sign-in request: %w", store.ErrAlreadyUsed)
		}
		return fmt.Errorf("putting sign-in request: another record holds the handle: %w", store.ErrConflict)
	}
	return nil
}

// signinConsumed reports whether an unexpired record of hash and kind was consumed.
func (db *DB) signinConsumed(ctx context.Context, hash []byte, kind string) bool {
	var one int
	err := db.queryRow(ctx, db.write, `SELECT 1 FROM signin_requests WHERE hash = ? AND kind = ? AND consumed_at <> 0 AND expires_at > ?`,
		[]any{hash, kind, db.nowMS()}, func(r *sql.Row) error { return r.Scan(&one) })
	return err == nil
}

// GetSignInRequest implements store.SignInRequests.
func (db *DB) GetSignInRequest(ctx context.Context, hash []byte, kind string) (*store.SignInRequest, error) {
	r := store.SignInRequest{Kind: kind}
	var payload string
	var created, expires int64
	err := db.queryRow(ctx, db.read, `SELECT payload, created_at, expires_at FROM signin_requests
		WHERE hash = ? AND kind = ? AND consumed_at = 0 AND expires_at > ?`,
		[]any{hash, kind, db.nowMS()}, func(row *sql.Row) error { return row.Scan(&payload, &created, &expires) })
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("getting sign-in %s: %w", kind, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("getting sign-in %s: %w", kind, err)
	}
	if r.Payload, err = db.ring.Open(payload, signinRecord(hash, kind)); err != nil {
		return nil, err
	}
	r.CreatedAt, r.ExpiresAt = fromMS(created), fromMS(expires)
	return &r, nil
}

// ConsumeSignInRequest implements store.SignInRequests: one UPDATE … RETURNING marks the record
// consumed, so of concurrent callers exactly one gets it (as ConsumePending's DELETE … RETURNING);
// the row stays as a tombstone until it expires so the others get ErrAlreadyUsed. The winner then
// empties the payload (RETURNING yields the new row, so this cannot be the same statement).
func (db *DB) ConsumeSignInRequest(ctx context.Context, hash []byte, kind string) (*store.SignInRequest, error) {
	r := store.SignInRequest{Kind: kind}
	var payload string
	var created, expires int64
	now := db.nowMS()
	err := db.queryRow(ctx, db.write, `UPDATE signin_requests SET consumed_at = ?
		WHERE hash = ? AND kind = ? AND consumed_at = 0 AND expires_at > ?
		RETURNING payload, created_at, expires_at`, []any{now, hash, kind, now}, func(row *sql.Row) error {
		return row.Scan(&payload, &created, &expires)
	})
	if errors.Is(err, sql.ErrNoRows) {
		if db.signinConsumed(ctx, hash, kind) {
			return nil, fmt.Errorf("consuming sign-in %s: %w", kind, store.ErrAlreadyUsed)
		}
		return nil, fmt.Errorf("consuming sign-in %s: %w", kind, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("consuming sign-in %s: %w", kind, err)
	}
	// Best effort: the record is consumed either way, and Sweep removes it at expiry.
	_, _ = db.exec(ctx, `UPDATE signin_requests SET payload = '' WHERE hash = ? AND consumed_at <> 0`, hash)
	if r.Payload, err = db.ring.Open(payload, signinRecord(hash, kind)); err != nil {
		return nil, err
	}
	r.CreatedAt, r.ExpiresAt = fromMS(created), fromMS(expires)
	return &r, nil
}

// ---- grants

const grantCols = `id, subject, client_id, resource, operation_id, scopes, user_data, id_token, refresh_hash,
	prev_refresh_hash, rotated_at, created_at, expires_at, revoked_at, revoke_reason, version`

// scanGrant reads a row; the sealed ID token is returned for the caller to open.
func scanGrant(r scanner) (*store.OAuthGrant, string, error) {
	var g store.OAuthGrant
	var scopes, userData, idToken string
	var rotated, created, expires, revoked int64
	if err := r.Scan(&g.ID, &g.Subject, &g.ClientID, &g.Resource, &g.OperationID, &scopes, &userData, &idToken,
		&g.RefreshHash, &g.PrevRefreshHash, &rotated, &created, &expires, &revoked, &g.RevokeReason, &g.Version); err != nil {
		return nil, "", err
	}
	var err error
	if g.Scopes, err = splitList(scopes); err != nil {
		return nil, "", err
	}
	if userData != "" {
		g.UserData = json.RawMessage(userData)
	}
	if len(g.PrevRefreshHash) == 0 {
		g.PrevRefreshHash = nil
	}
	g.RotatedAt, g.CreatedAt, g.ExpiresAt, g.RevokedAt = fromMS(rotated), fromMS(created), fromMS(expires), fromMS(revoked)
	return &g, idToken, nil
}

// getGrant runs a single-grant query and opens its ID token.
func (db *DB) getGrant(ctx context.Context, pool *sql.DB, verb, query string, args ...any) (*store.OAuthGrant, error) {
	var g *store.OAuthGrant
	var idToken string
	err := db.queryRow(ctx, pool, query, args, func(r *sql.Row) (err error) {
		g, idToken, err = scanGrant(r)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s oauth grant: %w", verb, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s oauth grant: %w", verb, err)
	}
	if g.IDToken, err = db.ring.Open(idToken, grantRecord(g.ID)); err != nil {
		return nil, err
	}
	return g, nil
}

// CreateOAuthGrant implements store.OAuthGrants.
func (db *DB) CreateOAuthGrant(ctx context.Context, g *store.OAuthGrant) error {
	if g.ID == "" || g.Subject == "" || g.ClientID == "" || len(g.RefreshHash) == 0 {
		return errors.New("creating oauth grant: id, subject, client id and refresh hash are required")
	}
	idToken, err := db.ring.Seal(g.IDToken, grantRecord(g.ID))
	if err != nil {
		return err
	}
	if g.CreatedAt.IsZero() {
		g.CreatedAt = db.now()
	}
	n, err := db.exec(ctx, `INSERT INTO oauth_grants (`+grantCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT DO NOTHING`,
		g.ID, g.Subject, g.ClientID, g.Resource, g.OperationID, joinList(g.Scopes), rawJSON(g.UserData), idToken,
		g.RefreshHash, nonNil(g.PrevRefreshHash), ms(g.RotatedAt), ms(g.CreatedAt), ms(g.ExpiresAt), ms(g.RevokedAt),
		g.RevokeReason)
	if err != nil {
		return fmt.Errorf("creating oauth grant: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("creating oauth grant %s: %w", g.ID, store.ErrConflict)
	}
	g.Version = 1
	return nil
}

// GetOAuthGrant implements store.OAuthGrants.
func (db *DB) GetOAuthGrant(ctx context.Context, id string) (*store.OAuthGrant, error) {
	return db.getGrant(ctx, db.read, "getting", `SELECT `+grantCols+` FROM oauth_grants WHERE id = ?`, id)
}

// FindOAuthGrantByRefresh implements store.OAuthGrants. Should a hash be both one grant's current
// and another's previous one, the current one wins.
func (db *DB) FindOAuthGrantByRefresh(ctx context.Context, hash []byte) (*store.OAuthGrant, error) {
	if len(hash) == 0 { // the empty previous hash of a never-rotated grant matches nothing
		return nil, fmt.Errorf("finding oauth grant: %w", store.ErrNotFound)
	}
	return db.getGrant(ctx, db.read, "finding", `SELECT `+grantCols+` FROM oauth_grants
		WHERE refresh_hash = ? OR prev_refresh_hash = ?
		ORDER BY CASE WHEN refresh_hash = ? THEN 0 ELSE 1 END LIMIT 1`, hash, hash, hash)
}

// RotateOAuthGrant implements store.OAuthGrants: one compare-and-swap UPDATE … RETURNING (SET
// expressions read the old row, so prev_refresh_hash gets the replaced hash). A revoked grant is
// never rotated: revoking bumps the version, and the update also requires revoked_at = 0.
func (db *DB) RotateOAuthGrant(ctx context.Context, id string, version int64, newHash []byte) (*store.OAuthGrant, error) {
	if len(newHash) == 0 {
		return nil, errors.New("rotating oauth grant: empty refresh hash")
	}
	g, err := db.getGrant(ctx, db.write, "rotating", `UPDATE oauth_grants SET prev_refresh_hash = refresh_hash,
		refresh_hash = ?, rotated_at = ?, version = version + 1
		WHERE id = ? AND version = ? AND revoked_at = 0
		RETURNING `+grantCols, newHash, db.nowMS(), id, version)
	if errors.Is(err, store.ErrNotFound) {
		return nil, db.grantMissOrConflict(ctx, id, "rotating")
	}
	return g, err
}

func (db *DB) grantMissOrConflict(ctx context.Context, id, verb string) error {
	var one int
	err := db.queryRow(ctx, db.write, `SELECT 1 FROM oauth_grants WHERE id = ?`, []any{id},
		func(r *sql.Row) error { return r.Scan(&one) })
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s oauth grant %s: %w", verb, id, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("%s oauth grant: %w", verb, err)
	}
	return fmt.Errorf("%s oauth grant %s: %w", verb, id, store.ErrConflict)
}

// RevokeOAuthGrant implements store.OAuthGrants. The first revocation wins: its time and reason
// are kept, and it bumps the version so a rotation racing it loses.
func (db *DB) RevokeOAuthGrant(ctx context.Context, id, reason string) error {
	n, err := db.exec(ctx, `UPDATE oauth_grants SET revoked_at = ?, revoke_reason = ?, version = version + 1
		WHERE id = ? AND revoked_at = 0`, db.nowMS(), reason, id)
	if err != nil {
		return fmt.Errorf("revoking oauth grant: %w", err)
	}
	if n > 0 {
		return nil
	}
	// Nothing updated: the grant is absent, or it exists and was already revoked (not an error).
	if err := db.grantMissOrConflict(ctx, id, "revoking"); !errors.Is(err, store.ErrConflict) {
		return err
	}
	return nil
}

// ListOAuthGrants implements store.OAuthGrants. It opens no ID token (IDToken stays empty), so it
// works even when a key was lost.
func (db *DB) ListOAuthGrants(ctx context.Context, subject string, limit int) ([]store.OAuthGrant, error) {
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT ` + grantCols + ` FROM oauth_grants`
	var args []any
	if subject != "" {
		q += ` WHERE subject = ?`
		args = append(args, subject)
	}
	q += fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT %d`, limit)
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing oauth grants: %w", err)
	}
	defer rows.Close()
	var out []store.OAuthGrant
	for rows.Next() {
		g, _, err := scanGrant(rows)
		if err != nil {
			return nil, fmt.Errorf("listing oauth grants: %w", err)
		}
		out = append(out, *g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing oauth grants: %w", err)
	}
	return out, nil
}

// ---- client consents

// GetClientConsent implements store.ClientConsents.
func (db *DB) GetClientConsent(ctx context.Context, subject, clientID, operationID string) (*store.ClientConsent, error) {
	c := store.ClientConsent{Subject: subject, ClientID: clientID, OperationID: operationID}
	var approved int64
	err := db.queryRow(ctx, db.read, `SELECT redirect_uris_hash, approved_at FROM client_consents
		WHERE subject = ? AND client_id = ? AND operation_id = ?`, []any{subject, clientID, operationID},
		func(r *sql.Row) error { return r.Scan(&c.RedirectURIsHash, &approved) })
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("getting client consent: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("getting client consent: %w", err)
	}
	if len(c.RedirectURIsHash) == 0 {
		c.RedirectURIsHash = nil
	}
	c.ApprovedAt = fromMS(approved)
	return &c, nil
}

// PutClientConsent implements store.ClientConsents.
func (db *DB) PutClientConsent(ctx context.Context, c *store.ClientConsent) error {
	if c.Subject == "" || c.ClientID == "" {
		return errors.New("putting client consent: subject and client id are required")
	}
	if c.ApprovedAt.IsZero() {
		c.ApprovedAt = db.now()
	}
	_, err := db.exec(ctx, `INSERT INTO client_consents (subject, client_id, operation_id, redirect_uris_hash, approved_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (subject, client_id, operation_id) DO UPDATE SET redirect_uris_hash = excluded.redirect_uris_hash,
		approved_at = excluded.approved_at`,
		c.Subject, c.ClientID, c.OperationID, nonNil(c.RedirectURIsHash), ms(c.ApprovedAt))
	if err != nil {
		return fmt.Errorf("putting client consent: %w", err)
	}
	return nil
}
