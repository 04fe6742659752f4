// Command mcpgate is a self-hosted MCP gateway: it reads Zuplo-style config, authenticates callers,
// federates OAuth to upstream MCP servers per user, and proxies Streamable HTTP.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version, commit and commitDate are set at build time (scripts/release) with
// -ldflags "-X main.version=… -X main.commit=… -X main.commitDate=…".
var (
	version    = "dev"
	commit     = ""
	commitDate = ""
)

// exitError carries a process exit code for errors that were already reported.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// rootCmd is the CLI. Subcommands add themselves in init() of their own file.
var rootCmd = &cobra.Command{
	Use:   "mcpgate",
	Short: "Self-hosted MCP gateway with per-user upstream OAuth",
	Long: `mcpgate sits between MCP clients and upstream MCP servers. It reads Zuplo-compatible
config (zuplo.jsonc, config/routes.oas.json, config/policies.json), authenticates the caller,
injects that caller's own upstream OAuth credential and proxies Streamable HTTP.

Every flag can also be set with an MCPGATE_* environment variable (MCPGATE_LISTEN, MCPGATE_DATA_DIR, …).`,
	Example: `  mcpgate serve --demo --config examples/quickstart   # try it
  mcpgate validate --config ./my-zuplo-project          # check a configuration
  mcpgate keys create --consumer alice                  # issue a gateway API key`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := rootCmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "mcpgate:", err)
		os.Exit(1)
	}
}
