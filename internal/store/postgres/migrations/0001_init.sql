-- mcpgate schema v1 (PostgreSQL). Times are Unix milliseconds, 0 = unset. Secret columns hold vault
-- ciphertexts (mg1.<kid>.<…>), never plaintext. Keep in step with ../../sqlite/migrations.

CREATE TABLE connections (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	upstream_id TEXT NOT NULL,
	mode TEXT NOT NULL CHECK (mode IN ('user', 'shared')),
	subject TEXT NOT NULL,
	status TEXT NOT NULL CHECK (status IN ('active', 'reconsent_required', 'revoked')),
	access_token TEXT NOT NULL DEFAULT '',
	refresh_token TEXT NOT NULL DEFAULT '',
	expiry BIGINT NOT NULL DEFAULT 0,
	scopes TEXT NOT NULL DEFAULT '',
	issuer TEXT NOT NULL DEFAULT '',
	token_endpoint TEXT NOT NULL DEFAULT '',
	client_id TEXT NOT NULL DEFAULT '',
	auth_method TEXT NOT NULL DEFAULT '',
	resource TEXT NOT NULL DEFAULT '',
	last_error_code TEXT NOT NULL DEFAULT '',
	last_error_message TEXT NOT NULL DEFAULT '',
	last_error_at BIGINT NOT NULL DEFAULT 0,
	last_refresh_at BIGINT NOT NULL DEFAULT 0,
	connected_by TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	version BIGINT NOT NULL,
	UNIQUE (upstream_id, mode, subject)
);
CREATE INDEX connections_subject ON connections (subject);

CREATE TABLE client_registrations (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	issuer TEXT NOT NULL,
	upstream_id TEXT NOT NULL,
	redirect_uri TEXT NOT NULL,
	method TEXT NOT NULL DEFAULT '',
	client_id TEXT NOT NULL,
	client_secret TEXT NOT NULL DEFAULT '',
	auth_method TEXT NOT NULL DEFAULT '',
	registered_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL DEFAULT 0,
	UNIQUE (issuer, upstream_id, redirect_uri)
);
CREATE INDEX client_registrations_upstream ON client_registrations (upstream_id);

CREATE TABLE pending_authorizations (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	state_hash BYTEA NOT NULL UNIQUE,
	upstream_id TEXT NOT NULL,
	mode TEXT NOT NULL,
	subject TEXT NOT NULL,
	verifier TEXT NOT NULL DEFAULT '',
	scopes TEXT NOT NULL DEFAULT '',
	elicitation_id TEXT NOT NULL DEFAULT '',
	browser_nonce_hash BYTEA NOT NULL,
	redirect_uri TEXT NOT NULL DEFAULT '',
	resource TEXT NOT NULL DEFAULT '',
	issuer TEXT NOT NULL DEFAULT '',
	operation_id TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX pending_authorizations_expires ON pending_authorizations (expires_at);

CREATE TABLE ticket_uses (
	ticket_id TEXT PRIMARY KEY,
	used_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX ticket_uses_expires ON ticket_uses (expires_at);

CREATE TABLE audit_events (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	occurred_at BIGINT NOT NULL,
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
	hash BYTEA NOT NULL UNIQUE,
	metadata TEXT NOT NULL DEFAULT '',
	admin BOOLEAN NOT NULL DEFAULT FALSE,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL DEFAULT 0,
	revoked_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE leases (
	name TEXT PRIMARY KEY,
	holder TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);
