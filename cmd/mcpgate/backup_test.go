package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// TestDBBackupRestoreAndServe: `mcpgate db backup FILE` copies the data dir's database while it
// is open; the copy, put in place of mcpgate.db in a fresh data dir with the same key, serves: the
// API key made before the backup authenticates a call, and the stored connections are there.
func TestDBBackupRestoreAndServe(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, dir, nil, "keys", "create", "--consumer", "alice")
	if r.code != 0 {
		t.Fatalf("keys create: %d %s", r.code, r.stderr)
	}
	key := strings.TrimSpace(r.stdout)
	live := openTestStore(t, filepath.Join(dir, ".mcpgate"), "") // open while the backup runs, as serve would be
	seedConnections(t, live, 5)
	backup := filepath.Join(t.TempDir(), "backup.db")
	if r = runCLI(t, dir, nil, "db", "backup", backup); r.code != 0 || !strings.Contains(r.stdout, "backed up") {
		t.Fatalf("db backup: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r = runCLI(t, dir, nil, "db", "backup", backup); r.code == 0 || !strings.Contains(r.stderr, "exists") {
		t.Fatalf("backup over an existing file: %d %s", r.code, r.stderr)
	}

	// Restore: a new data dir holding the copy and the original's key file.
	restored := filepath.Join(t.TempDir(), ".mcpgate")
	if err := os.MkdirAll(restored, 0o700); err != nil {
		t.Fatal(err)
	}
	copyFile(t, backup, filepath.Join(restored, sqlite.FileName))
	copyFile(t, filepath.Join(dir, ".mcpgate", vault.DevKeyFile), filepath.Join(restored, vault.DevKeyFile))
	ring, _, err := vault.Load(vault.LoadOptions{DataDir: restored})
	if err != nil {
		t.Fatal(err)
	}
	st := gatewaytest.Store(t, filepath.Join(restored, sqlite.FileName), ring)
	if code := callWithAPIKey(t, apiKeyGateway(t, st, ring), key); code != http.StatusOK {
		t.Fatalf("the restored gateway refused the API key made before the backup: %d", code)
	}
	if list, err := st.ListConnections(t.Context(), store.ConnectionFilter{}); err != nil || len(list) != 5 {
		t.Fatalf("restored connections: %d %v", len(list), err)
	}
}

// apiKeyGateway is a gateway on st (sealed with ring) with one MCP route behind api-key-inbound, in
// front of an upstream that answers every call.
func apiKeyGateway(t *testing.T, st store.Store, ring *vault.Ring) *gatewaytest.Gateway {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	}))
	t.Cleanup(up.Close)
	proj := gatewaytest.Project(t, map[string]string{
		"config/policies.json": `{"policies":[{"name":"k","policyType":"api-key-inbound","handler":{"module":"$import(@zuplo/runtime)","export":"ApiKeyInboundPolicy","options":{}}}]}`,
		"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{"/mcp":{"post":{"operationId":"m","x-zuplo-route":{"corsPolicy":"none",
		"handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"` + up.URL + `/mcp"}},"policies":{"inbound":["k"]}}}}}}`,
	})
	return gatewaytest.New(t, gatewaytest.Options{Dir: proj, Store: st, Ring: ring})
}

// callWithAPIKey sends an MCP ping to gw's route with key and returns the status.
func callWithAPIKey(t *testing.T, gw *gatewaytest.Gateway, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
