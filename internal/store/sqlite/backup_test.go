package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/testutil/storetest"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// TestBackupWhileWriting: a backup taken while another goroutine keeps writing is a complete,
// consistent database: it opens, migrates as a no-op, holds every row committed before the backup
// and its sealed secrets open with the same ring; the live store kept accepting writes meanwhile.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	ring := storetest.Ring(t, "k1")
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, sqlite.FileName), sqlstore.Options{Ring: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	put := func(i int) error {
		return st.PutConnection(ctx, &store.Connection{ConnectionKey: store.ConnectionKey{UpstreamID: "u", Mode: store.ModeUser, Subject: fmt.Sprintf("apikey|user%d", i)},
			Status: store.StatusActive, AccessToken: vault.Secret(fmt.Sprintf("at-%d", i)), RefreshToken: "rt", Expiry: time.Now().Add(time.Hour)})
	}
	for i := range 200 {
		if err := put(i); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var written atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 200; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := put(i); err != nil {
				t.Errorf("write during backup: %v", err)
				return
			}
			written.Add(1)
		}
	}()
	backup := filepath.Join(dir, "backup.db")
	if err := sqlite.Backup(ctx, st, backup); err != nil {
		t.Fatal(err)
	}
	before := written.Load()
	for written.Load() < before+10 { // serving goes on after the copy
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if err := sqlite.Backup(ctx, st, backup); err == nil {
		t.Fatal("a second backup overwrote an existing file")
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", err, fi)
	}

	cp, err := sqlite.Open(ctx, backup, sqlstore.Options{Ring: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if err := cp.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := cp.ListConnections(ctx, store.ConnectionFilter{UpstreamID: "u"})
	if err != nil || len(list) < 200 {
		t.Fatalf("the copy holds %d connections (%v), want at least the 200 written before", len(list), err)
	}
	c, err := cp.GetConnection(ctx, store.ConnectionKey{UpstreamID: "u", Mode: store.ModeUser, Subject: "apikey|user7"})
	if err != nil || c.AccessToken.Reveal() != "at-7" {
		t.Fatalf("a secret in the copy: %v %v", err, c)
	}
}
