package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/certfile"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/demo"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/limiter"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/policy/jwtauth"
	"github.com/mcpgate/mcpgate/internal/proxy"
	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/registry"
	"github.com/mcpgate/mcpgate/internal/safehttp"
	"github.com/mcpgate/mcpgate/internal/setup"
	"github.com/mcpgate/mcpgate/internal/signin"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/tracing"
)

// Defaults of serve's flags.
const (
	defaultListen          = "127.0.0.1:9000"
	defaultShutdownTimeout = 30 * time.Second
	// defaultDemoListen is where --demo serves its MCP server; examples/quickstart forwards to it.
	defaultDemoListen = "127.0.0.1:9001"
	// defaultAuditRetention is how long audit events are kept (90 days).
	defaultAuditRetention = 2160 * time.Hour
)

type serveFlags struct {
	configDir       string
	listen          string
	publicURL       string
	dataDir         string
	basePath        string
	logFormat       string
	logLevel        string
	trustedProxies  string
	shutdownTimeout time.Duration
	demo            bool
	demoListen      string
	safeHTTPAllow   string
	upstreamTimeout time.Duration
	maxRequestBody  int64
	auditRetention  time.Duration
	allowDerivedURL bool
	metricsListen   string
	registryPath    string
	tlsCert         string
	tlsKey          string
	watch           bool
}

