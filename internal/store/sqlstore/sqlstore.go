// Package sqlstore implements every store interface once, in SQL that SQLite and PostgreSQL both
// speak, over database/sql. The backends (store/sqlite, store/postgres) supply the connections, a
// Dialect (placeholders, embedded migrations, migration lock) and nothing else, so both have the same
// semantics by construction and the conformance suite checks the rest.
//
// Times are stored as BIGINT Unix milliseconds (0 = unset) so comparisons are identical on both
// databases. Secrets are stored as vault ciphertexts (TEXT), sealed here with the record key as AAD.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Dialect is what differs between backends.
type Dialect struct {
	Name string
	// Rebind rewrites the ? placeholders of a query for the driver (nil: unchanged).
	Rebind func(string) string
	// Migrations holds NNNN_name.sql files, applied in order, each in its own transaction.
	Migrations fs.FS
	// MigrationLock, when set, runs first in every migration transaction (PostgreSQL: an advisory lock
	// so replicas starting together do not race).
	MigrationLock string
	// Retryable, when set, reports errors that prove the statement never ran (a pooled connection
	// found dead after a server restart); such statements are retried on another connection.
	Retryable func(error) bool
}

// maxRetries bounds retries of statements that failed with a Retryable error.
const maxRetries = 3

// Options configure a DB.
type Options struct {
	// Ring seals and opens secrets. Required.
	Ring *vault.Ring
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// DB is a store.Store over database/sql.
type DB struct {
	read, write *sql.DB
	d           Dialect
	ring        *vault.Ring
	now         func() time.Time
	closers     []func() error
}

// New returns a store reading through read and writing through write (they may be the same pool;
// SQLite uses a one-connection writer so writers queue in-process instead of failing with BUSY).
// closers run on Close after the pools are closed.
func New(read, write *sql.DB, d Dialect, o Options, closers ...func() error) (*DB, error) {
	if o.Ring == nil {
		return nil, errors.New("opening store: no key ring")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if d.Rebind == nil {
		d.Rebind = func(s string) string { return s }
	}
	return &DB{read: read, write: write, d: d, ring: o.Ring, now: o.Now, closers: closers}, nil
}

// Close closes the pools.
func (db *DB) Close() error {
	errs := []error{db.read.Close()}
	if db.write != db.read {
		errs = append(errs, db.write.Close())
	}
	for _, c := range db.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// Ping checks both pools.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.read.PingContext(ctx); err != nil {
		return fmt.Errorf("pinging %s: %w", db.d.Name, err)
	}
	if err := db.write.PingContext(ctx); err != nil {
		return fmt.Errorf("pinging %s: %w", db.d.Name, err)
	}
	return nil
}

// Writer exposes the write pool for backend-specific tests and tools.
func (db *DB) Writer() *sql.DB { return db.write }

func (db *DB) q(s string) string { return db.d.Rebind(s) }

// retry runs fn, and again (up to maxRetries times) while it fails with an error the dialect says
// guarantees the statement did not run.
func (db *DB) retry(ctx context.Context, fn func() error) error {
	err := fn()
	for i := 0; i < maxRetries && err != nil && db.d.Retryable != nil && db.d.Retryable(err) && ctx.Err() == nil; i++ {
		err = fn()
	}
	return err
}

func (db *DB) exec(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := db.retry(ctx, func() error {
		res, err := db.write.ExecContext(ctx, db.q(query), args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// queryRow runs a single-row query on pool and scans it, with retries.
func (db *DB) queryRow(ctx context.Context, pool *sql.DB, query string, args []any, scan func(*sql.Row) error) error {
	return db.retry(ctx, func() error { return scan(pool.QueryRowContext(ctx, db.q(query), args...)) })
}

// query runs a multi-row query on the read pool, retrying the start of it.
func (db *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	var rows *sql.Rows
	err := db.retry(ctx, func() error {
		var err error
		rows, err = db.read.QueryContext(ctx, db.q(query), args...)
		return err
	})
	return rows, err
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

func (db *DB) nowMS() int64 { return db.now().UnixMilli() }

func joinList(v []string) string {
	if len(v) == 0 {
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func splitList(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("decoding list column: %w", err)
	}
	return v, nil
}

func rawJSON(b json.RawMessage) string {
	if len(b) == 0 {
		return ""
	}
	return string(b)
}

// Record keys: the AAD of each sealed column.

func connRecord(k store.ConnectionKey, field string) string {
	return vault.Record("connection", k.UpstreamID, string(k.Mode), k.Subject, field)
}

func regRecord(k store.ClientRegistrationKey) string {
	return vault.Record("client_registration", k.Issuer, k.UpstreamID, k.RedirectURI, "secret")
}

func pendingRecord(stateHash []byte) string {
	return vault.Record("pending_authorization", hex.EncodeToString(stateHash), "verifier")
}

// ---- connections

const connCols = `upstream_id, mode, subject, status, access_token, refresh_token, expiry, scopes, issuer,
	token_endpoint, client_id, auth_method, resource, last_error_code, last_error_message, last_error_at,
	last_refresh_at, connected_by, created_at, updated_at, version`

type scanner interface{ Scan(...any) error }

// scanConn reads a row; the sealed tokens are returned for the caller to open (or not).
func scanConn(r scanner) (*store.Connection, string, string, error) {
	var c store.Connection
	var at, rt, scopes, leCode, leMsg string
	var expiry, leAt, lastRefresh, created, updated int64
	if err := r.Scan(&c.UpstreamID, &c.Mode, &c.Subject, &c.Status, &at, &rt, &expiry, &scopes, &c.Issuer,
		&c.TokenEndpoint, &c.ClientID, &c.AuthMethod, &c.Resource, &leCode, &leMsg, &leAt,
		&lastRefresh, &c.ConnectedBy, &created, &updated, &c.Version); err != nil {
		return nil, "", "", err
	}
	var err error
	if c.Scopes, err = splitList(scopes); err != nil {
		return nil, "", "", err
	}
	c.Expiry, c.LastRefreshAt, c.CreatedAt, c.UpdatedAt = fromMS(expiry), fromMS(lastRefresh), fromMS(created), fromMS(updated)
	if leCode != "" || leMsg != "" || leAt != 0 {
		c.LastError = &store.LastError{Code: leCode, Message: leMsg, At: fromMS(leAt)}
	}
	c.HasAccessToken, c.HasRefreshToken = at != "", rt != ""
	return &c, at, rt, nil
}

// GetConnection implements store.Connections.
func (db *DB) GetConnection(ctx context.Context, k store.ConnectionKey) (*store.Connection, error) {
	var c *store.Connection
	var at, rt string
	err := db.queryRow(ctx, db.read, `SELECT `+connCols+` FROM connections WHERE upstream_id = ? AND mode = ? AND subject = ?`,
		[]any{k.UpstreamID, string(k.Mode), k.Subject}, func(r *sql.Row) (err error) {
			c, at, rt, err = scanConn(r)
			return err
		})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("getting connection %s/%s: %w", k.UpstreamID, k.Mode, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("getting connection: %w", err)
	}
	if c.AccessToken, err = db.ring.Open(at, connRecord(k, "access")); err != nil {
		return nil, err
	}
	if c.RefreshToken, err = db.ring.Open(rt, connRecord(k, "refresh")); err != nil {
		return nil, err
	}
	return c, nil
}

// PutConnection implements store.Connections.
func (db *DB) PutConnection(ctx context.Context, c *store.Connection) error {
	k := c.ConnectionKey
	if k.UpstreamID == "" || k.Subject == "" || (k.Mode != store.ModeUser && k.Mode != store.ModeShared) {
		return errors.New("putting connection: upstream id, subject and mode user|shared are required")
	}
	if c.Status == "" {
		c.Status = store.StatusActive
	}
	at, err := db.ring.Seal(c.AccessToken, connRecord(k, "access"))
	if err != nil {
		return err
	}
	rt, err := db.ring.Seal(c.RefreshToken, connRecord(k, "refresh"))
	if err != nil {
		return err
	}
	var le store.LastError
	if c.LastError != nil {
		le = *c.LastError
	}
	now := db.now()
	if c.Version == 0 {
		created := c.CreatedAt
		if created.IsZero() {
			created = now
		}
		n, err := db.exec(ctx, `INSERT INTO connections (`+connCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
			ON CONFLICT DO NOTHING`,
			k.UpstreamID, string(k.Mode), k.Subject, string(c.Status), at, rt, ms(c.Expiry), joinList(c.Scopes), c.Issuer,
			c.TokenEndpoint, c.ClientID, c.AuthMethod, c.Resource, le.Code, le.Message, ms(le.At),
			ms(c.LastRefreshAt), c.ConnectedBy, ms(created), ms(now))
		if err != nil {
			return fmt.Errorf("creating connection: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("creating connection %s/%s: %w", k.UpstreamID, k.Mode, store.ErrConflict)
		}
		c.Version, c.CreatedAt, c.UpdatedAt = 1, created, now
	} else {
		n, err := db.exec(ctx, `UPDATE connections SET status = ?, access_token = ?, refresh_token = ?, expiry = ?,
			scopes = ?, issuer = ?, token_endpoint = ?, client_id = ?, auth_method = ?, resource = ?,
			last_error_code = ?, last_error_message = ?, last_error_at = ?, last_refresh_at = ?, connected_by = ?,
			updated_at = ?, version = version + 1
			WHERE upstream_id = ? AND mode = ? AND subject = ? AND version = ?`,
			string(c.Status), at, rt, ms(c.Expiry), joinList(c.Scopes), c.Issuer, c.TokenEndpoint, c.ClientID,
			c.AuthMethod, c.Resource, le.Code, le.Message, ms(le.At), ms(c.LastRefreshAt), c.ConnectedBy,
			ms(now), k.UpstreamID, string(k.Mode), k.Subject, c.Version)
		if err != nil {
			return fmt.Errorf("updating connection: %w", err)
		}
		if n == 0 {
			return db.connMissOrConflict(ctx, k, "updating")
		}
		c.Version++
		c.UpdatedAt = now
	}
	c.HasAccessToken, c.HasRefreshToken = at != "", rt != ""
	return nil
}

func (db *DB) connMissOrConflict(ctx context.Context, k store.ConnectionKey, verb string) error {
	var one int
	err := db.queryRow(ctx, db.write, `SELECT 1 FROM connections WHERE upstream_id = ? AND mode = ? AND subject = ?`,
		[]any{k.UpstreamID, string(k.Mode), k.Subject}, func(r *sql.Row) error { return r.Scan(&one) })
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s connection %s/%s: %w", verb, k.UpstreamID, k.Mode, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("%s connection: %w", verb, err)
	}
	return fmt.Errorf("%s connection %s/%s: %w", verb, k.UpstreamID, k.Mode, store.ErrConflict)
}

// DeleteConnection implements store.Connections.
func (db *DB) DeleteConnection(ctx context.Context, k store.ConnectionKey, version int64) error {
	n, err := db.exec(ctx, `DELETE FROM connections WHERE upstream_id = ? AND mode = ? AND subject = ? AND version = ?`,
		k.UpstreamID, string(k.Mode), k.Subject, version)
	if err != nil {
		return fmt.Errorf("deleting connection: %w", err)
	}
	if n == 0 {
		return db.connMissOrConflict(ctx, k, "deleting")
	}
	return nil
}

// ListConnections implements store.Connections.
func (db *DB) ListConnections(ctx context.Context, f store.ConnectionFilter) ([]store.Connection, error) {
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.UpstreamID != "" {
		add("upstream_id = ?", f.UpstreamID)
	}
	if f.Subject != "" {
		add("subject = ?", f.Subject)
	}
	if f.Status != "" {
		add("status = ?", string(f.Status))
	}
	q := `SELECT ` + connCols + ` FROM connections`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY upstream_id, mode, subject"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing connections: %w", err)
	}
	defer rows.Close()
	var out []store.Connection
	for rows.Next() {
		c, _, _, err := scanConn(rows)
		if err != nil {
			return nil, fmt.Errorf("listing connections: %w", err)
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing connections: %w", err)
	}
	return out, nil
}

// ---- client registrations

// GetClientRegistration implements store.ClientRegistrations.
func (db *DB) GetClientRegistration(ctx context.Context, k store.ClientRegistrationKey) (*store.ClientRegistration, error) {
	r := store.ClientRegistration{ClientRegistrationKey: k}
	var secret string
	var reg, exp int64
	err := db.queryRow(ctx, db.read, `SELECT method, client_id, client_secret, auth_method, registered_at, expires_at
		FROM client_registrations WHERE issuer = ? AND upstream_id = ? AND redirect_uri = ? AND (expires_at = 0 OR expires_at > ?)`,
		[]any{k.Issuer, k.UpstreamID, k.RedirectURI, db.nowMS()}, func(row *sql.Row) error {
			return row.Scan(&r.Method, &r.ClientID, &secret, &r.AuthMethod, &reg, &exp)
		})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("getting client registration for %s: %w", k.UpstreamID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("getting client registration: %w", err)
	}
	if r.ClientSecret, err = db.ring.Open(secret, regRecord(k)); err != nil {
		return nil, err
	}
	r.RegisteredAt, r.ExpiresAt = fromMS(reg), fromMS(exp)
	return &r, nil
}

// PutClientRegistration implements store.ClientRegistrations.
func (db *DB) PutClientRegistration(ctx context.Context, r *store.ClientRegistration) error {
	secret, err := db.ring.Seal(r.ClientSecret, regRecord(r.ClientRegistrationKey))
	if err != nil {
		return err
	}
	if r.RegisteredAt.IsZero() {
		r.RegisteredAt = db.now()
	}
	_, err = db.exec(ctx, `INSERT INTO client_registrations
		(issuer, upstream_id, redirect_uri, method, client_id, client_secret, auth_method, registered_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (issuer, upstream_id, redirect_uri) DO UPDATE SET method = excluded.method,
		client_id = excluded.client_id, client_secret = excluded.client_secret, auth_method = excluded.auth_method,
		registered_at = excluded.registered_at, expires_at = excluded.expires_at`,
		r.Issuer, r.UpstreamID, r.RedirectURI, r.Method, r.ClientID, secret, r.AuthMethod, ms(r.RegisteredAt), ms(r.ExpiresAt))
	if err != nil {
		return fmt.Errorf("putting client registration: %w", err)
	}
	if r.Method != "dcr" {
		return nil
	}
	// Keep the newest MaxDynamicRegistrations dynamic registrations of the upstream (ties on
	// registered_at may keep a few more). Without that many rows the subquery is NULL and
	// nothing is deleted.
	if _, err := db.exec(ctx, `DELETE FROM client_registrations WHERE upstream_id = ? AND method = 'dcr'
		AND registered_at < (SELECT registered_at FROM client_registrations WHERE upstream_id = ? AND method = 'dcr'
			ORDER BY registered_at DESC LIMIT 1 OFFSET ?)`,
		r.UpstreamID, r.UpstreamID, store.MaxDynamicRegistrations-1); err != nil {
		return fmt.Errorf("bounding client registrations: %w", err)
	}
	return nil
}

// DeleteClientRegistrations implements store.ClientRegistrations.
func (db *DB) DeleteClientRegistrations(ctx context.Context, upstreamID string) (int, error) {
	n, err := db.exec(ctx, `DELETE FROM client_registrations WHERE upstream_id = ?`, upstreamID)
	if err != nil {
		return 0, fmt.Errorf("deleting client registrations: %w", err)
	}
	return int(n), nil
}

// ---- pending authorizations

// CreatePending implements store.PendingAuthorizations.
func (db *DB) CreatePending(ctx context.Context, state string, p *store.PendingAuthorization) error {
	if state == "" {
		return errors.New("creating pending authorization: empty state")
	}
	h := store.HashState(state)
	verifier, err := db.ring.Seal(p.Verifier, pendingRecord(h))
	if err != nil {
		return err
	}
	now := db.now()
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now
	}
	if p.ExpiresAt.IsZero() {
		p.ExpiresAt = now.Add(store.PendingTTL)
	}
	n, err := db.exec(ctx, `INSERT INTO pending_authorizations (state_hash, upstream_id, mode, subject, verifier, scopes,
		elicitation_id, browser_nonce_hash, redirect_uri, resource, issuer, operation_id, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		h, p.UpstreamID, string(p.Mode), p.Subject, verifier, joinList(p.Scopes), p.ElicitationID, nonNil(p.BrowserNonceHash),
		p.RedirectURI, p.Resource, p.Issuer, p.OperationID, ms(p.CreatedAt), ms(p.ExpiresAt))
	if err != nil {
		return fmt.Errorf("creating pending authorization: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("creating pending authorization: %w", store.ErrConflict)
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ConsumePending implements store.PendingAuthorizations: one DELETE … RETURNING, so of concurrent
// callers exactly one gets the row.
func (db *DB) ConsumePending(ctx context.Context, state string) (*store.PendingAuthorization, error) {
	h := store.HashState(state)
	var p store.PendingAuthorization
	var verifier, scopes string
	var created, expires int64
	err := db.queryRow(ctx, db.write, `DELETE FROM pending_authorizations WHERE state_hash = ? AND expires_at > ?
		RETURNING upstream_id, mode, subject, verifier, scopes, elicitation_id, browser_nonce_hash, redirect_uri,
		resource, issuer, operation_id, created_at, expires_at`, []any{h, db.nowMS()}, func(r *sql.Row) error {
		return r.Scan(&p.UpstreamID, &p.Mode, &p.Subject, &verifier, &scopes, &p.ElicitationID, &p.BrowserNonceHash,
			&p.RedirectURI, &p.Resource, &p.Issuer, &p.OperationID, &created, &expires)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("consuming pending authorization: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("consuming pending authorization: %w", err)
	}
	if p.Scopes, err = splitList(scopes); err != nil {
		return nil, err
	}
	if p.Verifier, err = db.ring.Open(verifier, pendingRecord(h)); err != nil {
		return nil, err
	}
	p.CreatedAt, p.ExpiresAt = fromMS(created), fromMS(expires)
	if len(p.BrowserNonceHash) == 0 {
		p.BrowserNonceHash = nil
	}
	return &p, nil
}

// ---- ticket uses

// UseTicket implements store.TicketUses.
func (db *DB) UseTicket(ctx context.Context, id string, expiresAt time.Time) error {
	n, err := db.exec(ctx, `INSERT INTO ticket_uses (ticket_id, used_at, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		id, db.nowMS(), ms(expiresAt))
	if err != nil {
		return fmt.Errorf("recording ticket use: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("recording ticket use: %w", store.ErrAlreadyUsed)
	}
	return nil
}

// ---- audit

// AppendAudit implements store.Audit.
func (db *DB) AppendAudit(ctx context.Context, e *store.AuditEvent) error {
	if e.Time.IsZero() {
		e.Time = db.now()
	}
	err := db.queryRow(ctx, db.write, `INSERT INTO audit_events (occurred_at, event, outcome, reason_code, upstream_id,
		operation_id, subject, actor, request_id, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		[]any{ms(e.Time), e.Event, e.Outcome, e.ReasonCode, e.UpstreamID, e.OperationID, e.Subject, e.Actor, e.RequestID,
			rawJSON(e.Details)}, func(r *sql.Row) error { return r.Scan(&e.ID) })
	if err != nil {
		return fmt.Errorf("appending audit event: %w", err)
	}
	return nil
}

// QueryAudit implements store.Audit.
func (db *DB) QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, error) {
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	for _, f := range []struct{ col, v string }{
		{"subject", q.Subject}, {"upstream_id", q.UpstreamID}, {"event", q.Event}, {"outcome", q.Outcome},
	} {
		if f.v != "" {
			add(f.col+" = ?", f.v)
		}
	}
	if !q.Since.IsZero() {
		add("occurred_at >= ?", ms(q.Since))
	}
	if !q.Until.IsZero() {
		add("occurred_at < ?", ms(q.Until))
	}
	if q.BeforeID > 0 {
		add("id < ?", q.BeforeID)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	query := `SELECT id, occurred_at, event, outcome, reason_code, upstream_id, operation_id, subject, actor, request_id, details
		FROM audit_events`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limit)
	rows, err := db.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("querying audit events: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		var e store.AuditEvent
		var at int64
		var details string
		if err := rows.Scan(&e.ID, &at, &e.Event, &e.Outcome, &e.ReasonCode, &e.UpstreamID, &e.OperationID,
			&e.Subject, &e.Actor, &e.RequestID, &details); err != nil {
			return nil, fmt.Errorf("querying audit events: %w", err)
		}
		e.Time = fromMS(at)
		if details != "" {
			e.Details = json.RawMessage(details)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("querying audit events: %w", err)
	}
	return out, nil
}

// DeleteAuditBefore implements store.Audit.
func (db *DB) DeleteAuditBefore(ctx context.Context, t time.Time) (int, error) {
	n, err := db.exec(ctx, `DELETE FROM audit_events WHERE occurred_at < ?`, ms(t))
	if err != nil {
		return 0, fmt.Errorf("deleting audit events: %w", err)
	}
	return int(n), nil
}

// ---- API keys

// CreateAPIKey implements store.APIKeys.
func (db *DB) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	if k.ID == "" || len(k.Hash) == 0 || k.Consumer == "" {
		return errors.New("creating api key: id, consumer and hash are required")
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = db.now()
	}
	n, err := db.exec(ctx, `INSERT INTO api_keys (id, consumer, hash, metadata, admin, created_at, expires_at, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		k.ID, k.Consumer, k.Hash, rawJSON(k.Metadata), k.Admin, ms(k.CreatedAt), ms(k.ExpiresAt), ms(k.RevokedAt))
	if err != nil {
		return fmt.Errorf("creating api key: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("creating api key %s: %w", k.ID, store.ErrConflict)
	}
	return nil
}

const apiKeyCols = `id, consumer, hash, metadata, admin, created_at, expires_at, revoked_at`

func scanAPIKey(r scanner) (*store.APIKey, error) {
	var k store.APIKey
	var meta string
	var created, expires, revoked int64
	if err := r.Scan(&k.ID, &k.Consumer, &k.Hash, &meta, &k.Admin, &created, &expires, &revoked); err != nil {
		return nil, err
	}
	if meta != "" {
		k.Metadata = json.RawMessage(meta)
	}
	k.CreatedAt, k.ExpiresAt, k.RevokedAt = fromMS(created), fromMS(expires), fromMS(revoked)
	return &k, nil
}

// LookupAPIKey implements store.APIKeys.
func (db *DB) LookupAPIKey(ctx context.Context, hash []byte) (*store.APIKey, error) {
	var k *store.APIKey
	err := db.queryRow(ctx, db.read, `SELECT `+apiKeyCols+` FROM api_keys WHERE hash = ?`, []any{hash},
		func(r *sql.Row) (err error) { k, err = scanAPIKey(r); return err })
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("looking up api key: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up api key: %w", err)
	}
	return k, nil
}

// ListAPIKeys implements store.APIKeys.
func (db *DB) ListAPIKeys(ctx context.Context) ([]store.APIKey, error) {
	rows, err := db.query(ctx, `SELECT `+apiKeyCols+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("listing api keys: %w", err)
	}
	defer rows.Close()
	var out []store.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("listing api keys: %w", err)
		}
		out = append(out, *k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing api keys: %w", err)
	}
	return out, nil
}

// RevokeAPIKey implements store.APIKeys.
func (db *DB) RevokeAPIKey(ctx context.Context, id string) error {
	n, err := db.exec(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, db.nowMS(), id)
	if err != nil {
		return fmt.Errorf("revoking api key: %w", err)
	}
	if n > 0 {
		return nil
	}
	var one int
	err = db.queryRow(ctx, db.write, `SELECT 1 FROM api_keys WHERE id = ?`, []any{id}, func(r *sql.Row) error { return r.Scan(&one) })
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("revoking api key %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("revoking api key: %w", err)
	}
	return nil
}

// ---- leases

// TryAcquireLease implements store.Leases: one upsert that only overwrites an expired lease or the
// holder's own.
func (db *DB) TryAcquireLease(ctx context.Context, name, holder string, ttl time.Duration) error {
	now := db.now()
	n, err := db.exec(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.expires_at <= ? OR leases.holder = excluded.holder`,
		name, holder, ms(now.Add(ttl)), ms(now))
	if err != nil {
		return fmt.Errorf("acquiring lease: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("acquiring lease %s: %w", name, store.ErrLeaseHeld)
	}
	return nil
}

// RenewLease implements store.Leases.
func (db *DB) RenewLease(ctx context.Context, name, holder string, ttl time.Duration) error {
	n, err := db.exec(ctx, `UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ?`,
		ms(db.now().Add(ttl)), name, holder)
	if err != nil {
		return fmt.Errorf("renewing lease: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("renewing lease %s: %w", name, store.ErrLeaseHeld)
	}
	return nil
}

// ReleaseLease implements store.Leases.
func (db *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := db.exec(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder); err != nil {
		return fmt.Errorf("releasing lease: %w", err)
	}
	return nil
}

// ---- sweeping

// Sweep implements store.Sweeper.
func (db *DB) Sweep(ctx context.Context) (int, error) {
	now := db.nowMS()
	total := 0
	for _, q := range []struct {
		sql    string
		before int64
	}{
		{`DELETE FROM pending_authorizations WHERE expires_at <= ?`, now},
		{`DELETE FROM ticket_uses WHERE expires_at <= ?`, now},
		{`DELETE FROM client_registrations WHERE expires_at <> 0 AND expires_at <= ?`, now},
		{`DELETE FROM leases WHERE expires_at <= ?`, now},
		{`DELETE FROM oauth_clients WHERE expires_at <> 0 AND expires_at <= ?`, now},
		{`DELETE FROM signin_requests WHERE expires_at <= ?`, now},
		{`DELETE FROM oauth_grants WHERE expires_at <> 0 AND expires_at <= ?`, now - grantSweepDelay.Milliseconds()},
	} {
		n, err := db.exec(ctx, q.sql, q.before)
		if err != nil {
			return total, fmt.Errorf("sweeping expired records: %w", err)
		}
		total += int(n)
	}
	return total, nil
}

var _ store.Store = (*DB)(nil)
