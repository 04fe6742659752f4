package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// migration is one embedded NNNN_name.sql file.
type migration struct {
	version int
	name    string
	sql     string
}

func (db *DB) migrations() ([]migration, error) {
	entries, err := fs.ReadDir(db.d.Migrations, ".")
	if err != nil {
		return nil, fmt.Errorf("reading migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and _", e.Name())
		}
		b, err := fs.ReadFile(db.d.Migrations, e.Name())
		if err != nil {
			return nil, fmt.Errorf("reading migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// LatestVersion is the newest schema version this binary knows.
func (db *DB) LatestVersion() (int, error) {
	ms, err := db.migrations()
	if err != nil || len(ms) == 0 {
		return 0, err
	}
	return ms[len(ms)-1].version, nil
}

// SchemaVersion is the version the database is at (0: not migrated).
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := db.write.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	if err != nil {
		// Before the first migration the table does not exist.
		if _, terr := db.write.ExecContext(ctx, `SELECT 1 FROM schema_migrations WHERE 1 = 0`); terr != nil {
			return 0, nil
		}
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	return int(v.Int64), nil
}

// Migrate implements store.Store: it applies every migration newer than the database, each in its
// own transaction, and refuses a database newer than this binary.
func (db *DB) Migrate(ctx context.Context) error {
	ms, err := db.migrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := db.apply(ctx, m); err != nil {
			return err
		}
	}
	cur, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if latest := ms[len(ms)-1].version; cur > latest {
		return fmt.Errorf("database schema is version %d, newer than this mcpgate knows (%d): upgrade mcpgate", cur, latest)
	}
	return nil
}

func (db *DB) apply(ctx context.Context, m migration) (err error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrating %s to %d: %w", db.d.Name, m.version, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if db.d.MigrationLock != "" {
		if _, err := tx.ExecContext(ctx, db.d.MigrationLock); err != nil {
			return fmt.Errorf("migrating %s: taking migration lock: %w", db.d.Name, err)
		}
	}
	// Created under the lock: concurrent CREATE TABLE IF NOT EXISTS can still collide in PostgreSQL.
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrating %s: creating schema_migrations: %w", db.d.Name, err)
	}
	var one int
	err = tx.QueryRowContext(ctx, db.q(`SELECT 1 FROM schema_migrations WHERE version = ?`), m.version).Scan(&one)
	if err == nil {
		return tx.Rollback()
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("migrating %s to %d: %w", db.d.Name, m.version, err)
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migrating %s: applying %s: %w", db.d.Name, m.name, err)
	}
	if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.version, m.name, db.nowMS()); err != nil {
		return fmt.Errorf("migrating %s to %d: %w", db.d.Name, m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrating %s to %d: %w", db.d.Name, m.version, err)
	}
	return nil
}
