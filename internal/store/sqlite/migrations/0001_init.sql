-- mcpgate schema v1 (SQLite). Times are Unix milliseconds, 0 = unset. Secret columns hold vault
-- ciphertexts (mg1.<kid>.<…>), never plaintext. Keep in step with ../../postgres/migrations.

CREATE TABLE connections (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	upstream_id TEXT NOT NULL,
	mode TEXT NOT NULL CHECK (mode IN ('user', 'shared')),
	subject TEXT NOT NULL,
	status TEXT NOT NULL CHECK (status IN ('active', 'reconsent_required', 'revoked')),
	access_token TEXT NOT NULL DEFAULT '',
	refresh_token TEXT NOT NULL DEFAULT '',
	expiry INTEGER NOT NULL DEFAULT 0,
	scopes TEXT NOT NULL DEFAULT '',
	issuer TEXT NOT NULL DEFAULT '',
	token_endpoint TEXT NOT NULL DEFAULT '',
	client_id TEXT NOT NULL DEFAULT '',
	auth_method TEXT NOT NULL DEFAULT '',
	resource TEXT NOT NULL DEFAULT '',
	last_error_code TEXT NOT NULL DEFAULT '',
	last_error_message TEXT NOT NULL DEFAULT '',
	last_error_at INTEGER NOT NULL DEFAULT 0,
	last_refresh_at INTEGER NOT NULL DEFAULT 0,
	connected_by TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	version INTEGER NOT NULL,
	UNIQUE (upstream_id, mode, subject)
);
CREATE INDEX connections_subject ON connections (subject);

CREATE TABLE client_registrations (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	issuer TEXT NOT NULL,
	upstream_id TEXT NOT NULL,
	redirect_uri TEXT NOT NULL,
	method TEXT NOT NULL DEFAULT '',
	client_id TEXT NOT NULL,
	client_secret TEXT NOT NULL DEFAULT '',
	auth_method TEXT NOT NULL DEFAULT '',
	registered_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL DEFAULT 0,
	UNIQUE (issuer, upstream_id, redirect_uri)
);
CREATE INDEX client_registrations_upstream ON client_registrations (upstream_id);

CREATE TABLE pending_authorizations (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	state_hash BLOB NOT NULL UNIQUE,
	upstream_id TEXT NOT NULL,
	mode TEXT NOT NULL,
	subject TEXT NOT NULL,
	verifier TEXT NOT NULL DEFAULT '',
	scopes TEXT NOT NULL DEFAULT '',
	elicitation_id TEXT NOT NULL DEFAULT '',
	browser_nonce_hash BLOB NOT NULL,
	redirect_uri TEXT NOT NULL DEFAULT '',
	resource TEXT NOT NULL DEFAULT '',
	issuer TEXT NOT NULL DEFAULT '',
	operation_id TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX pending_authorizations_expires ON pending_authorizations (expires_at);

CREATE TABLE ticket_uses (
	ticket_id TEXT PRIMARY KEY,
	used_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX ticket_uses_expires ON ticket_uses (expires_at);

CREATE TABLE audit_events (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	occurred_at INTEGER NOT NULL,
	event TEXT NOT NULL,
	outcome TEXT NOT NULL DEFAULT '',
	reason_code TEXT NOT NULL DEFAULT '',
	upstream_id TEXT NOT NULL DEFAULT '',
	operation_id TEXT NOT NULL DEFAULT '',
	subject TEXT NOT NULL DEFAULT '',
	actor TEXT NOT NULL DEFAULT '',
	request_id TEXT NOT NULL DEFAULT '',
	details TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_subject ON audit_events (subject, id);
CREATE INDEX audit_events_upstream ON audit_events (upstream_id, id);
CREATE INDEX audit_events_time ON audit_events (occurred_at);

CREATE TABLE api_keys (
	id TEXT PRIMARY KEY,
	consumer TEXT NOT NULL,
	hash BLOB NOT NULL UNIQUE,
	metadata TEXT NOT NULL DEFAULT '',
	admin INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL DEFAULT 0,
	revoked_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE leases (
	name TEXT PRIMARY KEY,
	holder TEXT NOT NULL,
	expires_at INTEGER NOT NULL
);
