package connect_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/postgres"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/testutil/mcpupstream"
	"github.com/mcpgate/mcpgate/internal/testutil/pgtest"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// A cluster is several gateway instances (each a whole gatewaytest.Gateway: its own gateway
// server, host, connection manager and store handle) sharing one database, in front of one
// Hydra-protected upstream: what several replicas behind a load balancer look like, in one test
// process.
type cluster struct {
	t        *testing.T
	hydra    *hydra.Server
	upstream *mcpupstream.Server
	ring     *vault.Ring
	ringKey  string // the ring's key, for helper processes
	dbPath   string // the SQLite file, when the cluster uses SQLite
	open     func(t *testing.T) store.Store
	opts     clusterOptions
	project  string
	gws      []*gatewaytest.Gateway
	logs     *gatewaytest.Buffer
	client   *http.Client
}

type clusterOptions struct {
	instances int
	postgres  bool
	hydra     hydra.Options
	// httpTimeout, when set, bounds the managers' outbound OAuth requests (hang tests).
	httpTimeout time.Duration
	// extraScope is demanded by the upstream's admin_report tool only (step-up).
	extraScope string
	// shared makes the upstream shared-oauth: one grant, connected by an administrator, that
	// every user's calls use.
	shared bool
}

// sqliteOpener opens one SQLite file per call site: each instance gets its own handle on it.
func sqliteOpener(path string, ring *vault.Ring) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store { return gatewaytest.Store(t, path, ring) }
}

func postgresOpener(t *testing.T, ring *vault.Ring) func(t *testing.T) store.Store {
	url := pgtest.NewDatabase(t)
	return func(t *testing.T) store.Store {
		st, err := postgres.Open(context.Background(), url, sqlstore.Options{Ring: ring})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		if err := st.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return st
	}
}

func newCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	if o.instances == 0 {
		o.instances = 3
	}
	if len(o.hydra.Scopes) == 0 {
		o.hydra.Scopes = []string{"mcp"}
	}
	h := hydra.Start(t, o.hydra)
	up := mcpupstream.Start(t, mcpupstream.Options{Issuer: h.PublicURL, IntrospectURL: h.AdminURL + "/admin/oauth2/introspect", ExtraScope: o.extraScope})
	// The ring is built from a key of our own (not gatewaytest.Ring): the lease-holder helper
	// process opens the same store and needs the key itself.
	key, err := vault.GenerateKey("k1", func() string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ring, err := vault.ParseRing(key)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, hydra: h, upstream: up, ring: ring, ringKey: key, opts: o, project: writeProjectMode(t, up.URL, authModeOf(o)), logs: &gatewaytest.Buffer{},
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1000, MaxIdleConns: 3000}, Timeout: 60 * time.Second}}
	t.Cleanup(c.client.CloseIdleConnections)
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(c.logs.String(), "\n") {
				if !strings.Contains(l, "msg=request ") && l != "" {
					t.Log(l)
				}
			}
		}
	})
	if o.postgres {
		c.open = postgresOpener(t, ring)
	} else {
		c.dbPath = filepath.Join(t.TempDir(), "db.sqlite")
		c.open = sqliteOpener(c.dbPath, ring)
	}
	for range o.instances {
		c.add()
	}
	return c
}

// add starts one more gateway instance, with its own store handle, on the shared database.
func (c *cluster) add() *gatewaytest.Gateway {
	log := slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("instance", len(c.gws))
	g := gatewaytest.New(c.t, gatewaytest.Options{Dir: c.project, Store: c.open(c.t), Ring: c.ring, Metrics: true, Logger: log,
		BeforeStart: func(g *gatewaytest.Gateway) {
			if c.opts.httpTimeout > 0 {
				g.Manager.SetHTTPTimeoutForTest(c.opts.httpTimeout) // before the server goroutines start
			}
		}})
	c.gws = append(c.gws, g)
	return g
}

// answer is one tools/call outcome as a client sees it.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (a answer) json() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(a.body, &m)
	return m
}

// text is the first text content of a successful tools/call result, or "".
func (a answer) text() string {
	res, _ := a.json()["result"].(map[string]any)
	content, _ := res["content"].([]any)
	if len(content) == 0 {
		return ""
	}
	first, _ := content[0].(map[string]any)
	s, _ := first["text"].(string)
	return s
}

// errorData is the JSON-RPC error's data, or nil.
func (a answer) errorData() map[string]any {
	e, _ := a.json()["error"].(map[string]any)
	d, _ := e["data"].(map[string]any)
	return d
}

