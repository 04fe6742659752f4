package sqlite_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/testutil/storetest"
)

func TestMain(m *testing.M) {
	storetest.RunHelperIfRequested(open)
	os.Exit(m.Run())
}

func open(ctx context.Context, path string, o sqlstore.Options) (store.Store, error) {
	s, err := sqlite.Open(ctx, path, o)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

var backend = storetest.Backend{
	NewDSN: func(t testing.TB) string { return filepath.Join(t.TempDir(), "data", sqlite.FileName) },
	Open:   open,
	// Dump is the raw bytes of the database file and its WAL: what a stolen disk would show.
	Dump: func(t testing.TB, path string) []byte {
		var all []byte
		for _, p := range []string{path, path + "-wal"} {
			b, err := os.ReadFile(p)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		return all
	},
}

func TestConformance(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { storetest.Run(t, backend) })
}

func BenchmarkStore(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { storetest.Bench(b, backend) })
}

func TestFileIsPrivateAndWAL(t *testing.T) {
	path := backend.NewDSN(t)
	s, err := sqlite.Open(t.Context(), path, sqlstore.Options{Ring: storetest.Ring(t, "k1")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v, %v; want 0600", fi.Mode(), err)
	}
	var mode string
	if err := s.Writer().QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
	var fk int
	if err := s.Writer().QueryRowContext(t.Context(), "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v", fk, err)
	}
	if b, _ := os.ReadFile(path); !bytes.HasPrefix(b, []byte("SQLite format 3")) {
		t.Fatal("not a SQLite file")
	}
}
