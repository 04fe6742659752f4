package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/mcpgate/mcpgate/internal/config"
)

func init() {
	var dir string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a Zuplo-style configuration and print every problem",
		Long: `validate loads zuplo.jsonc, config/*.oas.json and config/policies.json, checks every route and
policy option, and prints every problem found with its file and JSON path. It works offline and never
prints a secret. Exit status 0 means the configuration is valid, 1 that it is not.`,
		Example: "  mcpgate validate --config examples/quickstart",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadConfig(cmd, dir)
			if err != nil {
				return err
			}
			for _, w := range p.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: configuration is valid (%d routes, %d policies, %d warnings)\n", dir, len(p.Routes), len(p.Policies), len(p.Warnings))
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "config", ".", "project directory holding zuplo.jsonc and config/")
	annotateEnv(cmd)
	rootCmd.AddCommand(cmd)
}

// loadConfig loads the project; on configuration problems it prints each on its own line to
// stderr and returns an exitError(1).
func loadConfig(cmd *cobra.Command, dir string) (*config.Project, error) {
	p, err := config.Load(dir, os.LookupEnv)
	if err == nil {
		return p, nil
	}
	var probs config.Errors
	if !errors.As(err, &probs) {
		return nil, err
	}
	w := cmd.ErrOrStderr()
	for _, pr := range probs {
		fmt.Fprintln(w, pr.String())
	}
	fmt.Fprintf(w, "%d problem(s) in %s\n", len(probs), dir)
	return nil, exitError{code: 1}
}