func init() {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the gateway",
		Long: `serve loads the configuration, refuses to start if it has any problem, and serves every route.
On SIGTERM or Ctrl-C it stops accepting connections, reports not-ready on /readyz, and lets
in-flight requests and streams finish up to --shutdown-timeout. On SIGHUP (or, with --watch, when
the files change) it reloads the configuration: a valid one serves new requests while requests and
streams in flight finish on the old one; an invalid one is refused, every problem logged, and the
running configuration keeps serving.

With --demo it also starts a small MCP server (tools echo, add and countdown) at
http://127.0.0.1:9001/mcp (--demo-listen), which examples/quickstart forwards to.`,
		Example: `  # the quickstart: the gateway in front of its own demo MCP server
  mcpgate serve --demo --config examples/quickstart

  # behind a TLS-terminating proxy
  MCPGATE_PUBLIC_URL=https://mcp.example.com mcpgate serve --config /etc/mcpgate --listen :9000

  # TLS (and HTTP/2) itself; the files are re-read when they change
  mcpgate serve --config /etc/mcpgate --listen :443 --public-url https://mcp.example.com \
    --tls-cert /etc/mcpgate/tls/tls.crt --tls-key /etc/mcpgate/tls/tls.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configDir, "config", ".", "project directory holding zuplo.jsonc and config/")
	fl.StringVar(&f.listen, "listen", defaultListen, "address to listen on")
	fl.StringVar(&f.publicURL, "public-url", "", "externally visible base URL, e.g. https://mcp.example.com (required unless --listen is a loopback address or --allow-derived-public-url is set)")
	fl.BoolVar(&f.allowDerivedURL, "allow-derived-public-url", false, "on a non-loopback --listen without --public-url, derive public URLs from each request's Host (and X-Forwarded-Proto/Host from --trusted-proxies) instead of refusing to start")
	fl.StringVar(&f.dataDir, "data-dir", "./.mcpgate", "directory for the embedded database and generated keys")
	fl.StringVar(&f.basePath, "base-path", gateway.DefaultBasePath, "path prefix of the gateway's own endpoints (use /__zuplo to keep Zuplo redirect URIs)")
	fl.StringVar(&f.logFormat, "log-format", "auto", "log format: auto (text on a terminal, JSON otherwise), text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&f.trustedProxies, "trusted-proxies", "", "comma-separated IPs/CIDRs whose X-Forwarded-Proto/Host are honoured")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "how long in-flight requests may run after SIGTERM")
	fl.StringVar(&f.safeHTTPAllow, "safehttp-allow", "", "comma-separated hosts/CIDRs for which outbound OAuth calls may use http and private addresses (development and tests only)")
	fl.DurationVar(&f.upstreamTimeout, "upstream-timeout", proxy.DefaultHeaderTimeout, "how long to wait for an upstream's response headers before answering 504 (streams themselves have no total timeout)")
	fl.Int64Var(&f.maxRequestBody, "max-request-body", proxy.DefaultMaxRequestBody, "largest request body in bytes the gateway forwards (larger → 413)")
	fl.DurationVar(&f.auditRetention, "audit-retention", defaultAuditRetention, "how long audit events are kept; older ones are deleted hourly (0: kept forever)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve TLS (and HTTP/2) with this PEM certificate (chain) file; needs --tls-key; re-read when it changes")
	fl.StringVar(&f.tlsKey, "tls-key", "", "PEM private key file of --tls-cert; re-read when it changes")
	fl.StringVar(&f.metricsListen, "metrics-listen", "", "serve /metrics on this address instead of the main listener, in plain HTTP (firewall it: only the scraper should reach it)")
	fl.StringVar(&f.registryPath, "registry-path", "", "path of the read-only MCP registry ({path}/v0.1/servers); empty is <base-path>/registry, \"/\" the root, \"off\" turns it off")
	fl.BoolVar(&f.watch, "watch", false, "reload the configuration when its files change (checked every second), as SIGHUP does")
	fl.BoolVar(&f.demo, "demo", false, "also start the built-in demo MCP server (see --demo-listen)")
	fl.StringVar(&f.demoListen, "demo-listen", defaultDemoListen, "address of the demo MCP server started by --demo")
	addStateFlags(cmd)
	annotateEnv(cmd)
	rootCmd.AddCommand(cmd)
}

func runServe(cmd *cobra.Command, f serveFlags) error {
	ctx := cmd.Context()
	log, err := newLogger(cmd.ErrOrStderr(), f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	// Traces, when the OTEL_* variables ask for them (docs/operations.md#traces). The deferred
	// Shutdown runs after the HTTP server's: the spans of the last requests are exported too.
	traces, err := tracing.Setup(ctx, log, version)
	if err != nil {
		return err
	}
	if traces != nil {
		log.Info("traces on", "protocol", traces.Protocol())
		defer func() {
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), traceFlushTimeout)
			defer cancel()
			if err := traces.Shutdown(tctx); err != nil {
				log.Warn("flushing traces", "error", err)
			}
		}()
	}
	settings := gateway.Settings{BasePath: f.basePath, Logger: log, Tracer: traces.Tracer()}
	if f.publicURL != "" {
		u, err := url.Parse(f.publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--public-url: must be an absolute http(s) URL, got %q", f.publicURL)
		}
		settings.PublicURL = u
	}
	if settings.TrustedProxies, err = publicurl.ParseTrustedProxies(f.trustedProxies); err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	if !strings.HasPrefix(f.basePath, "/") {
		return fmt.Errorf("--base-path: must start with /, got %q", f.basePath)
	}
	registryPath, registryOn, err := registry.Path(f.registryPath, normalizeBasePath(f.basePath))
	if err != nil {
		return fmt.Errorf("--registry-path: %w", err)
	}
	if f.auditRetention < 0 {
		return fmt.Errorf("--audit-retention: must be 0 (keep forever) or a positive duration, got %s", f.auditRetention)
	}
	certs, err := loadTLS(f, settings.PublicURL, log)
	if err != nil {
		return err
	}
	if settings.PublicURL == nil {
		loopback, err := loopbackListen(ctx, f.listen)
		if err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		switch {
		case loopback:
		case !f.allowDerivedURL:
			return fmt.Errorf("--listen %s is not a loopback address: set --public-url (MCPGATE_PUBLIC_URL) to the gateway's externally visible URL, "+
				"or --allow-derived-public-url (MCPGATE_ALLOW_DERIVED_PUBLIC_URL) to build URLs from each request's Host header", f.listen)
		default:
			log.Warn("no --public-url: links, redirect URIs and metadata documents are built from each request's Host header "+
				"(and X-Forwarded-Proto/Host from --trusted-proxies); a client that reaches the gateway under another name gets URLs with that name. "+
				"Set --public-url in production", "listen", f.listen)
		}
	}

	var demoBase string
	if f.demo {
		if demoBase, err = demo.Start(ctx, f.demoListen, log.With("component", "demo-upstream")); err != nil {
			return err
		}
		log.Info("demo upstream MCP servers started", "public", demoBase+"/mcp", "oauth", demoBase+"/mcp-oauth")
		// The demo's authorization server is plain http on loopback.
		if host, _, err := net.SplitHostPort(f.demoListen); err == nil {
			f.safeHTTPAllow = strings.Trim(f.safeHTTPAllow+","+host, ",")
		}
	}

	project, err := loadConfig(cmd, f.configDir)
	if err != nil {
		return err
	}
	gens := &generations{configDir: f.configDir, log: log, registryPath: registryPath, registryOn: registryOn, metrics: f.metricsListen == ""}
	if err := gens.checkRegistry(project); err != nil {
		return err
	}
	st, err := openState(ctx, cmd)
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("state opened", "backend", st.Backend, "database", st.Location, "keyId", st.Ring.NewestKeyID())
	// The components every module and endpoint shares, built in dependency order.
	urls := &publicurl.URLs{Public: settings.PublicURL, TrustedProxies: settings.TrustedProxies, BasePath: normalizeBasePath(f.basePath)}
	recorder := &audit.Recorder{Log: log.With("component", "audit"), Store: st.Store, URLs: urls}
	// Runs before the store closes (defers run last-in first-out): queued audit rows are stored.
	defer func() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditFlushTimeout)
		defer cancel()
		recorder.Close(actx)
	}()
	go store.RunSweeper(ctx, st.Store, sweepInterval, log)
	if f.auditRetention > 0 {
		go recorder.RunRetention(ctx, f.auditRetention, audit.RetentionInterval)
		log.Info("audit retention", "keep", f.auditRetention.String(), "interval", audit.RetentionInterval.String())
	} else {
		log.Info("audit retention off: audit events are kept forever (--audit-retention 0)")
	}
	manager, err := connect.New(connect.Deps{Store: st.Store, Ring: st.Ring, Audit: recorder, URLs: urls,
		SafeHTTPAllow: splitList(f.safeHTTPAllow), Logger: log})
	if err != nil {
		return err
	}
	// The gateway's authorization server for MCP clients (mcp-oauth-inbound) and the browser
	// sign-in the connect pages use.
	signIn, err := signin.New(signin.Deps{Store: st.Store, Ring: st.Ring, Audit: recorder, URLs: urls, Upstreams: manager,
		SafeHTTPAllow: splitList(f.safeHTTPAllow), Logger: log})
	if err != nil {
		return err
	}
	binding, err := connectBinding(os.Getenv("MCPGATE_CONNECT_BINDING"))
	if err != nil {
		return err
	}
	// Where rate-limit-inbound counts: Redis across replicas, or each instance's memory. Closed
	// after the gateway (defers run last-in first-out), whose Cleanup sends pending async counts.
	rateLimits, err := openRateLimits(ctx, log, os.Getenv("MCPGATE_REDIS_URL"))
	if err != nil {
		return err
	}
	if rateLimits != nil {
		defer func() { _ = rateLimits.Close() }()
	}
	// Without Redis, rate-limit-inbound counts here: one store for every generation, so a reload
	// keeps each caller's window.
	memoryLimits := limiter.NewMemory(limiter.MemoryOptions{})
	var demoKey string
	if f.demo {
		if demoKey, err = demoAPIKey(ctx, st); err != nil {
			return err
		}
	}

	redirectAllow, err := safehttp.ParseAllowList(f.safeHTTPAllow)
	if err != nil {
		return fmt.Errorf("--safehttp-allow: %w", err)
	}
	// The gateway provisions every policy and handler of the project with a host like this one
	// (each configuration generation its own; reload.go).
	gens.host = func() *policy.Host {
		return &policy.Host{
			Logger:  log,
			URLs:    urls,
			Audit:   recorder,
			APIKeys: st.Store,
			// rate-limit-inbound in Redis (MCPGATE_REDIS_URL): one store for every generation.
			RateLimits:   rateLimits,
			MemoryLimits: memoryLimits,
			Proxy: policy.ProxySettings{HeaderTimeout: f.upstreamTimeout, MaxRequestBody: f.maxRequestBody,
				// Redirect hops of followRedirects routes go through the SSRF guard with this allow list.
				RedirectAllow: redirectAllow,
				// Session ids on authenticated MCP routes without a token exchange are bound to the caller.
				SessionKey: st.Ring.DeriveKey("mcp-session")},
		}
	}
	gens.settings, gens.manager, gens.signIn, gens.binding = settings, manager, signIn, binding
	gens.setup = setup.Deps{Store: st.Store, Ring: st.Ring, Audit: recorder, URLs: urls, Manager: manager, Logger: log}
	// The background refresher keeps connections used in the last 30 minutes fresh ahead of their
	// next request, until serve stops. It runs once a token-exchange policy is configured (at
	// start or by a reload); MCPGATE_BACKGROUND_REFRESH=off turns it off.
	var refreshOnce sync.Once
	gens.startRefresh = func() {
		if os.Getenv("MCPGATE_BACKGROUND_REFRESH") == "off" {
			return
		}
		refreshOnce.Do(func() {
			go manager.RunBackgroundRefresh(ctx, connect.BackgroundInterval)
			log.Info("background refresh of recently used connections started", "interval", connect.BackgroundInterval.String(),
				"recentUse", connect.RecentUse.String())
		})
	}
	// The gateway's own endpoints are mounted beside the routes, in every generation: the setup
	// UI, the connect pages, sign-in, the MCP registry and (without --metrics-listen) the Prometheus
	// metrics (refresh outcomes, lease waits, replays, step-ups, connect-required answers, upstream
	// latency, audit rows). No token or subject is ever a metric label; restrict who may scrape
	// them at the network level, like /healthz — or serve them on a listener of its own
	// (--metrics-listen) that only the scraper can reach.
	gw, err := gens.build(ctx, project, true)
	if err != nil {
		return err
	}
	// The handler of the HTTP server: a reload swaps the generation behind it.
	sw := gateway.NewSwitch(gw, log)
	gens.sw = sw
	defer sw.Close()
	var metricsLn net.Listener
	if f.metricsListen != "" {
		if metricsLn, err = net.Listen("tcp", f.metricsListen); err != nil {
			return fmt.Errorf("--metrics-listen %s: %w", f.metricsListen, err)
		}
	}

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", f.listen, err)
	}
	// Header and idle timeouts, no total read or write timeout (streams have none); bodies get
	// their read deadline from the gateway (gateway.NewHTTPServer).
	srv := gateway.NewHTTPServer(sw)
	errc := make(chan error, 2)
	scheme := "http"
	if certs != nil {
		// ServeTLS with no files: the certificate comes from GetCertificate, and net/http sets up
		// HTTP/2 on the listener (ALPN h2).
		scheme = "https"
		srv.TLSConfig = certs.ServerConfig()
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	var metricsSrv *http.Server
	if metricsLn != nil {
		mux := http.NewServeMux()
		telemetry.Mount(mux.Handle)
		metricsSrv = gateway.NewHTTPServer(mux)
		go func() {
			if err := metricsSrv.Serve(metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics listener: %w", err)
			}
		}()
		log.Info("metrics listening", "address", metricsLn.Addr().String(), "path", telemetry.MetricsPath)
	}
	sw.SetReady(true)
	reloads := gens.watchReloads(ctx, f.watch)
	base := scheme + "://" + ln.Addr().String()
	if certs != nil {
		leaf := certs.Certificate().Leaf
		log.Info("TLS on", "cert", f.tlsCert, "key", f.tlsKey, "subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(),
			"notAfter", leaf.NotAfter.UTC().Format(time.RFC3339), "checkInterval", certfile.DefaultCheckInterval.String())
	}
	log.Info("mcpgate listening", "address", ln.Addr().String(), "scheme", scheme, "routes", len(project.Routes), "version", version)
	for _, r := range project.Routes {
		log.Info("route", "methods", strings.Join(r.Methods, ","), "url", base+r.Path, "operationId", r.OperationID)
	}

	if f.demo {
		printDemoHelp(cmd.ErrOrStderr(), base, demoKey)
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	<-reloads // a reload under way finishes first
	sw.SetReady(false)
	log.Info("shutting down: letting in-flight requests finish", "timeout", f.shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
	defer cancel()
	if metricsSrv != nil {
		_ = metricsSrv.Close()
	}
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown deadline passed; closing remaining connections", "error", err)
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// loadTLS checks --tls-cert and --tls-key (both or neither; an https --public-url) and loads the
// pair, so that a file that cannot be used stops serve before anything else starts. It returns nil
// when TLS is off.
func loadTLS(f serveFlags, public *url.URL, log *slog.Logger) (*certfile.Pair, error) {
	switch {
	case f.tlsCert == "" && f.tlsKey == "":
		return nil, nil
	case f.tlsKey == "":
		return nil, errors.New("--tls-cert needs --tls-key (MCPGATE_TLS_KEY): set both to serve TLS, or neither")
	case f.tlsCert == "":
		return nil, errors.New("--tls-key needs --tls-cert (MCPGATE_TLS_CERT): set both to serve TLS, or neither")
	}
	if public != nil && public.Scheme != "https" {
		return nil, fmt.Errorf("--public-url: must be https when serving TLS (--tls-cert, --tls-key), got %q", f.publicURL)
	}
	certs, err := certfile.Load(f.tlsCert, f.tlsKey, log.With("component", "tls"))
	if err != nil {
		return nil, fmt.Errorf("--tls-cert, --tls-key: %w", err)
	}
	return certs, nil
}

// auditFlushTimeout bounds storing queued audit rows at shutdown.
const auditFlushTimeout = 5 * time.Second

// traceFlushTimeout bounds exporting the queued spans at shutdown.
const traceFlushTimeout = 5 * time.Second

// sweepInterval is how often expired single-use records are removed.
const sweepInterval = 5 * time.Minute

// connectBinding reads MCPGATE_CONNECT_BINDING: "" or "session" (connect pages act only for the
// person signed in), or "ticket" (the link alone; an explicit opt-out).
func connectBinding(v string) (connect.Binding, error) {
	switch connect.Binding(v) {
	case "", connect.BindingSession:
		return connect.BindingSession, nil
	case connect.BindingTicket:
		return connect.BindingTicket, nil
	}
	return "", fmt.Errorf("MCPGATE_CONNECT_BINDING: must be session or ticket, got %q", v)
}

// warnBinding says at start where a connect link alone authorizes whoever opens it.
func warnBinding(log *slog.Logger, b connect.Binding, project *config.Project, signIn *signin.Server) {
	if b == connect.BindingTicket {
		log.Warn("MCPGATE_CONNECT_BINDING=ticket: connect links are not bound to the person signed in; a link forwarded to someone else connects their upstream account under the sender's identity")
		return
	}
	for _, name := range project.PolicyOrder {
		p := project.Policies[name]
		if p == nil {
			continue
		}
		if j, ok := p.Handler.Value.(*jwtauth.Policy); ok && !signIn.HasLogin(subject.JWTPrefix+j.Issuer) {
			log.Warn("connect links of this JWT policy's users are bound only by the link: the gateway has no sign-in at its issuer (add an mcp-oauth-inbound policy with oidc.issuer set to it)",
				"policy", name, "issuer", j.Issuer)
		}
	}
}

// loopbackListen reports whether the listen address only accepts connections from this machine: an
// IP loopback address, or a name that resolves only to loopback addresses ("localhost"). An empty
// host (":9000") listens on every interface.
func loopbackListen(ctx context.Context, listen string) (bool, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false, err
	}
	if host == "" {
		return false, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().IsLoopback(), nil
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return false, nil // the listen below reports an unresolvable name
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			return false, nil
		}
	}
	return true, nil
}

// normalizeBasePath makes "/x/" and "/x" the same base path, as gateway.New does.
func normalizeBasePath(p string) string { return "/" + strings.Trim(p, "/") }

// splitList splits a comma-separated flag value.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// demoConsumer owns the demo API key.
const demoConsumer = "demo-user"

// demoAPIKey returns the demo's API key, creating its record on first use. The key is derived from
// the data dir's encryption key, so it is the same on every start of the same demo and is never
// stored in clear. It exists only with --demo.
func demoAPIKey(ctx context.Context, st *state) (string, error) {
	key := "mcpgate_demo_" + base64.RawURLEncoding.EncodeToString(st.Ring.DeriveKey("demo api key")[:24])
	hash := store.HashAPIKey(key)
	if _, err := st.Store.LookupAPIKey(ctx, hash); err == nil {
		return key, nil
	}
	err := st.Store.CreateAPIKey(ctx, &store.APIKey{ID: "demo", Consumer: demoConsumer, Hash: hash,
		Metadata: []byte(`{"demo":true}`), CreatedAt: time.Now()})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return "", fmt.Errorf("creating the demo API key: %w", err)
	}
	return key, nil
}

// printDemoHelp tells a person following the quickstart what to do next. It goes to stderr, not
// the log: the demo key is a local demo credential, printed so the walkthrough needs no extra step.
func printDemoHelp(w io.Writer, base, key string) {
	fmt.Fprintf(w, `
mcpgate demo is running.

  Public demo route (no credentials):   %[1]s/mcp/demo
  OAuth demo route (your own upstream token, connected in the browser):
                                        %[1]s/mcp/demo-oauth
  Sign-in demo route (no API key: point an MCP client at it, sign in, connect, call whoami):
                                        %[1]s/mcp/demo-signin
  Demo API key for user %[3]q:     %[2]s

Try the OAuth route; the first call answers "Connect Demo upstream to continue: <link>":
  curl -s %[1]s/mcp/demo-oauth -H 'Authorization: Bearer %[2]s' \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
Open the link, approve, sign in at the demo upstream, then run the same command again.

`, base, key, demoConsumer)
}
