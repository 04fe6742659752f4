package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/registry"
	"github.com/mcpgate/mcpgate/internal/setup"
	"github.com/mcpgate/mcpgate/internal/signin"
	"github.com/mcpgate/mcpgate/internal/telemetry"
)

// watchInterval is how often --watch looks at the configuration files.
const watchInterval = time.Second

// generations builds the gateway of one configuration — its modules provisioned with a host of
// their own, the gateway's own endpoints mounted on it — from the components that live as long as
// serve, and reloads the configuration on SIGHUP or, with --watch, when its files change
// (docs/architecture.md#reloading-the-configuration).
type generations struct {
	configDir string
	log       *slog.Logger
	settings  gateway.Settings // Host is built per generation by host
	// host returns a new policy.Host with every component set but Connections and SignIn: each
	// generation has its own (the gateway fills Register and Authenticate with its own, and
	// policy.Shared state belongs to one generation).
	host         func() *policy.Host
	manager      *connect.Manager
	signIn       *signin.Server
	setup        setup.Deps // Register is the generation's
	binding      connect.Binding
	registryPath string
	registryOn   bool
	metrics      bool // /metrics on the main listener
	// startRefresh starts the background refresher once some upstream is attached.
	startRefresh func()

	sw *gateway.Switch // set once the first generation serves
}

// build provisions a gateway for project and mounts the gateway's own endpoints on it. The
// connection manager and the sign-in server learn the project's upstreams and sign-in routes only
// when everything that can fail has succeeded: a configuration refused here leaves them as they were.
func (g *generations) build(ctx context.Context, project *config.Project, first bool) (*gateway.Server, error) {
	if err := g.checkRegistry(project); err != nil {
		return nil, err
	}
	upstreams, signIns := g.manager.Stage(), g.signIn.Stage()
	settings := g.settings
	settings.Host = g.host()
	settings.Host.Connections, settings.Host.SignIn = upstreams, signIns
	gw, err := gateway.New(ctx, project, settings)
	if err != nil {
		return nil, err
	}
	d := g.setup
	d.Register = gw.Handle
	admin, err := setup.Mount(d, project)
	if err != nil {
		_ = gw.Close()
		return nil, fmt.Errorf("mounting the setup UI: %w", err)
	}
	g.manager.Mount(gw.Handle, settings.Host.Authenticate, connect.BindingOptions{Mode: g.binding, Sessions: g.signIn, Admins: admin})
	// The read-only MCP registry of the project's MCP routes (public: names, summaries and URLs).
	if g.registryOn {
		registry.New(project, d.URLs).Mount(gw.Handle, g.registryPath)
	}
	// Prometheus metrics; see runServe for who may scrape them.
	if g.metrics {
		telemetry.Mount(gw.Handle)
	}
	// From here on nothing fails: the components take the new configuration. Requests still
	// served by the previous generation keep the upstreams and sign-in routes their policies
	// attached; the endpoints of both generations see the new ones.
	if changed := upstreams.Commit(); len(changed) > 0 {
		g.log.Info("upstream OAuth settings changed: cached discovery forgotten", "upstreams", strings.Join(changed, ","))
	}
	signIns.Commit()
	// Its OAuth endpoints and metadata documents are those of the committed sign-in routes.
	g.signIn.Mount(gw.Handle)
	warnBinding(g.log, g.binding, project, g.signIn)
	if first {
		g.log.Info("setup UI mounted", "path", d.URLs.BasePath+"/setup", "api", d.URLs.BasePath+"/admin/api")
		if g.registryOn {
			g.log.Info("MCP registry mounted", "path", g.registryPath+"/v0.1/servers")
		}
		if g.metrics {
			g.log.Info("metrics mounted", "path", telemetry.MetricsPath)
		}
	}
	if len(g.manager.Upstreams()) > 0 {
		g.startRefresh()
	}
	return gw, nil
}

