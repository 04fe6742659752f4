package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mcpgate/mcpgate/internal/store"
)

func init() {
	var batch int
	cmd := &cobra.Command{
		Use:   "rekey",
		Short: "Re-encrypt every stored secret with the newest key",
		Long: `rekey re-seals every stored secret (upstream tokens, client secrets, PKCE verifiers, sign-in records, ID tokens) that is not
sealed with the first key of MCPGATE_ENCRYPTION_KEYS, in batches. It runs online next to serving
instances: each value is swapped only if nobody changed it since it was read, so it never clobbers a
concurrent token refresh. If it stops half-way (crash, Ctrl-C) run it again: finished rows are not
touched twice.

Rotation: put the new key first and keep the old one after it, restart the gateways, run rekey, check
that it reports nothing left under the old key id, then remove the old key.

Progress goes to stderr. Exit status 1 means some values were sealed with a key that is not in the ring
(a lost key): their connections must be reconnected; everything else was re-sealed.`,
		Example: `  MCPGATE_ENCRYPTION_KEYS="k2026b:NEWKEY…,k2026a:OLDKEY…" mcpgate rekey
  mcpgate rekey --batch-size 500`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openState(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			errw := cmd.ErrOrStderr()
			newest := st.Ring.NewestKeyID()
			notice(errw, "rekey: sealing with key %q (%s database %s)", newest, st.Backend, st.Location)
			p, err := st.Store.Rekey(cmd.Context(), store.RekeyOptions{
				BatchSize: batch,
				Progress: func(p store.RekeyProgress) {
					notice(errw, "rekey: %s: scanned %d, re-sealed %d, changed concurrently %d, unreadable %d",
						p.Table, p.Scanned, p.Rekeyed, p.Skipped, p.Unreadable)
				},
			})
			if err != nil {
				return fmt.Errorf("rekey stopped (run it again to resume): %w", err)
			}
			counts, err := st.Store.SealedKeyIDs(cmd.Context())
			if err != nil {
				return err
			}
			ids := make([]string, 0, len(counts))
			for id := range counts {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			var parts []string
			for _, id := range ids {
				parts = append(parts, fmt.Sprintf("%s=%d", id, counts[id]))
			}
			notice(errw, "rekey: done: re-sealed %d values; stored secrets by key id: %s", p.Rekeyed, strings.Join(parts, " "))
			if p.Unreadable > 0 {
				notice(errw, "rekey: %d values are sealed with a key that is not in MCPGATE_ENCRYPTION_KEYS; "+
					"their connections must be reconnected (see docs/operations.md)", p.Unreadable)
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&batch, "batch-size", 200, "rows read per batch")
	addStateFlags(cmd)
	annotateEnv(cmd)
	rootCmd.AddCommand(cmd)
}
