package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

// schemaVersioner is implemented by the SQL backends.
type schemaVersioner interface {
	SchemaVersion(ctx context.Context) (int, error)
}

// dbCmd is `mcpgate db`; its subcommands are added in db.go and db_backup.go.
var dbCmd = &cobra.Command{
	Use:     "db",
	Short:   "Manage the database",
	Example: "  mcpgate db migrate\n  mcpgate db backup /var/backups/mcpgate-$(date +%F).db",
	Args:    cobra.NoArgs,
}

func init() {
	db := dbCmd
	migrate := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the database schema to the newest version",
		Long: `migrate applies every schema migration this mcpgate knows and the database does not have yet,
each in its own transaction. It is safe to run on a live database and from several replicas at once.
Every command (serve included) migrates on start too; run this to do it ahead of a rollout.`,
		Example: `  mcpgate db migrate --data-dir /var/lib/mcpgate
  MCPGATE_DATABASE_URL=postgres://mcpgate@db.internal/mcpgate mcpgate db migrate`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openState(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			v := "?"
			if sv, ok := st.Store.(schemaVersioner); ok {
				n, err := sv.SchemaVersion(cmd.Context())
				if err != nil {
					return err
				}
				v = fmt.Sprint(n)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s database %s is at schema version %s\n", st.Backend, st.Location, v)
			return err
		},
	}
	addStateFlags(migrate)
	annotateEnv(migrate)
	db.AddCommand(migrate)
	rootCmd.AddCommand(db)
}
