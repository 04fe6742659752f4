package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// TestHelperCLIProcess is not a test: runCLI re-executes the test binary with this test selected
// and MCPGATE_TEST_RUN_CLI set, and it then runs main() with the given arguments, so each CLI call
// is a fresh process exactly as a user would run it (exit codes, stdout/stderr split, flags).
func TestHelperCLIProcess(t *testing.T) {
	if os.Getenv("MCPGATE_TEST_RUN_CLI") != "1" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv("MCPGATE_TEST_CLI_ARGS")), &args); err != nil {
		t.Fatal(err)
	}
	os.Args = append([]string{"mcpgate"}, args...)
	main()
	os.Exit(0)
}

type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs mcpgate with args in dir, with the environment reduced to PATH, HOME and env.
func runCLI(t *testing.T, dir string, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCLIProcess$")
	cmd.Dir = dir
	argv, _ := json.Marshal(args)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "MCPGATE_TEST_RUN_CLI=1",
		"MCPGATE_TEST_CLI_ARGS=" + string(argv)}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return cliResult{out.String(), errb.String(), code}
}

var apiKeyShape = regexp.MustCompile(`^[A-Za-z0-9_-]{32,}\n$`)

func TestKeysCreateOnFreshDataDir(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, dir, nil, "keys", "create", "--consumer", "alice", "--metadata", `{"team":"x"}`, "--expires", "30d")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !apiKeyShape.MatchString(r.stdout) {
		t.Fatalf("stdout %q: want only the key on one line", r.stdout)
	}
	key := strings.TrimSpace(r.stdout)
	if !strings.Contains(r.stderr, "MCPGATE_ENCRYPTION_KEYS is not set") || !strings.Contains(r.stderr, `consumer "alice"`) {
		t.Errorf("stderr %q: want the development-key warning and a notice", r.stderr)
	}
	for _, f := range []string{sqlite.FileName, vault.DevKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, ".mcpgate", f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, fi.Mode())
		}
	}

	// The key is stored hashed: the store finds it by hash, the list never shows it.
	r = runCLI(t, dir, nil, "keys", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stdout, `{"team":"x"}`) || strings.Contains(r.stdout, key) {
		t.Fatalf("keys list: exit %d\n%s", r.code, r.stdout)
	}
	id := strings.Fields(strings.Split(r.stdout, "\n")[1])[0]
	s := openTestStore(t, filepath.Join(dir, ".mcpgate"), "")
	k, err := s.LookupAPIKey(t.Context(), store.HashAPIKey(key))
	if err != nil || k.ID != id || k.Consumer != "alice" || k.ExpiresAt.IsZero() {
		t.Fatalf("lookup: %+v, %v", k, err)
	}
	if db, _ := os.ReadFile(filepath.Join(dir, ".mcpgate", sqlite.FileName)); bytes.Contains(db, []byte(key)) {
		t.Fatal("the API key is stored in plaintext")
	}

	r = runCLI(t, dir, nil, "keys", "revoke", id)
	if r.code != 0 {
		t.Fatalf("revoke: exit %d: %s", r.code, r.stderr)
	}
	if k, _ := s.LookupAPIKey(t.Context(), store.HashAPIKey(key)); k.RevokedAt.IsZero() {
		t.Fatal("not revoked")
	}
	if r = runCLI(t, dir, nil, "keys", "revoke", "key_missing"); r.code != 1 || !strings.Contains(r.stderr, "key_missing not found") {
		t.Fatalf("revoke missing: exit %d: %s", r.code, r.stderr)
	}
}

func TestProductionWithoutKeyRefuses(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, dir, []string{"MCPGATE_ENV=production"}, "keys", "create", "--consumer", "alice")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "mcpgate keys generate-encryption-key") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, ".mcpgate", vault.DevKeyFile)); err == nil {
		t.Fatal("a development key was generated in production")
	}
}

func TestGenerateEncryptionKey(t *testing.T) {
	r := runCLI(t, t.TempDir(), nil, "keys", "generate-encryption-key", "--id", "prod1")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	ring, err := vault.ParseRing(strings.TrimSpace(r.stdout))
	if err != nil || ring.NewestKeyID() != "prod1" {
		t.Fatalf("output %q does not parse as a key ring: %v", r.stdout, err)
	}
}

func TestDatabaseURLErrorsHideCredentials(t *testing.T) {
	r := runCLI(t, t.TempDir(), []string{"MCPGATE_DATABASE_URL=mysql://admin:hunter2@db/x"}, "db", "migrate")
	if r.code != 1 || !strings.Contains(r.stderr, `unsupported scheme "mysql"`) || strings.Contains(r.stderr, "hunter2") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}

// testRingLine is a ring entry whose key is derived from id, so the same id is the same key.
func testRingLine(id string) string {
	k := sha256.Sum256([]byte("cli test key " + id))
	return id + ":" + base64.StdEncoding.EncodeToString(k[:])
}

