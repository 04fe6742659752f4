// Package pgtest runs a throwaway PostgreSQL cluster for tests: initdb and pg_ctl from
// /usr/lib/postgresql/*/bin, a private data dir under a temp dir, a free loopback port, fsync off.
// One cluster serves a whole test binary; each test gets its own database.
//
// Use it from TestMain so the cluster is stopped when the binary ends:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestX(t *testing.T) { url := pgtest.NewDatabase(t) … }
//
// Without PostgreSQL installed, tests that ask for a database are skipped with a message saying what
// to install, except under CI=true where that is a failure: CI must not pass by skipping.
// As root, the server runs as the postgres user (runuser), since PostgreSQL refuses to run as root.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Packages names the Debian packages the tests need.
const Packages = "postgresql (initdb/pg_ctl under /usr/lib/postgresql/*/bin) and postgresql-client (pg_dump)"

var (
	mu      sync.Mutex
	started *cluster
	failure error
	dbSeq   atomic.Int64
)

type cluster struct {
	bin    string // dir holding initdb, pg_ctl, pg_dump
	dir    string // temp dir: data/, log, socket
	port   int
	asUser string // "postgres" when running as root, else ""
}

// Main runs the tests and stops the cluster, if one was started. Return its result from TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if started != nil {
		started.stop()
		_ = os.RemoveAll(started.dir)
		started = nil
	}
	return code
}

// Available reports whether PostgreSQL binaries are installed.
func Available() bool {
	_, err := binDir()
	return err == nil
}

// NewDatabase returns the URL of a new, empty database on the shared cluster, starting it on first
// use. It skips the test when PostgreSQL is missing, unless CI=true, where it fails.
func NewDatabase(t testing.TB) string {
	t.Helper()
	c := get(t)
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.url("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connecting to cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: creating database: %v", err)
	}
	return c.url(name)
}

// Restart stops the shared cluster (fast shutdown, which drops every connection) and starts it again
// on the same port with the same data.
func Restart(t testing.TB) {
	t.Helper()
	c := get(t)
	c.stop()
	if err := c.start(); err != nil {
		t.Fatalf("pgtest: restarting: %v", err)
	}
}

// Stop stops the shared cluster without starting it again (tests of an unreachable database); call
// Start to bring it back.
func Stop(t testing.TB) { t.Helper(); get(t).stop() }

// Start starts the shared cluster after Stop.
func Start(t testing.TB) {
	t.Helper()
	if err := get(t).start(); err != nil {
		t.Fatalf("pgtest: starting: %v", err)
	}
}

// Dump returns the pg_dump (plain SQL, data included) of the database at url.
func Dump(t testing.TB, url string) []byte {
	t.Helper()
	c := get(t)
	out, err := exec.Command(filepath.Join(c.bin, "pg_dump"), "--dbname", url).Output()
	if err != nil {
		t.Fatalf("pgtest: pg_dump: %v", err)
	}
	return out
}

func get(t testing.TB) *cluster {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if started == nil && failure == nil {
		started, failure = startCluster()
	}
	if failure != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: PostgreSQL is required in CI: %v", failure)
		}
		t.Skipf("pgtest: skipping, no PostgreSQL: %v (install %s)", failure, Packages)
	}
	return started
}

// BinEnv names a directory holding initdb, pg_ctl and pg_dump, for systems that keep them elsewhere
// than /usr/lib/postgresql/*/bin.
const BinEnv = "MCPGATE_PGTEST_BIN"

func binDir() (string, error) {
	if dir := os.Getenv(BinEnv); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
			return "", fmt.Errorf("%s=%s: no initdb there", BinEnv, dir)
		}
		return dir, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", fmt.Errorf("initdb not found under /usr/lib/postgresql/*/bin or in PATH")
	}
	// Newest major version first.
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	return filepath.Dir(matches[0]), nil
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

func startCluster() (*cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	reapOrphans(bin)
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		c.asUser = "postgres"
	}
	if out, err := c.run("initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	if err := c.start(); err != nil {
		return nil, err
	}
	return c, nil
}

// ownerFile holds the pid of the test binary that started a cluster.
const ownerFile = "owner.pid"

// reapOrphans stops and removes clusters left behind by test binaries that died without running
// Main's cleanup (killed by a timeout, say), so they do not pile up on a developer machine.
func reapOrphans(bin string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		c := &cluster{bin: bin, dir: dir}
		if os.Geteuid() == 0 {
			c.asUser = "postgres"
		}
		c.stop()
		_ = os.RemoveAll(dir)
	}
}

func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	return p.Signal(syscall.Signal(0)) == nil
}

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *cluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

func (c *cluster) run(tool string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

func (c *cluster) start() error {
	opts := strings.Join([]string{
		"-p", strconv.Itoa(c.port), "-k", c.dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
	}, " ")
	out, err := c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-o", opts, "-w", "-t", "60", "start")
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		return fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, log)
	}
	return nil
}

func (c *cluster) stop() {
	_, _ = c.run("pg_ctl", "-D", c.data(), "-m", "fast", "-w", "stop")
}
