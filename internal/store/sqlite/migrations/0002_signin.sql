-- mcpgate schema v2 (SQLite): the records of the gateway's own OAuth authorization server (sign-in
-- for MCP clients). Tokens, codes and handles are stored only as their SHA-256; the sign-in payload
-- and the IdP's ID token are vault ciphertexts. Keep in step with ../../postgres/migrations.

-- Clients registered by RFC 7591 dynamic client registration.
CREATE TABLE oauth_clients (
	id TEXT PRIMARY KEY,
	secret_hash BLOB NOT NULL, -- empty for public clients
	name TEXT NOT NULL DEFAULT '',
	redirect_uris TEXT NOT NULL DEFAULT '', -- JSON array
	auth_method TEXT NOT NULL DEFAULT '',
	grant_types TEXT NOT NULL DEFAULT '', -- JSON array
	registered_from TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX oauth_clients_expires ON oauth_clients (expires_at);

-- Authorization requests in flight and issued authorization codes, under the SHA-256 of their
-- handle. A consumed record keeps its row (payload emptied, consumed_at set) until it expires, so a
-- second use is told apart from an unknown handle.
CREATE TABLE signin_requests (
	hash BLOB PRIMARY KEY,
	kind TEXT NOT NULL,
	payload TEXT NOT NULL DEFAULT '', -- sealed
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	consumed_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX signin_requests_expires ON signin_requests (expires_at);

-- Grants: one refresh-token family per person, client and route.
CREATE TABLE oauth_grants (
	id TEXT PRIMARY KEY,
	subject TEXT NOT NULL,
	client_id TEXT NOT NULL,
	resource TEXT NOT NULL DEFAULT '',
	operation_id TEXT NOT NULL DEFAULT '',
	scopes TEXT NOT NULL DEFAULT '', -- JSON array
	user_data TEXT NOT NULL DEFAULT '', -- JSON
	id_token TEXT NOT NULL DEFAULT '', -- sealed
	refresh_hash BLOB NOT NULL UNIQUE,
	prev_refresh_hash BLOB NOT NULL, -- empty before the first rotation
	rotated_at INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL DEFAULT 0,
	revoked_at INTEGER NOT NULL DEFAULT 0,
	revoke_reason TEXT NOT NULL DEFAULT '',
	version INTEGER NOT NULL
);
CREATE INDEX oauth_grants_prev_refresh ON oauth_grants (prev_refresh_hash);
CREATE INDEX oauth_grants_subject ON oauth_grants (subject, created_at);
CREATE INDEX oauth_grants_expires ON oauth_grants (expires_at);

-- Consents: a person approved a client for a route.
CREATE TABLE client_consents (
	subject TEXT NOT NULL,
	client_id TEXT NOT NULL,
	operation_id TEXT NOT NULL,
	redirect_uris_hash BLOB NOT NULL,
	approved_at INTEGER NOT NULL,
	PRIMARY KEY (subject, client_id, operation_id)
);
