package signin_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/postgres"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestGrantsAcrossReplicasOnPostgreSQL: two gateway instances on one PostgreSQL database. A grant
// made on one works on the other; two concurrent refreshes with one refresh token, one on each
// instance, both succeed with the same new token; a replay after the grace window revokes the
// grant, and the other instance refuses its access tokens within the revocation check.
func TestGrantsAcrossReplicasOnPostgreSQL(t *testing.T) {
	e := newEnv(t) // for its project and clock; the replicas below share a PostgreSQL store
	dsn := pgtest.NewDatabase(t)
	ring := gatewaytest.Ring(t)
	open := func() store.Store {
		st, err := postgres.Open(context.Background(), dsn, sqlstore.Options{Ring: ring})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		if err := st.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return st
	}
	const public = "http://mcp.example.test" // both replicas behind one name
	replica := func() *env {
		return &env{t: t, clock: e.clock, public: public, gw: gatewaytest.New(t, gatewaytest.Options{Config: e.gw.Project, Store: open(), Ring: ring,
			Now: e.clock.now, PublicURL: public})}
	}
	a, b := replica(), replica()

	c := a.register(t, "http://127.0.0.1:33418/callback")
	code := a.signIn(t, newBrowser(t).via("mcp.example.test", a.gw.HTTP.Listener.Addr().String()), c, "/mcp/other", "")
	// The code was issued by A; B redeems it (the client's token request may land anywhere).
	tok := b.exchange(t, c, code, "/mcp/other")
	if resp, body := a.mcp(t, "/mcp/other", str(tok["access_token"]), `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("token issued by B refused by A: %d %s", resp.StatusCode, body)
	}

	rt := str(tok["refresh_token"])
	var wg sync.WaitGroup
	results := make([]map[string]any, 2)
	codes := make([]int, 2)
	for i, inst := range []*env{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], results[i] = inst.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {c.id}})
		}()
	}
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 || results[0]["refresh_token"] != results[1]["refresh_token"] {
		t.Fatalf("concurrent refreshes on two instances: %d %v / %d %v", codes[0], results[0], codes[1], results[1])
	}
	at := str(results[1]["access_token"])
	if resp, _ := a.mcp(t, "/mcp/other", at, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("refreshed token on A: %d", resp.StatusCode)
	}

	e.clock.advance(time.Minute)
	if st, out := b.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {c.id}}); st != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("replay on B: %d %v", st, out)
	}
	// A cached the grant as usable a minute ago; its next check reads the revocation.
	if resp, _ := a.mcp(t, "/mcp/other", at, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("A still serves a revoked grant: %d", resp.StatusCode)
	}
}
