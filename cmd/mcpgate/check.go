package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/policy/tokenexchange"
	"github.com/mcpgate/mcpgate/internal/safehttp"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// checkTimeout bounds the setup check of one upstream (discovery makes several requests, each
// bounded by safehttp.DefaultTimeout).
const checkTimeout = 60 * time.Second

// Exit statuses of check.
const (
	checkExitFailing = 1 // some upstream failed a step
	checkExitInvalid = 2 // the configuration or a flag is invalid: nothing was checked
)

type checkFlags struct {
	configDir, publicURL, basePath, safeHTTPAllow string
	json                                          bool
}

func init() {
	var f checkFlags
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check every token-exchange upstream's OAuth discovery and registration, registering nothing",
		Long: `check loads the configuration and, for every upstream of an mcp-token-exchange-inbound policy,
runs the setup check the setup UI's "Check now" runs: protected resource metadata, authorization
server metadata, PKCE S256, the client registration mode that would be used (manual, client ID
metadata document, dynamic client registration) and scopes. It fetches metadata only: it never
registers a client, and it needs no data directory or database.

Each failure names its bucket (gateway configuration, upstream OAuth setup, upstream service
response), a stable code, the reason and what to do. Exit status 0 means every upstream passed,
1 that at least one failed, 2 that the configuration or a flag is invalid.`,
		Example: `  mcpgate check --config ./my-zuplo-project --public-url https://mcp.example.com
  mcpgate check --config ./my-zuplo-project --json | jq '.[] | select(.ok | not)'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCheck(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configDir, "config", ".", "project directory holding zuplo.jsonc and config/")
	fl.StringVar(&f.publicURL, "public-url", "", "the gateway's externally visible base URL, as serve uses it (decides whether a client ID metadata document can be used: it needs https); empty: http://"+defaultListen)
	fl.StringVar(&f.basePath, "base-path", gateway.DefaultBasePath, "path prefix of the gateway's own endpoints, as serve uses it (part of the redirect URI and the client ID metadata document URL)")
	fl.StringVar(&f.safeHTTPAllow, "safehttp-allow", "", "comma-separated hosts/CIDRs where metadata requests may use http and private addresses (development and tests only)")
	fl.BoolVar(&f.json, "json", false, "print a JSON array, one object per upstream, instead of the table")
	annotateEnv(cmd)
	rootCmd.AddCommand(cmd)
}

// checkRow is one upstream in check's output (the JSON fields are documented in
// docs/operations.md#checking-upstreams; keep them stable).
type checkRow struct {
	DisplayName  string   `json:"displayName"`
	AuthMode     string   `json:"authMode"`
	OperationIDs []string `json:"operationIds"`
	upstream.CheckReport
}

func runCheck(cmd *cobra.Command, f checkFlags) error {
	invalid := func(format string, args ...any) error {
		fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...)
		return exitError{code: checkExitInvalid}
	}
	ep := upstream.Endpoints{PublicURL: "http://" + defaultListen, BasePath: normalizeBasePath(f.basePath)}
	if f.publicURL != "" {
		u, err := url.Parse(f.publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("--public-url: must be an absolute http(s) URL, got %q", f.publicURL)
		}
		ep.PublicURL = u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/")
	}
	if !strings.HasPrefix(f.basePath, "/") {
		return invalid("--base-path: must start with /, got %q", f.basePath)
	}
	allow, err := safehttp.ParseAllowList(f.safeHTTPAllow)
	if err != nil {
		return invalid("--safehttp-allow: %v", err)
	}
	project, err := loadConfig(cmd, f.configDir)
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return exitError{code: checkExitInvalid}
		}
		return invalid("%v", err)
	}
	specs, err := upstreamSpecs(cmd.Context(), project)
	if err != nil {
		return invalid("%s: %v", f.configDir, err)
	}

	// An engine of its own, registrations in memory: the check reads no store and writes nothing.
	engine := upstream.New(upstream.Options{Allow: allow})
	rows := make([]checkRow, len(specs))
	var wg sync.WaitGroup
	for i, sp := range specs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(cmd.Context(), checkTimeout)
			defer cancel()
			ops := make([]string, 0, len(sp.OperationIDs))
			for op := range sp.OperationIDs {
				ops = append(ops, op)
			}
			sort.Strings(ops)
			rows[i] = checkRow{DisplayName: sp.DisplayName, AuthMode: string(sp.Mode) + "-oauth", OperationIDs: ops,
				CheckReport: *engine.Check(ctx, sp.Upstream, "", ep)}
		})
	}
	wg.Wait()

	out := cmd.OutOrStdout()
	if f.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return err
		}
	} else if err := printCheckTable(out, f.configDir, rows); err != nil {
		return err
	}
	for _, r := range rows {
		if !r.OK {
			return exitError{code: checkExitFailing}
		}
	}
	return nil
}

// specCollector is the policy.Connections the check provisions token-exchange policies with: it
// keeps what each policy would attach to the connection manager and serves nothing.
type specCollector struct{ specs []policy.UpstreamSpec }

// Attach implements policy.Connections.
func (c *specCollector) Attach(spec policy.UpstreamSpec) (policy.Inbound, error) {
	c.specs = append(c.specs, spec)
	return nil, nil
}

// upstreamSpecs provisions every token-exchange policy some route uses, exactly as serve does
// (tokenexchange.(*Policy).Provision builds the upstream from the policy and its routes), but
// attached to a collector instead of a connection manager. Policies come in policies.json order.
func upstreamSpecs(ctx context.Context, p *config.Project) ([]policy.UpstreamSpec, error) {
	usedBy := map[string][]*policy.RouteInfo{}
	for _, rc := range p.Routes {
		for _, n := range rc.Inbound {
			usedBy[n] = append(usedBy[n], rc.Info)
		}
	}
	c := &specCollector{}
	host := &policy.Host{Logger: slog.New(slog.DiscardHandler), Connections: c}
	var errs []error
	for _, name := range p.PolicyOrder {
		pol := p.Policies[name]
		te, ok := pol.Handler.Value.(*tokenexchange.Policy)
		if !ok || len(usedBy[name]) == 0 {
			continue
		}
		env := &policy.Env{Name: name, Logger: host.Logger, Routes: usedBy[name], Host: host}
		if err := te.Provision(ctx, env); err != nil {
			errs = append(errs, fmt.Errorf("policy %q: %w", name, err))
		}
	}
	return c.specs, errors.Join(errs...)
}

// stepMark is a step result as one character in the table.
func stepMark(r upstream.StepResult) string {
	switch r {
	case upstream.StepOK:
		return "✓"
	case upstream.StepFailed:
		return "✗"
	case upstream.StepWarning:
		return "!"
	}
	return "–"
}

// printCheckTable prints one line per upstream, then what to do about each failure and warning.
func printCheckTable(w io.Writer, dir string, rows []checkRow) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintf(w, "%s: no route uses an mcp-token-exchange-inbound policy; nothing to check\n", dir)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "UPSTREAM\tROUTES\tPRM\tAS\tS256\tREGISTRATION\tSCOPES\tRESULT")
	failing := 0
	for _, r := range rows {
		reg := stepMark(r.Step(upstream.StepRegistration).Result)
		if r.Registration.Mode != "" {
			reg += " " + r.Registration.Mode
		}
		result := "ok"
		if r.Problem != nil {
			result, failing = string(r.Problem.Bucket), failing+1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.UpstreamID, strings.Join(r.OperationIDs, ","),
			stepMark(r.Step(upstream.StepPRM).Result), stepMark(r.Step(upstream.StepASMetadata).Result),
			stepMark(r.Step(upstream.StepS256).Result), reg, stepMark(r.Step(upstream.StepScopes).Result), result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if p := r.Problem; p != nil {
			fmt.Fprintf(w, "\n%s (%s): %s · %s · %s\n  %s\n  what to do: %s\n", r.UpstreamID, r.UpstreamURL, p.Step, p.Bucket, p.Code, p.Message, p.Fix)
		}
		for _, s := range r.Steps {
			if s.Result == upstream.StepWarning {
				fmt.Fprintf(w, "\n%s (%s): %s · warning\n  %s\n", r.UpstreamID, r.UpstreamURL, s.Name, s.Detail)
			}
		}
	}
	_, err := fmt.Fprintf(w, "\n%d of %d upstreams ready\n", len(rows)-failing, len(rows))
	return err
}

var _ policy.Connections = (*specCollector)(nil)
