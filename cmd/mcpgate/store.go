package main

// Opening mcpgate's state (store + key ring) for any command.
//
// Use from a command:
//
//	func init() {
//		cmd := &cobra.Command{…, RunE: func(cmd *cobra.Command, _ []string) error {
//			st, err := openState(cmd.Context(), cmd)
//			if err != nil {
//				return err
//			}
//			defer st.Close()
//			… st.Store (store.Store: take the narrow store interface you need), st.Ring (vault.Ring:
//			  st.Ring.DeriveKey("ticket") for signing keys every replica agrees on) …
//		}}
//		addStateFlags(cmd) // --data-dir and --database-url, unless the command defines them already
//		annotateEnv(cmd)
//	}
//
// openState reads:
//   - --data-dir / MCPGATE_DATA_DIR (default ./.mcpgate): the SQLite file and the development key;
//   - --database-url / MCPGATE_DATABASE_URL: empty or "sqlite:" for <data dir>/mcpgate.db,
//     "sqlite:<path>" for another file, "postgres://…" (or "postgresql://…") for PostgreSQL;
//   - MCPGATE_ENCRYPTION_KEYS: the key ring "kid:base64key[,kid:base64key…]", newest first. Without
//     it a development key is generated into the data dir and a warning is printed on every start;
//     with MCPGATE_ENV=production that is refused.
//
// It creates the data dir, opens the database and migrates it to the newest schema (replicas
// migrating together are serialised by the database), so every command works on a fresh machine
// before `serve` ever ran. Errors never carry the database password or any secret.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/postgres"
	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Defaults and environment variables of the state.
const (
	defaultDataDir = "./.mcpgate"
	envKeys        = "MCPGATE_ENCRYPTION_KEYS"
	envMode        = "MCPGATE_ENV"
	envDatabaseURL = "MCPGATE_DATABASE_URL"
	envDataDir     = "MCPGATE_DATA_DIR"
)

// state is an open store with its key ring.
type state struct {
	Store   store.Store
	Ring    *vault.Ring
	DataDir string
	// Backend is "sqlite" or "postgres"; Location names the database without credentials
	// (the SQLite file, or host/database).
	Backend, Location string
	// Warning is the development-key warning, also printed to stderr by openState ("" when a key
	// ring is configured).
	Warning string
}

// Close closes the store.
func (s *state) Close() error { return s.Store.Close() }

// addStateFlags adds --data-dir and --database-url to cmd unless it already has them (serve
// defines its own --data-dir). Call before annotateEnv.
func addStateFlags(cmd *cobra.Command) {
	if cmd.Flags().Lookup("data-dir") == nil {
		cmd.Flags().String("data-dir", defaultDataDir, "directory for the embedded database and generated keys")
	}
	if cmd.Flags().Lookup("database-url") == nil {
		cmd.Flags().String("database-url", "", `database: "sqlite:" (default, a file under --data-dir), "sqlite:<path>" or "postgres://…"`)
	}
}

// flagOrEnv returns the flag's value when cmd has it (bindEnv already applied MCPGATE_*), else the
// environment variable, else def.
func flagOrEnv(cmd *cobra.Command, flag, env, def string) string {
	if f := cmd.Flags().Lookup(flag); f != nil {
		if f.Changed || f.Value.String() != f.DefValue {
			return f.Value.String()
		}
	}
	if v, ok := os.LookupEnv(env); ok && v != "" {
		return v
	}
	if f := cmd.Flags().Lookup(flag); f != nil {
		return f.Value.String()
	}
	return def
}

// openState opens the store and key ring for cmd; see the top of this file.
func openState(ctx context.Context, cmd *cobra.Command) (*state, error) {
	dataDir := flagOrEnv(cmd, "data-dir", envDataDir, defaultDataDir)
	dbURL := flagOrEnv(cmd, "database-url", envDatabaseURL, "")
	ring, warning, err := vault.Load(vault.LoadOptions{
		Keys:       os.Getenv(envKeys),
		DataDir:    dataDir,
		Production: os.Getenv(envMode) == "production",
	})
	if err != nil {
		return nil, err
	}
	if warning != "" {
		fmt.Fprintln(cmd.ErrOrStderr(), "mcpgate: warning:", warning)
	}
	st, err := openStore(ctx, dataDir, dbURL, ring)
	if err != nil {
		return nil, err
	}
	st.Warning = warning
	if err := st.Store.Migrate(ctx); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("migrating %s database %s: %w", st.Backend, st.Location, err)
	}
	return st, nil
}

// openStore opens (without migrating) the database dbURL names.
func openStore(ctx context.Context, dataDir, dbURL string, ring *vault.Ring) (*state, error) {
	o := sqlstore.Options{Ring: ring}
	st := &state{Ring: ring, DataDir: dataDir}
	switch {
	case dbURL == "" || strings.HasPrefix(dbURL, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(dbURL, "sqlite:"), "//")
		if path == "" {
			path = filepath.Join(dataDir, sqlite.FileName)
		}
		s, err := sqlite.Open(ctx, path, o)
		if err != nil {
			return nil, err
		}
		st.Store, st.Backend, st.Location = s, "sqlite", path
	case strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://"):
		loc := "(unparseable URL)"
		if u, err := url.Parse(dbURL); err == nil {
			loc = u.Host + u.Path
		}
		s, err := postgres.Open(ctx, dbURL, o)
		if err != nil {
			return nil, err
		}
		st.Store, st.Backend, st.Location = s, "postgres", loc
	default:
		scheme, _, _ := strings.Cut(dbURL, ":")
		return nil, fmt.Errorf("%s: unsupported scheme %q: use sqlite:<path> or postgres://…", envDatabaseURL, scheme)
	}
	return st, nil
}

// notice prints an informational line to stderr (stdout is kept for machine-readable output).
func notice(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format+"\n", args...)
}

// notFoundHint turns a store.ErrNotFound into a message naming what was looked for.
func notFoundHint(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s not found", what)
	}
	return err
}
