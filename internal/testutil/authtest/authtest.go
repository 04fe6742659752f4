// Package authtest runs gateway-auth policies inside a real gateway for their tests: a gateway
// wired as serve wires it (gatewaytest.New: a migrated SQLite store, an audit recorder writing to
// it, ...) serving one route whose handler records what would go upstream.
package authtest

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"testing"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Store opens a migrated SQLite store that lives as long as the test (gatewaytest.Store), sealed
// with the ring every store of this package shares, so that New can give the gateway the ring of
// a store the test opened itself.
func Store(t testing.TB) store.Store {
	t.Helper()
	return gatewaytest.Store(t, "", sharedRing(t))
}

var (
	ringOnce sync.Once
	ring     *vault.Ring
)

// sharedRing is the key ring of every store Store opens.
func sharedRing(t testing.TB) *vault.Ring {
	t.Helper()
	ringOnce.Do(func() { ring = gatewaytest.Ring(t) })
	if ring == nil {
		t.Fatal("authtest: no key ring (generating it failed in an earlier test)")
	}
	return ring
}

// Seen is what the route handler received: the request as it would be forwarded upstream.
type Seen struct {
	Header http.Header
	User   *policy.User
}

// Upstream is the route handler. It answers 200 {"ok":true}.
type Upstream struct {
	mu   sync.Mutex
	seen []Seen
}

// Handle implements policy.Handler.
func (u *Upstream) Handle(c *policy.Context, w http.ResponseWriter, r *http.Request) error {
	u.mu.Lock()
	u.seen = append(u.seen, Seen{Header: r.Header.Clone(), User: c.User})
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}`))
	return nil
}

// Last returns the last request the handler saw; it fails the test when there was none.
func (u *Upstream) Last(t testing.TB) Seen {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		t.Fatal("the request never reached the route handler")
	}
	return u.seen[len(u.seen)-1]
}

// Count is how many requests reached the handler.
func (u *Upstream) Count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

// Options describe the gateway under test.
type Options struct {
	// Path and Summary of the one route (default /mcp/test, "Test MCP server").
	Path, Summary string
	// Policy is the name the policy is configured under (default "auth").
	Policy string
	// Export is the policy's export name and Options its JSON options, decoded strictly.
	Export  string
	Options string
	// Before are policies that run before this one, in order.
	Before []Spec
	// Store defaults to a fresh one; one the test passes must come from Store (or wrap one that
	// does), whose key ring the gateway is given.
	Store store.Store
	// TrustedProxies may set X-Forwarded-Proto/Host; PublicURL overrides derivation.
	TrustedProxies []netip.Prefix
	PublicURL      *url.URL
}

// Spec is a further policy on the route.
type Spec struct{ Name, Export, Options string }

// Gateway is a running gateway (gatewaytest.New) with one route guarded by one policy.
type Gateway struct {
	*gatewaytest.Gateway // its Store is the store the policy uses
	Upstream             *Upstream
	// Value is the provisioned policy.
	Value any
}

// New builds the gateway. It fails the test when the options do not decode, validate or provision.
func New(t testing.TB, o Options) *Gateway {
	t.Helper()
	if o.Path == "" {
		o.Path = "/mcp/test"
	}
	if o.Summary == "" {
		o.Summary = "Test MCP server"
	}
	if o.Policy == "" {
		o.Policy = "auth"
	}
	if o.Store == nil {
		o.Store = Store(t)
	}
	v := decode(t, o.Export, o.Options)
	policies := map[string]*config.Policy{o.Policy: {Name: o.Policy, Handler: config.Handler{Export: o.Export, Value: v}}}
	var inbound []string
	for _, b := range o.Before {
		policies[b.Name] = &config.Policy{Name: b.Name, Handler: config.Handler{Export: b.Export, Value: decode(t, b.Export, b.Options)}}
		inbound = append(inbound, b.Name)
	}
	inbound = append(inbound, o.Policy)
	up := &Upstream{}
	info := &policy.RouteInfo{Path: o.Path, Methods: []string{"GET", "POST"}, OperationID: "test-mcp", Summary: o.Summary, File: "config/routes.oas.json"}
	proj := &config.Project{
		Routes: []*config.Route{{
			File: info.File, Path: o.Path, PathMode: config.PathModeOpenAPI, Methods: info.Methods,
			OperationID: info.OperationID, Summary: info.Summary, Info: info,
			Handler: config.Handler{Export: "AuthTestHandler", Value: up},
			Inbound: inbound,
		}},
		Policies:     policies,
		CORSPolicies: map[string]*config.CORSPolicy{},
	}
	pub := ""
	if o.PublicURL != nil {
		pub = o.PublicURL.String()
	}
	g := gatewaytest.New(t, gatewaytest.Options{
		Config: proj, Store: o.Store, Ring: sharedRing(t), PublicURL: pub, TrustedProxies: o.TrustedProxies,
		Logger: slog.New(slog.DiscardHandler),
	})
	return &Gateway{Gateway: g, Upstream: up, Value: v}
}

// decode makes the module export and decodes and validates its options strictly.
func decode(t testing.TB, export, options string) any {
	t.Helper()
	m, ok := policy.FindModule(export)
	if !ok {
		t.Fatalf("no module %q registered", export)
	}
	v := m.New()
	dec := json.NewDecoder(bytes.NewReader([]byte(options)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding options of %s: %v", export, err)
	}
	if val, ok := v.(policy.Validator); ok {
		if err := val.Validate(); err != nil {
			t.Fatalf("validating options of %s: %v", export, err)
		}
	}
	return v
}

// Response is a recorded answer with its body decoded when it is JSON.
type Response struct {
	*http.Response
	Body []byte
	JSON map[string]any
}

// Do serves req and returns the answer.
func (g *Gateway) Do(t testing.TB, req *http.Request) Response {
	t.Helper()
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	out := Response{Response: resp, Body: b}
	_ = json.Unmarshal(b, &out.JSON)
	return out
}

// Post is Do for a POST of an MCP tools/list to path with the given headers (name, value pairs).
func (g *Gateway) Post(t testing.TB, path string, headers ...string) Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return g.Do(t, req)
}

// Rejections returns the mcp_request_rejected audit events, newest first, after storing the
// refusals aggregated so far (audit.Recorder.Flush): each refusal before a call is in a row of its
// own unless several of one kind (reason, address, …) came between two calls.
func (g *Gateway) Rejections(t testing.TB) []store.AuditEvent {
	t.Helper()
	g.Audit.Flush(t.Context())
	evs, err := g.Store.QueryAudit(t.Context(), store.AuditQuery{Event: audit.RequestRejected})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}
