package main

import (
	"context"
	"database/sql"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/postgres"
	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/testutil/pgtest"
	"github.com/mcpgate/mcpgate/internal/vault"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// oldKeys are the API keys the older binary made for alice, ops and bob (testdata/upgrade/README.md).
type oldKeys struct{ alice, ops, bob string }

// An older mcpgate's database (testdata/upgrade, written at schema version 1) is migrated by this
// one — `mcpgate db migrate`, then everything it held is read back: connections and the client
// registration with their sealed tokens and secret, the API keys (alice authenticates a call through
// a gateway on the migrated database, bob stays revoked, ops stays admin) and the audit event.
func TestOlderDatabaseMigrated(t *testing.T) {
	keys := testRingLine("k1")
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		dataDir := filepath.Join(dir, ".mcpgate")
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		copyFile(t, filepath.Join("testdata", "upgrade", "v1.sqlite.db"), filepath.Join(dataDir, sqlite.FileName))
		checkMigrated(t, dir, []string{"MCPGATE_ENCRYPTION_KEYS=" + keys}, func(ring *vault.Ring) *sqlstore.DB {
			db, err := sqlite.Open(t.Context(), filepath.Join(dataDir, sqlite.FileName), sqlstore.Options{Ring: ring})
			if err != nil {
				t.Fatal(err)
			}
			return db
		}, oldKeys{alice: "mcpg_3S0dZS6x47sEOHZYBMfpCZM8O5TGHs7Vjw7CzjxzYRE", ops: "mcpg_qSW0lylgq5TT1t2qoeGmBmzFFzZ9577PNzqPJiDCZsI",
			bob: "mcpg_YcGi_ZVNl6G3WsIb2qRGcU6u1Dp2R6J2vXdIJpR7Ii8"})
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.NewDatabase(t)
		restoreDump(t, url, filepath.Join("testdata", "upgrade", "v1.postgres.sql"))
		checkMigrated(t, t.TempDir(), []string{"MCPGATE_ENCRYPTION_KEYS=" + keys, "MCPGATE_DATABASE_URL=" + url}, func(ring *vault.Ring) *sqlstore.DB {
			db, err := postgres.Open(t.Context(), url, sqlstore.Options{Ring: ring})
			if err != nil {
				t.Fatal(err)
			}
			return db
		}, oldKeys{alice: "mcpg_FMXkBQGi8NG3vaoCHgFwM2YNK9gpu8INfXnuyan9Uik", ops: "mcpg_hiDN-e-md8mzczYYOz2u6bETsK4psWYHsvEZ-0-2xIg",
			bob: "mcpg_G7dXGzONzuIz-F1KMSgEP2SWa72mSWpmpNQz_wueJY4"})
	})
}

// restoreDump loads a plain pg_dump file into the database at url.
func restoreDump(t *testing.T, url, file string) {
	t.Helper()
	dump, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, string(dump)); err != nil { // no arguments: the simple protocol, many statements
		t.Fatalf("restoring %s: %v", file, err)
	}
}

