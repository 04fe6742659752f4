package postgres_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/postgres"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/testutil/pgtest"
	"github.com/mcpgate/mcpgate/internal/testutil/storetest"
	"github.com/mcpgate/mcpgate/internal/vault"
)

func TestMain(m *testing.M) {
	storetest.RunHelperIfRequested(open)
	os.Exit(pgtest.Main(m))
}

func open(ctx context.Context, url string, o sqlstore.Options) (store.Store, error) {
	s, err := postgres.Open(ctx, url, o)
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
	NewDSN: func(t testing.TB) string { return pgtest.NewDatabase(t) },
	Open:   open,
	Dump:   pgtest.Dump,
}

func TestConformance(t *testing.T) {
	t.Run("postgres", func(t *testing.T) { storetest.Run(t, backend) })
}

func BenchmarkStore(b *testing.B) {
	b.Run("postgres", func(b *testing.B) { storetest.Bench(b, backend) })
}

// TestServerRestartIsSurvived restarts the PostgreSQL cluster under an open store: the pool's
// connections all die, and the next operations must succeed on new ones without reopening the store.
func TestServerRestartIsSurvived(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s, err := open(t.Context(), url, sqlstore.Options{Ring: storetest.Ring(t, "k1")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &store.Connection{ConnectionKey: store.ConnectionKey{UpstreamID: "linear", Mode: store.ModeUser, Subject: "u"}, AccessToken: vault.Secret("t1")}
	if err := s.PutConnection(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	// Warm several pooled connections so the restart leaves dead ones behind.
	for range 8 {
		if _, err := s.GetConnection(t.Context(), c.ConnectionKey); err != nil {
			t.Fatal(err)
		}
	}
	pgtest.Restart(t)

	// The first operations after the restart may land on a dead connection; within a short window
	// every kind of operation must succeed again.
	deadline := time.Now().Add(10 * time.Second)
	var failures int
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		_, err := s.GetConnection(ctx, c.ConnectionKey)
		cancel()
		if err == nil {
			break
		}
		failures++
		t.Logf("after restart: %v", err)
		if time.Now().After(deadline) {
			t.Fatalf("store unusable 10s after a PostgreSQL restart: %v", err)
		}
	}
	t.Logf("operations failed after restart before recovery: %d", failures)
	if _, err := store.Update(t.Context(), s, c.ConnectionKey, func(c *store.Connection) error { c.AccessToken = "t2"; return nil }); err != nil {
		t.Fatalf("update after restart: %v", err)
	}
	if err := s.TryAcquireLease(t.Context(), "l", "h", time.Minute); err != nil {
		t.Fatalf("lease after restart: %v", err)
	}
	got, err := s.GetConnection(t.Context(), c.ConnectionKey)
	if err != nil || got.AccessToken.Reveal() != "t2" {
		t.Fatalf("read after restart: %v", err)
	}
}