// openTestStore opens the SQLite store of dataDir with the given key ring ("" = the dev key file).
func openTestStore(t *testing.T, dataDir, keys string) store.Store {
	t.Helper()
	ring, _, err := vault.Load(vault.LoadOptions{Keys: keys, DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	return gatewaytest.Store(t, filepath.Join(dataDir, sqlite.FileName), ring)
}

func seedConnections(t *testing.T, s store.Store, n int) {
	t.Helper()
	for i := range n {
		c := &store.Connection{
			ConnectionKey: store.ConnectionKey{UpstreamID: "linear", Mode: store.ModeUser, Subject: fmt.Sprintf("apikey|user%02d", i)},
			AccessToken:   vault.Secret(fmt.Sprintf("SECRET-ACCESS-%02d", i)),
			RefreshToken:  vault.Secret(fmt.Sprintf("SECRET-REFRESH-%02d", i)),
			Scopes:        []string{"read"},
			Issuer:        "https://as.example",
		}
		if err := s.PutConnection(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRekeyRotatesEverySecret(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, ".mcpgate")
	old := testRingLine("old")
	seedConnections(t, openTestStore(t, data, old), 25)

	both := testRingLine("new") + "," + old
	r := runCLI(t, dir, []string{"MCPGATE_ENCRYPTION_KEYS=" + both}, "rekey", "--batch-size", "10")
	if r.code != 0 {
		t.Fatalf("rekey: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "re-sealed 10") || !strings.Contains(r.stderr, "new=50") || strings.Contains(r.stderr, "old=") {
		t.Errorf("progress/summary on stderr:\n%s", r.stderr)
	}
	// The proof the issue asks for: a query finds zero values under the old key id.
	s := openTestStore(t, data, testRingLine("new"))
	db := s.(*sqlstore.DB).Writer()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM connections WHERE access_token LIKE 'mg1.old.%' OR refresh_token LIKE 'mg1.old.%'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows still under the old key (%v)", n, err)
	}
	for i := range 25 {
		c, err := s.GetConnection(t.Context(), store.ConnectionKey{UpstreamID: "linear", Mode: store.ModeUser, Subject: fmt.Sprintf("apikey|user%02d", i)})
		if err != nil || c.AccessToken.Reveal() != fmt.Sprintf("SECRET-ACCESS-%02d", i) {
			t.Fatalf("connection %d after rekey: %v", i, err)
		}
	}
}

func TestRekeyReportsLostKey(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, ".mcpgate")
	seedConnections(t, openTestStore(t, data, testRingLine("lost")), 2)
	r := runCLI(t, dir, []string{"MCPGATE_ENCRYPTION_KEYS=" + testRingLine("new")}, "rekey")
	if r.code != 1 || !strings.Contains(r.stderr, "4 values are sealed with a key that is not in MCPGATE_ENCRYPTION_KEYS") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}

func TestConnectionsNeverPrintSecrets(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, ".mcpgate")
	keys := testRingLine("k1")
	seedConnections(t, openTestStore(t, data, keys), 3)
	env := []string{"MCPGATE_ENCRYPTION_KEYS=" + keys}
	for _, args := range [][]string{
		{"connections", "list"},
		{"connections", "list", "--output", "json"},
		{"connections", "list", "--subject", "apikey|user01"},
		{"connections", "show", "linear", "apikey|user01"},
	} {
		r := runCLI(t, dir, env, args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d: %s", args, r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, "apikey|user01") {
			t.Errorf("%v: connection missing from\n%s", args, r.stdout)
		}
		if strings.Contains(r.stdout+r.stderr, "SECRET-") || strings.Contains(r.stdout+r.stderr, "mg1.") {
			t.Errorf("%v printed a token or ciphertext:\n%s", args, r.stdout)
		}
	}
	if r := runCLI(t, dir, env, "connections", "list", "--subject", "apikey|user01"); strings.Contains(r.stdout, "user02") {
		t.Error("--subject filter ignored")
	}
}

func TestConnectionsRevokeWorksWithLostKey(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, ".mcpgate")
	seedConnections(t, openTestStore(t, data, testRingLine("lost")), 2)
	keys := testRingLine("other")
	r := runCLI(t, dir, []string{"MCPGATE_ENCRYPTION_KEYS=" + keys}, "connections", "revoke", "linear", "apikey|user00")
	if r.code != 0 {
		t.Fatalf("revoke: exit %d: %s", r.code, r.stderr)
	}
	s := openTestStore(t, data, keys)
	c, err := s.GetConnection(t.Context(), store.ConnectionKey{UpstreamID: "linear", Mode: store.ModeUser, Subject: "apikey|user00"})
	if err != nil || c.Status != store.StatusRevoked || c.HasAccessToken || c.HasRefreshToken {
		t.Fatalf("after revoke: %+v, %v", c, err)
	}
	ev, err := s.QueryAudit(t.Context(), store.AuditQuery{Subject: "apikey|user00", Event: "connection.revoked"})
	if err != nil || len(ev) != 1 || ev[0].Actor != "cli" {
		t.Fatalf("audit: %+v, %v", ev, err)
	}
	if r := runCLI(t, dir, nil, "connections", "revoke", "linear", "apikey|nobody"); r.code != 1 {
		t.Fatalf("revoking a missing connection: exit %d", r.code)
	}
}
