// Package gatewaytest runs a whole in-process gateway for tests, wired as `mcpgate serve` wires
// it (cmd/mcpgate, runServe): a migrated SQLite store (or the test's own), a key ring, an audit
// recorder, the connection manager and its browser endpoints, the MCP registry, optionally the
// setup UI and /metrics, and the gateway itself behind an httptest server. It also holds what those tests
// share: a header-trusting test auth policy, a synchronized log buffer and Eventually.
package gatewaytest

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	_ "github.com/mcpgate/mcpgate/internal/builtin" // the built-in policies and handlers
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/limiter"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/registry"
	"github.com/mcpgate/mcpgate/internal/safehttp"
	"github.com/mcpgate/mcpgate/internal/setup"
	"github.com/mcpgate/mcpgate/internal/signin"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/vault"
	"go.opentelemetry.io/otel/trace"
)

// Ring returns a new key ring with one generated key, "k1".
func Ring(t testing.TB) *vault.Ring {
	t.Helper()
	key, err := vault.GenerateKey("k1", func() string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ring, err := vault.ParseRing(key)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// Store opens a migrated SQLite store at path ("" for a new file in t.TempDir()) sealed with
// ring (nil for a new ring). It is closed when the test ends.
func Store(t testing.TB, path string, ring *vault.Ring) store.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "mcpgate.db")
	}
	if ring == nil {
		ring = Ring(t)
	}
	st, err := sqlite.Open(context.Background(), path, sqlstore.Options{Ring: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// Project writes a project directory: zuplo.jsonc (a compatibilityDate of 2026-03-01 unless
// files has one) and each file of files, by its path in the project (for example
// "config/routes.oas.json"). It returns the directory.
func Project(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if _, ok := files["zuplo.jsonc"]; !ok {
		files["zuplo.jsonc"] = `{"version":1,"compatibilityDate":"2026-03-01"}`
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Load loads the project in dir with no environment variables; it fails the test on any problem.
func Load(t testing.TB, dir string) *config.Project {
	t.Helper()
	p, err := config.Load(dir, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Options describe the gateway under test. The zero value serves an empty project.
type Options struct {
	// Dir is the project directory (see Project); Config, when set, is used instead.
	Dir    string
	Config *config.Project
	// Store and Ring default to a fresh SQLite store and ring. Ring must be the store's ring.
	Store store.Store
	Ring  *vault.Ring
	// PublicURL is --public-url ("" derives it from each request); TrustedProxies may set
	// X-Forwarded-Proto/Host.
	PublicURL      string
	TrustedProxies []netip.Prefix
	// SafeHTTPAllow defaults to 127.0.0.1: test authorization servers are plain http on loopback.
	SafeHTTPAllow []string
	// Proxy are the proxying handlers' settings.
	Proxy policy.ProxySettings
	// Setup mounts the setup UI and admin API; Metrics mounts /metrics.
	Setup, Metrics bool
	// RegistryPath is --registry-path: "" mounts the MCP registry at its default path, "off"
	// leaves it out.
	RegistryPath string
	// Binding is what binds connect pages to a person (default connect.BindingSession).
	Binding connect.Binding
	// Logs receives the gateway's log (debug level); nil means the Gateway's own Logs buffer.
	Logs io.Writer
	// Logger, when set, is used instead of a logger on Logs.
	Logger *slog.Logger
	// TLSConfig is what the sign-in server fetches client metadata documents with.
	TLSConfig *tls.Config
	// Now is the sign-in server's clock and the host's (policy.Host.Now: rate-limit windows in
	// memory); default time.Now.
	Now func() time.Time
	// RateLimits is the Redis rate-limit-inbound counts in (policy.Host.RateLimits); nil: memory.
	RateLimits *limiter.Redis
	// MemoryLimits is the in-memory store of rate-limit windows (policy.Host.MemoryLimits); nil:
	// each policy its own.
	MemoryLimits *limiter.Memory
	// BeforeStart runs after the components are built and before the HTTP server starts (to
	// set test-only knobs that server goroutines read).
	BeforeStart func(*Gateway)
	// Tracer is gateway.Settings.Tracer: nil (tracing off) unless a test records spans.
	Tracer trace.Tracer
}

// Gateway is a running in-process gateway.
type Gateway struct {
	*gateway.Server
	// HTTP serves the gateway; URL is its base URL.
	HTTP *httptest.Server
	URL  string
	// Base is URL plus the base path of the gateway's own endpoints.
	Base    string
	Store   store.Store
	Ring    *vault.Ring
	Host    *policy.Host
	Manager *connect.Manager
	SignIn  *signin.Server
	Audit   *audit.Recorder
	Setup   *setup.Handler
	Project *config.Project
	// Logs holds the log when Options.Logs and Options.Logger were nil.
	Logs *Buffer
}

// New builds and starts a gateway. Everything it starts is stopped when the test ends.
func New(t testing.TB, o Options) *Gateway {
	t.Helper()
	g := &Gateway{Project: o.Config, Store: o.Store, Ring: o.Ring}
	if g.Project == nil {
		if o.Dir == "" {
			o.Dir = Project(t, map[string]string{})
		}
		g.Project = Load(t, o.Dir)
	}
	if g.Ring == nil {
		if g.Store != nil {
			t.Fatal("gatewaytest: Options.Store needs Options.Ring (the ring the store was opened with)")
		}
		g.Ring = Ring(t)
	}
	if g.Store == nil {
		g.Store = Store(t, "", g.Ring)
	}
	log := o.Logger
	if log == nil {
		w := o.Logs
		if w == nil {
			g.Logs = &Buffer{}
			w = g.Logs
		}
		log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	settings := gateway.Settings{Logger: log, TrustedProxies: o.TrustedProxies, Tracer: o.Tracer}
	if o.PublicURL != "" {
		u, err := url.Parse(o.PublicURL)
		if err != nil {
			t.Fatal(err)
		}
		settings.PublicURL = u
	}
	if o.SafeHTTPAllow == nil {
		o.SafeHTTPAllow = []string{"127.0.0.1"}
	}

	// As runServe: URLs, audit, connection manager, sign-in, host, gateway, then the gateway's endpoints.
	urls := &publicurl.URLs{Public: settings.PublicURL, TrustedProxies: o.TrustedProxies, BasePath: gateway.DefaultBasePath}
	g.Audit = &audit.Recorder{Log: log.With("component", "audit"), Store: g.Store, URLs: urls}
	t.Cleanup(func() { g.Audit.Close(context.Background()) })
	m, err := connect.New(connect.Deps{Store: g.Store, Ring: g.Ring, Audit: g.Audit, URLs: urls, SafeHTTPAllow: o.SafeHTTPAllow, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	g.Manager = m
	if g.SignIn, err = signin.New(signin.Deps{Store: g.Store, Ring: g.Ring, Audit: g.Audit, URLs: urls, Upstreams: m,
		SafeHTTPAllow: o.SafeHTTPAllow, Logger: log, Now: o.Now, TLSConfig: o.TLSConfig}); err != nil {
		t.Fatal(err)
	}
	if o.Proxy.RedirectAllow.IsEmpty() {
		if o.Proxy.RedirectAllow, err = safehttp.ParseAllowList(strings.Join(o.SafeHTTPAllow, ",")); err != nil {
			t.Fatal(err)
		}
	}
	if len(o.Proxy.SessionKey) == 0 {
		o.Proxy.SessionKey = g.Ring.DeriveKey("mcp-session")
	}
	g.Host = &policy.Host{Logger: log, URLs: urls, Audit: g.Audit, APIKeys: g.Store, Connections: m, SignIn: g.SignIn, Proxy: o.Proxy,
		RateLimits: o.RateLimits, MemoryLimits: o.MemoryLimits, Now: o.Now}
	settings.Host = g.Host
	srv, err := gateway.New(context.Background(), g.Project, settings)
	if err != nil {
		t.Fatalf("starting the gateway: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	g.Server = srv
	g.SignIn.Mount(srv.Handle)
	b := connect.BindingOptions{Mode: o.Binding, Sessions: g.SignIn}
	if o.Setup {
		g.Setup, err = setup.Mount(setup.Deps{Store: g.Store, Ring: g.Ring, Audit: g.Audit, URLs: urls, Manager: m,
			Register: srv.Handle, Logger: log}, g.Project)
		if err != nil {
			t.Fatal(err)
		}
		b.Admins = g.Setup
	}
	m.Mount(srv.Handle, g.Host.Authenticate, b)
	regPath, regOn, err := registry.Path(o.RegistryPath, gateway.DefaultBasePath)
	if err != nil {
		t.Fatalf("registry path: %v", err)
	}
	if regOn {
		registry.New(g.Project, urls).Mount(srv.Handle, regPath)
	}
	if o.Metrics {
		telemetry.Mount(srv.Handle)
	}
	if o.BeforeStart != nil {
		o.BeforeStart(g)
	}
	srv.SetReady(true)
	g.HTTP = httptest.NewServer(srv)
	t.Cleanup(g.HTTP.Close)
	g.URL = g.HTTP.URL
	g.Base = g.URL + gateway.DefaultBasePath
	return g
}

// Buffer is an io.Writer safe for concurrent use (a gateway's log, a process's output).
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Eventually polls cond every 10 ms until it holds, and fails the test naming what when it
// does not within d. It is for conditions another goroutine or process makes true (a queued
// audit row, a log line), never a substitute for waiting on an event the test can observe.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
