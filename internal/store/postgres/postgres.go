// Package postgres is the store backend for several replicas sharing state: PostgreSQL through a
// pgx/v5 connection pool.
//
// The pool replaces broken connections by itself: after the server restarts, the next operations
// reconnect (pgxpool checks idle connections before handing them out, and database/sql retries a
// statement that failed on a dead connection before anything was sent), so mcpgate needs no restart.
package postgres

import (
	"context"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockID is the advisory lock that serialises migrations of replicas starting together.
const migrationLockID = 0x6d637067 // "mcpg"

// Open connects to the database at url (postgres://…). It does not migrate; call Migrate.
func Open(ctx context.Context, url string, o sqlstore.Options) (*sqlstore.DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may quote the URL, password included: do not wrap it.
		return nil, fmt.Errorf("opening postgres store: MCPGATE_DATABASE_URL is not a valid PostgreSQL URL")
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	cfg.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening postgres store: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	sub, _ := fs.Sub(migrations, "migrations")
	s, err := sqlstore.New(db, db, sqlstore.Dialect{
		Name:          "postgres",
		Rebind:        rebind,
		Migrations:    sub,
		MigrationLock: fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrationLockID),
		Retryable:     retryable,
	}, o, func() error { pool.Close(); return nil })
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// retryable reports errors that prove the statement was not executed: pgx's "nothing was sent" errors,
// and the server's shutdown notices (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03
// cannot_connect_now) that a pooled connection reads on first use after a restart.
func retryable(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || pgconn.SafeToRetry(err) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03":
			return true
		}
	}
	return false
}

// rebind turns ? placeholders into $1, $2, …. The shared queries contain no ? inside literals.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}
