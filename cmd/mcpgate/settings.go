package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envPrefix is the prefix of every environment variable mcpgate reads.
const envPrefix = "MCPGATE_"

// envName is the variable that backs a flag: --data-dir → MCPGATE_DATA_DIR.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindEnv makes every flag of cmd that was not given on the command line take its value from the
// matching MCPGATE_* variable. The flag's help text names the variable.
func bindEnv(cmd *cobra.Command) error {
	var errs []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", envName(f.Name), err))
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("reading environment: %s", strings.Join(errs, "; "))
	}
	return nil
}

// annotateEnv appends "(env MCPGATE_X)" to every flag's usage so --help shows the variable.
func annotateEnv(cmd *cobra.Command) {
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || strings.Contains(f.Usage, envPrefix) {
			return
		}
		f.Usage += " (env " + envName(f.Name) + ")"
	})
}

func init() {
	// Every command reads MCPGATE_* for flags it was not given.
	rootCmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) }
}
