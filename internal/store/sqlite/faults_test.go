package sqlite_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/testutil/storetest"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// faultConn is a connection row whose sealed tokens fill a page or two.
func faultConn(i int) *store.Connection {
	return &store.Connection{ConnectionKey: store.ConnectionKey{UpstreamID: "u", Mode: store.ModeUser, Subject: fmt.Sprintf("apikey|user%05d", i)},
		Status: store.StatusActive, AccessToken: vault.Secret(strings.Repeat("a", 2000)), RefreshToken: vault.Secret(strings.Repeat("r", 2000)),
		Expiry: time.Now().Add(time.Hour)}
}

// needSQLite3 fails in CI and skips elsewhere when the sqlite3 CLI (installed by scripts/test) is
// missing.
func needSQLite3(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sqlite3 is not installed (scripts/test installs it)")
		}
		t.Skip("sqlite3 is not installed (scripts/test installs it)")
	}
}

// integrityOK runs SQLite's own consistency check on the file.
func integrityOK(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command("sqlite3", path, "PRAGMA integrity_check;").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("integrity check of %s: %v %s", path, err, out)
	}
}

// TestDiskFull: on a full disk (a 1 MiB tmpfs) writes fail with a clear error that says so, reads
// keep working, the file stays consistent, and writes succeed again once space returns.
func TestDiskFull(t *testing.T) {
	needSQLite3(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "small")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mounting a small tmpfs (CI runs as root): %v %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	ctx := context.Background()
	path := filepath.Join(mnt, sqlite.FileName)
	st, err := sqlite.Open(ctx, path, sqlstore.Options{Ring: storetest.Ring(t, "k1")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Fill the disk with a ballast file, then write rows until SQLite cannot grow.
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 600<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	var full error
	written := 0
	for i := range 2000 {
		if err := st.PutConnection(ctx, faultConn(i)); err != nil {
			full = err
			break
		}
		written++
	}
	if full == nil || !strings.Contains(strings.ToLower(full.Error()), "full") {
		t.Fatalf("after %d rows: want a disk-full error that says so, got %v", written, full)
	}
	if written == 0 {
		t.Fatal("the disk was full before the first row: the test proves nothing")
	}
	// Reads still work and see every committed row.
	list, err := st.ListConnections(ctx, store.ConnectionFilter{UpstreamID: "u"})
	if err != nil || len(list) != written {
		t.Fatalf("reads on a full disk: %d rows, %v (want %d)", len(list), err, written)
	}
	// Space returns: the next write succeeds without reopening the store.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if err := st.PutConnection(ctx, faultConn(written)); err != nil {
		t.Fatalf("write after space returned: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	integrityOK(t, path)
}

// TestLockedByAnotherProcess: another process holds an exclusive lock on the database (sqlite3
// in a transaction). A write waits for the busy timeout and fails with a clear "locked" error;
// reads in WAL mode go on; once the other process lets go, writes succeed and the file is intact.
func TestLockedByAnotherProcess(t *testing.T) {
	needSQLite3(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	st, err := sqlite.Open(ctx, path, sqlstore.Options{Ring: storetest.Ring(t, "k1")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.PutConnection(ctx, faultConn(0)); err != nil {
		t.Fatal(err)
	}
	// sqlite3 takes the write lock and holds it until its stdin closes.
	cmd := exec.Command("sqlite3", path)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	_, _ = io.WriteString(stdin, "BEGIN IMMEDIATE; INSERT INTO leases(name, holder, expires_at) VALUES ('lock-test', 'sqlite3', 0); SELECT 'locked';\n")
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("sqlite3 did not take the lock: %q %v", line, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	err = st.PutConnection(wctx, faultConn(1))
	waited := time.Since(start)
	if err == nil || !(strings.Contains(strings.ToLower(err.Error()), "locked") || strings.Contains(strings.ToLower(err.Error()), "busy")) {
		t.Fatalf("write while another process holds the lock: want a clear locked/busy error, got %v", err)
	}
	if waited < time.Duration(sqlite.BusyTimeoutMS)*time.Millisecond/2 {
		t.Errorf("the write gave up after %s, before the busy timeout", waited)
	}
	if _, err := st.GetConnection(ctx, faultConn(0).ConnectionKey); err != nil {
		t.Fatalf("a read while locked: %v", err)
	}
	_, _ = io.WriteString(stdin, "ROLLBACK;\n")
	_ = stdin.Close()
	_ = cmd.Wait()
	if err := st.PutConnection(ctx, faultConn(1)); err != nil {
		t.Fatalf("write after the lock was released: %v", err)
	}
	if _, err := st.GetConnection(ctx, faultConn(1).ConnectionKey); errors.Is(err, store.ErrNotFound) || err != nil {
		t.Fatalf("the row written after the lock: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	integrityOK(t, path)
}
