package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
)

func init() {
	backup := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent copy of the embedded SQLite database, while the gateway serves",
		Long: `backup writes a consistent online copy of the SQLite database to FILE (which must not exist),
while serve keeps running on the same data dir: writes wait for the copy, reads do not. The copy
holds everything, secrets sealed as in the original: keep MCPGATE_ENCRYPTION_KEYS (or the data
dir's generated key) with it, or it cannot be read. To restore, stop the gateway and put the copy
in place of mcpgate.db (or point --database-url sqlite:FILE at it).

PostgreSQL is backed up with its own tools (pg_dump); see docs/operations.md.`,
		Example: `  mcpgate db backup /var/backups/mcpgate-$(date +%F).db --data-dir /var/lib/mcpgate`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openState(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			db, ok := st.Store.(*sqlstore.DB)
			if !ok || st.Backend != "sqlite" {
				return errors.New("db backup copies the embedded SQLite database; back PostgreSQL up with pg_dump (docs/operations.md)")
			}
			if err := sqlite.Backup(cmd.Context(), db, args[0]); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "backed up %s to %s\n", st.Location, args[0])
			return err
		},
	}
	addStateFlags(backup)
	annotateEnv(backup)
	dbCmd.AddCommand(backup)
}
