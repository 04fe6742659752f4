package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:     "version",
		Short:   "Print the mcpgate version",
		Example: "  mcpgate version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, d := commit, commitDate
			if c == "" {
				c = "unknown commit"
			}
			if d == "" {
				d = "unknown date"
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "mcpgate %s (commit %s, %s; %s, %s/%s)\n", version, c, d, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	})
}