// checkRegistry refuses a project with a route the MCP registry would hide.
func (g *generations) checkRegistry(project *config.Project) error {
	if hidden := registry.Shadowed(project, g.registryPath); g.registryOn && len(hidden) > 0 {
		// Gateway endpoints are matched before routes: these would never be reached.
		return fmt.Errorf("--registry-path: the registry's %s/v0.1/ would hide the routes %s; move it or set it to off",
			g.registryPath, strings.Join(hidden, ", "))
	}
	return nil
}

// reload loads the configuration again and, when it is valid and provisions, makes it serve new
// requests; otherwise it logs every problem and the running configuration keeps serving. It
// logs one line either way, with the generation serving afterwards.
func (g *generations) reload(ctx context.Context, trigger string) {
	start := time.Now()
	_, current := g.sw.Current()
	refuse := func(err error, problems int) {
		telemetry.Default.Reload(telemetry.ReloadRefused, current)
		g.log.Error("configuration reload refused: the running configuration keeps serving", "trigger", trigger,
			"generation", current, "problems", problems, "durationMs", msSince(start), "error", err)
	}
	project, err := config.Load(g.configDir, os.LookupEnv)
	if err != nil {
		var probs config.Errors
		if !errors.As(err, &probs) {
			refuse(err, 1)
			return
		}
		for _, p := range probs {
			g.log.Error("configuration problem", "problem", p.String(), "file", p.File, "path", p.Path)
		}
		refuse(fmt.Errorf("%d problem(s) in %s", len(probs), g.configDir), len(probs))
		return
	}
	gw, err := g.build(ctx, project, false)
	if err != nil {
		refuse(err, 1)
		return
	}
	n, drained := g.sw.Swap(gw)
	telemetry.Default.Reload(telemetry.ReloadApplied, n)
	g.log.Info("configuration reloaded", "trigger", trigger, "generation", n, "routes", len(project.Routes), "durationMs", msSince(start))
	go func() {
		<-drained
		g.log.Info("previous configuration closed: its last request ended", "generation", n-1)
	}()
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// watchReloads reloads on SIGHUP and, with watch, when the configuration files change, until ctx
// ends; the returned channel is closed then. SIGHUP is caught from the moment it returns until the
// process exits (its default action would end the process).
func (g *generations) watchReloads(ctx context.Context, watch bool) <-chan struct{} {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var tick *time.Ticker
	if watch {
		tick = time.NewTicker(watchInterval)
		g.log.Info("watching the configuration for changes", "dir", g.configDir, "interval", watchInterval.String())
	} else {
		tick = time.NewTicker(time.Hour)
		tick.Stop() // never fires
	}
	go func() {
		// hup stays registered after ctx ends (no signal.Stop): a SIGHUP during shutdown's drain
		// is dropped rather than ending the process with its default action.
		defer close(done)
		defer tick.Stop()
		tried := configStamp(g.configDir) // what the running configuration was loaded from
		last := tried
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				tried = configStamp(g.configDir)
				g.reload(ctx, "SIGHUP")
			case <-tick.C:
				// A change is loaded once the files stayed the same for a whole interval, so an
				// editor's save in several writes is read once it is complete; a configuration
				// refused is tried again at its next change.
				now := configStamp(g.configDir)
				if now != last {
					last = now
					continue
				}
				if now != tried {
					tried = now
					g.reload(ctx, "watch")
				}
			}
		}
	}()
	return done
}

// configStamp sums up the configuration files' names, sizes and modification times: zuplo.jsonc
// and every file in config/. Symbolic links are followed, as a Kubernetes ConfigMap mounts its
// files (its ..data entries themselves are left out).
func configStamp(dir string) string {
	var b strings.Builder
	stamp := func(path string) {
		fi, err := os.Stat(path)
		if err != nil || fi.IsDir() {
			return
		}
		fmt.Fprintf(&b, "%s\x00%d\x00%d\n", path, fi.Size(), fi.ModTime().UnixNano())
	}
	stamp(filepath.Join(dir, "zuplo.jsonc"))
	entries, _ := os.ReadDir(filepath.Join(dir, "config")) // sorted by name
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") {
			stamp(filepath.Join(dir, "config", e.Name()))
		}
	}
	return b.String()
}