func checkMigrated(t *testing.T, dir string, env []string, open func(*vault.Ring) *sqlstore.DB, k oldKeys) {
	t.Helper()
	ring, err := vault.ParseRing(testRingLine("k1"))
	if err != nil {
		t.Fatal(err)
	}
	before := open(ring)
	if v, err := before.SchemaVersion(t.Context()); err != nil || v != 1 {
		t.Fatalf("the fixture is at schema version %d (%v), want 1", v, err)
	}
	latest, err := before.LatestVersion()
	if err != nil || latest <= 1 {
		t.Fatalf("latest schema version %d (%v): the test needs a migration after 1", latest, err)
	}
	_ = before.Close()

	r := runCLI(t, dir, env, "db", "migrate")
	if r.code != 0 || !strings.Contains(r.stdout, "schema version "+strconv.Itoa(latest)) {
		t.Fatalf("db migrate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	db := open(ring)
	t.Cleanup(func() { _ = db.Close() })
	ctx := t.Context()
	for i, sub := range []string{"apikey|alice", "apikey|bob"} {
		c, err := db.GetConnection(ctx, store.ConnectionKey{UpstreamID: "linear", Mode: store.ModeUser, Subject: sub})
		if err != nil {
			t.Fatalf("%s's connection after the migration: %v", sub, err)
		}
		if c.AccessToken.Reveal() != "old-access-"+strconv.Itoa(i) || c.RefreshToken.Reveal() != "old-refresh-"+strconv.Itoa(i) ||
			strings.Join(c.Scopes, " ") != "read write" || c.Issuer != "https://as.example" || c.Status != store.StatusActive {
			t.Errorf("%s's connection: %+v", sub, c)
		}
	}
	reg, err := db.GetClientRegistration(ctx, store.ClientRegistrationKey{Issuer: "https://as.example", UpstreamID: "linear",
		RedirectURI: "https://gw.example/auth/connections/linear/callback"})
	if err != nil || reg.ClientID != "dcr-client" || reg.ClientSecret.Reveal() != "old-client-secret" {
		t.Errorf("client registration after the migration: %+v %v", reg, err)
	}
	events, err := db.QueryAudit(ctx, store.AuditQuery{})
	if err != nil || len(events) != 5 { // the connection event and the CLI's three key creations and one revocation
		t.Errorf("audit after the migration: %d events, %v", len(events), err)
	}
	if evs, err := db.QueryAudit(ctx, store.AuditQuery{Event: "mcp_auth_upstream_connection_established"}); err != nil || len(evs) != 1 || evs[0].Subject != "apikey|alice" {
		t.Errorf("the connection event after the migration: %+v %v", evs, err)
	}
	for who, key := range map[string]string{"alice": k.alice, "ops": k.ops, "bob": k.bob} {
		got, err := db.LookupAPIKey(ctx, store.HashAPIKey(key))
		if err != nil {
			t.Fatalf("%s's API key after the migration: %v", who, err)
		}
		if got.Consumer != who || got.Admin != (who == "ops") || got.RevokedAt.IsZero() != (who != "bob") {
			t.Errorf("%s's API key: %+v", who, got)
		}
	}

	// A gateway on the migrated database authenticates alice's key and refuses bob's.
	gw := apiKeyGateway(t, db, ring)
	if code := callWithAPIKey(t, gw, k.alice); code != http.StatusOK {
		t.Errorf("a call with alice's key on the migrated database: %d, want 200", code)
	}
	if code := callWithAPIKey(t, gw, k.bob); code != http.StatusUnauthorized {
		t.Errorf("a call with bob's revoked key on the migrated database: %d, want 401", code)
	}
}

// A database written by a newer mcpgate (a schema version this binary does not know) is refused by
// `db migrate` and by `serve`, with a message that says to upgrade, and is left as it was.
func TestNewerSchemaRefused(t *testing.T) {
	keys := "MCPGATE_ENCRYPTION_KEYS=" + testRingLine("k1")
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		if r := runCLI(t, dir, []string{keys}, "keys", "create", "--consumer", "alice"); r.code != 0 {
			t.Fatalf("keys create: %d %s", r.code, r.stderr)
		}
		path := filepath.Join(dir, ".mcpgate", sqlite.FileName)
		exec := func(q string) {
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.ExecContext(t.Context(), q); err != nil {
				t.Fatal(err)
			}
		}
		checkNewerRefused(t, dir, []string{keys}, exec, func(ring *vault.Ring) *sqlstore.DB {
			db, err := sqlite.Open(t.Context(), path, sqlstore.Options{Ring: ring})
			if err != nil {
				t.Fatal(err)
			}
			return db
		})
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.NewDatabase(t)
		dir := t.TempDir()
		env := []string{keys, "MCPGATE_DATABASE_URL=" + url}
		if r := runCLI(t, dir, env, "keys", "create", "--consumer", "alice"); r.code != 0 {
			t.Fatalf("keys create: %d %s", r.code, r.stderr)
		}
		exec := func(q string) {
			conn, err := pgx.Connect(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			if _, err := conn.Exec(t.Context(), q); err != nil {
				t.Fatal(err)
			}
		}
		checkNewerRefused(t, dir, env, exec, func(ring *vault.Ring) *sqlstore.DB {
			db, err := postgres.Open(t.Context(), url, sqlstore.Options{Ring: ring})
			if err != nil {
				t.Fatal(err)
			}
			return db
		})
	})
}

func checkNewerRefused(t *testing.T, dir string, env []string, exec func(string), open func(*vault.Ring) *sqlstore.DB) {
	t.Helper()
	ring, err := vault.ParseRing(testRingLine("k1"))
	if err != nil {
		t.Fatal(err)
	}
	db := open(ring)
	latest, err := db.LatestVersion()
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	newer := latest + 1
	exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (" + strconv.Itoa(newer) + ", '" + strconv.Itoa(newer) + "_from_the_future.sql', 0)")

	want := "database schema is version " + strconv.Itoa(newer) + ", newer than this mcpgate knows (" + strconv.Itoa(latest) + "): upgrade mcpgate"
	if r := runCLI(t, dir, env, "db", "migrate"); r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("db migrate on a newer schema: exit %d, stderr %q, want it refused with %q", r.code, r.stderr, want)
	}
	proj := serveProject(t)
	r := runCLIExit(t, dir, env, 30*time.Second, "serve", "--config", proj, "--listen", "127.0.0.1:0")
	if r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("serve on a newer schema: exit %d, stderr %q, want it refused with %q", r.code, r.stderr, want)
	}
	db = open(ring)
	defer db.Close()
	if v, err := db.SchemaVersion(t.Context()); err != nil || v != newer {
		t.Errorf("schema version after the refusals: %d %v, want %d (untouched)", v, err, newer)
	}
	if ks, err := db.ListAPIKeys(t.Context()); err != nil || len(ks) != 1 {
		t.Errorf("API keys after the refusals: %d %v, want the one made before", len(ks), err)
	}
}
