package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Database round trips are counted on PostgreSQL: the auth-path targets run on a throwaway cluster
// the harness starts (like internal/testutil/pgtest: loopback TCP, fsync off) with
// pg_stat_statements loaded, each target on its own database. The statements a database executed
// during a measured window (sum of pg_stat_statements.calls, BEGIN and COMMIT included) divided by
// the responses counted is "DB round trips per request": with pgx every statement is one round
// trip (a prepared statement's first use costs one more, not counted).

// pgCluster is a running PostgreSQL cluster.
type pgCluster struct {
	bin    string // initdb, pg_ctl
	dir    string
	port   int
	asUser string // "postgres" when the harness runs as root
	stats  *pgx.Conn
}

// pgBinDir finds initdb: /usr/lib/postgresql/<newest>/bin, or PATH.
func pgBinDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", errors.New("PostgreSQL is not installed (initdb not found under /usr/lib/postgresql/*/bin or in PATH)")
	}
	ver := func(p string) int { v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p)))); return v }
	slices.SortFunc(matches, func(a, b string) int { return ver(b) - ver(a) })
	return filepath.Dir(matches[0]), nil
}

// startPG starts a cluster in a new temporary directory.
func startPG(ctx context.Context) (*pgCluster, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mcpgate-bench-pg-")
	if err != nil {
		return nil, err
	}
	c := &pgCluster{bin: bin, dir: dir}
	if os.Geteuid() == 0 { // PostgreSQL refuses to run as root
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
	if out, err := c.run(ctx, "initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	_, p, _ := strings.Cut(addr, ":")
	c.port, _ = strconv.Atoi(p)
	opts := strings.Join([]string{
		"-p", strconv.Itoa(c.port), "-k", c.dir, "-c", "listen_addresses=" + loopback,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
		"-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track=all",
	}, " ")
	if out, err := c.run(ctx, "pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		c.remove()
		return nil, fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, log)
	}
	if c.stats, err = pgx.Connect(ctx, c.url("postgres")); err != nil {
		c.stop()
		return nil, err
	}
	if _, err := c.stats.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		c.stop()
		return nil, fmt.Errorf("pg_stat_statements: %w", err)
	}
	return c, nil
}

func (c *pgCluster) data() string { return filepath.Join(c.dir, "data") }

func (c *pgCluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable", loopback, c.port, db)
}

func (c *pgCluster) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

// createDB creates database name and returns its URL.
func (c *pgCluster) createDB(ctx context.Context, name string) (string, error) {
	if _, err := c.stats.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	return c.url(name), nil
}

// statements returns how many statements database db has executed so far.
func (c *pgCluster) statements(ctx context.Context, db string) (int64, error) {
	var n int64
	err := c.stats.QueryRow(ctx, `SELECT coalesce(sum(s.calls), 0)::bigint FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1`, db).Scan(&n)
	return n, err
}

// stop stops the cluster and removes its directory.
func (c *pgCluster) stop() {
	if c.stats != nil {
		_ = c.stats.Close(context.Background())
	}
	_, _ = c.run(context.Background(), "pg_ctl", "-D", c.data(), "-m", "fast", "-w", "stop")
	c.remove()
}

func (c *pgCluster) remove() { _ = os.RemoveAll(c.dir) }

// statement is one normalised statement of pg_stat_statements and its calls.
type statement struct {
	query string
	calls int64
}

// statementCalls returns the calls so far of every statement database db has run, by queryid.
func (c *pgCluster) statementCalls(ctx context.Context, db string) (map[int64]statement, error) {
	rows, err := c.stats.Query(ctx, `SELECT coalesce(s.queryid, 0), s.query, s.calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1`, db)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]statement{}
	for rows.Next() {
		var id int64
		var st statement
		if err := rows.Scan(&id, &st.query, &st.calls); err != nil {
			return nil, err
		}
		prev := out[id]
		out[id] = statement{query: st.query, calls: prev.calls + st.calls}
	}
	return out, rows.Err()
}

// topStatements returns the statements with the most calls between two snapshots, most first.
func topStatements(before, after map[int64]statement, n int) []statement {
	var out []statement
	for id, st := range after {
		if d := st.calls - before[id].calls; d > 0 {
			out = append(out, statement{query: st.query, calls: d})
		}
	}
	slices.SortFunc(out, func(a, b statement) int {
		if a.calls != b.calls {
			return int(b.calls - a.calls)
		}
		return strings.Compare(a.query, b.query)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// backendCPU returns the CPU time so far of every server process connected to database db (the
// gateway's pool), by pid.
func (c *pgCluster) backendCPU(ctx context.Context, db string) (map[int]time.Duration, error) {
	rows, err := c.stats.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = $1`, db)
	if err != nil {
		return nil, err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	out := map[int]time.Duration{}
	for _, pid := range pids {
		if d, err := cpuTime(strconv.Itoa(int(pid))); err == nil { // a backend that just ended is skipped
			out[int(pid)] = d
		}
	}
	return out, nil
}

// cpuDelta is the CPU the backends of after used since before (a backend new in after counts
// whole: it started within the window).
func cpuDelta(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range after {
		d += t - before[pid]
	}
	return d
}