func (a answer) String() string {
	if a.err != nil {
		return "error: " + a.err.Error()
	}
	return http.StatusText(a.status) + " " + string(a.body)
}

// call posts a tools/call as user to instance i. Safe from any goroutine.
func (c *cluster) call(ctx context.Context, i int, user, tool string) answer {
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
	req, err := http.NewRequestWithContext(ctx, "POST", c.gws[i].URL+"/mcp/up", strings.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	req.Header.Set(gatewaytest.UserHeader, user)
	resp, err := c.client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// connect connects user through instance 0 with the headless browser flow and returns the
// result page.
func (c *cluster) connect(user string) string {
	c.t.Helper()
	a := c.call(context.Background(), 0, user, "whoami")
	if a.err != nil || a.status != 200 {
		c.t.Fatalf("first call: %v", a)
	}
	var authURL string
	if c.opts.shared {
		// Nobody has connected the shared slot: users are told an administrator must; the
		// administrator gets the connect link from the manager (the setup UI's Connect button).
		if d := a.errorData(); d["state"] != "admin_connect_required" || d["authUrl"] != nil {
			c.t.Fatalf("first call on an unconnected shared upstream: %v", a)
		}
		req := httptest.NewRequest(http.MethodGet, c.gws[0].URL+"/", nil)
		u, err := c.gws[0].Manager.SharedConnectURL(req, "hydra-up", "apikey|ops")
		if err != nil {
			c.t.Fatal(err)
		}
		authURL = u
	} else {
		authURL = authURLOf(c.t, a.json())
	}
	b := newBrowser(c.t)
	resp, _ := b.decide(authURL, "approve")
	if resp.StatusCode != http.StatusFound {
		c.t.Fatalf("approve: %d", resp.StatusCode)
	}
	callback := c.hydra.AuthorizeHeadless(c.t, resp.Header.Get("Location"), user)
	resp, page := b.get(callback.String())
	if resp.StatusCode != 200 || !strings.Contains(page, "connected") {
		c.t.Fatalf("callback: %d %s", resp.StatusCode, page)
	}
	if a := c.call(context.Background(), 0, user, "whoami"); a.text() != "subject="+user {
		c.t.Fatalf("whoami after connecting: %v", a)
	}
	return page
}

// key is user's connection key (the test-user policy namespaces subjects with "test"); in shared
// mode, the upstream's shared slot.
func (c *cluster) key(user string) store.ConnectionKey {
	if c.opts.shared {
		return store.ConnectionKey{UpstreamID: "hydra-up", Mode: store.ModeShared, Subject: subject.Shared.String()}
	}
	return store.ConnectionKey{UpstreamID: "hydra-up", Mode: store.ModeUser, Subject: "test|" + user}
}

func authModeOf(o clusterOptions) string {
	if o.shared {
		return "shared-oauth"
	}
	return "user-oauth"
}

func (c *cluster) connection(user string) *store.Connection {
	c.t.Helper()
	conn, err := c.gws[0].Store.GetConnection(context.Background(), c.key(user))
	if err != nil {
		c.t.Fatalf("reading %s's connection: %v", user, err)
	}
	return conn
}

// waitExpired waits (polling the wall clock with a deadline) until user's stored access token has
// expired: the token lifetime is real (Hydra's), so the wait is too.
func (c *cluster) waitExpired(user string) *store.Connection {
	c.t.Helper()
	conn := c.connection(user)
	if conn.Expiry.IsZero() {
		c.t.Fatal("the token has no expiry")
	}
	deadline := time.Now().Add(time.Minute)
	for !time.Now().After(conn.Expiry.Add(50 * time.Millisecond)) {
		if time.Now().After(deadline) {
			c.t.Fatalf("token expiry %s is too far away", conn.Expiry)
		}
		<-time.After(time.Until(conn.Expiry.Add(60 * time.Millisecond)))
	}
	return conn
}

// audits counts the stored audit events named event for user.
func (c *cluster) audits(user, event string) int {
	c.t.Helper()
	evs, err := c.gws[0].Store.QueryAudit(context.Background(), store.AuditQuery{Subject: c.key(user).Subject, Event: event, Limit: 1000})
	if err != nil {
		c.t.Fatal(err)
	}
	return len(evs)
}

// metric scrapes instance i's /metrics and returns the value of the sample line that starts with
// series (name{labels in alphabetical order}), or 0 when absent.
func (c *cluster) metric(i int, series string) float64 {
	c.t.Helper()
	resp, err := c.client.Get(c.gws[i].URL + telemetry.MetricsPath)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		c.t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				c.t.Fatalf("metric %s: %v", l, err)
			}
			return f
		}
	}
	return 0
}
