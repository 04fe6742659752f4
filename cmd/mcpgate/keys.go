package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// parseExpires reads --expires: a duration from now (90m, 720h, 30d) or an RFC 3339 time.
func parseExpires(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		if !t.After(now) {
			return time.Time{}, fmt.Errorf("--expires: %s is in the past", s)
		}
		return t, nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, perr := strconv.Atoi(days)
		d, err = time.Duration(n)*24*time.Hour, perr
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("--expires: want a positive duration (90m, 720h, 30d) or an RFC 3339 time, got %q", s)
	}
	return now.Add(d), nil
}

func init() {
	keys := &cobra.Command{
		Use:   "keys",
		Short: "Manage gateway API keys and encryption keys",
		Example: `  mcpgate keys create --consumer alice
  mcpgate keys list
  mcpgate keys generate-encryption-key`,
		Args: cobra.NoArgs,
	}

	var genID string
	gen := &cobra.Command{
		Use:   "generate-encryption-key",
		Short: "Print a new encryption key for MCPGATE_ENCRYPTION_KEYS",
		Long: `generate-encryption-key prints a fresh AES-256 key as "kid:base64key" on stdout. It touches no
database. Keep it in your secret manager: whoever has it can decrypt stored upstream tokens, and if it is
lost the connections it sealed must be reconnected. To rotate, put the new key first and the old one
after it (comma-separated), then run "mcpgate rekey".`,
		Example: `  MCPGATE_ENCRYPTION_KEYS=$(mcpgate keys generate-encryption-key)
  mcpgate keys generate-encryption-key --id k2026b`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			line, err := vault.GenerateKey(genID, func() string { return time.Now().UTC().Format("20060102") })
			if err != nil {
				return err
			}
			notice(cmd.ErrOrStderr(), "new encryption key (set MCPGATE_ENCRYPTION_KEYS to it; put it first to rotate, then run mcpgate rekey):")
			_, err = fmt.Fprintln(cmd.OutOrStdout(), line)
			return err
		},
	}
	gen.Flags().StringVar(&genID, "id", "", "key id (letters, digits, _ and -; default k<date><random>)")

	var cf struct {
		consumer, metadata, expires string
		admin                       bool
	}
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an API key and print it once",
		Long: `create makes an API key for a consumer and prints only the key, on one line of stdout; notices go to
stderr. The key is shown once: only its SHA-256 is stored. The api-key-inbound policy authenticates the
caller as subject "apikey|<consumer>" with the metadata as user data. Works on a fresh data dir, before
serve ever ran, without --config.

With --admin the key signs in to the setup UI and the admin API, and only there: MCP routes refuse it
(401 admin_key_on_mcp_route). Give MCP clients keys created without --admin.`,
		Example: `  mcpgate keys create --consumer alice
  KEY=$(mcpgate keys create --consumer ci-bot --metadata '{"team":"platform"}' --expires 30d)
  mcpgate keys create --consumer ops --admin --expires 2027-01-01T00:00:00Z`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(cf.consumer) == "" {
				return errors.New("--consumer is required")
			}
			var meta json.RawMessage
			if cf.metadata != "" {
				var obj map[string]any
				if err := json.Unmarshal([]byte(cf.metadata), &obj); err != nil {
					return errors.New("--metadata: must be a JSON object")
				}
				meta = json.RawMessage(cf.metadata)
			}
			now := time.Now()
			exp, err := parseExpires(cf.expires, now)
			if err != nil {
				return err
			}
			st, err := openState(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			id, key, hash, err := store.NewAPIKey()
			if err != nil {
				return err
			}
			if err := st.Store.CreateAPIKey(cmd.Context(), &store.APIKey{
				ID: id, Consumer: cf.consumer, Hash: hash, Metadata: meta, Admin: cf.admin, CreatedAt: now, ExpiresAt: exp,
			}); err != nil {
				return err
			}
			_ = st.Store.AppendAudit(cmd.Context(), &store.AuditEvent{
				Event: "api_key.created", Outcome: "success", Subject: "apikey|" + cf.consumer, Actor: "cli",
				Details: json.RawMessage(fmt.Sprintf(`{"keyId":%q,"admin":%t}`, id, cf.admin)),
			})
			expNote := "never expires"
			if !exp.IsZero() {
				expNote = "expires " + exp.UTC().Format(time.RFC3339)
			}
			notice(cmd.ErrOrStderr(), "created API key %s for consumer %q (%s); it is shown once, store it now", id, cf.consumer, expNote)
			_, err = fmt.Fprintln(cmd.OutOrStdout(), key)
			return err
		},
	}
	create.Flags().StringVar(&cf.consumer, "consumer", "", "consumer name (the request user's sub)")
	create.Flags().StringVar(&cf.metadata, "metadata", "", "JSON object given to policies as the request user's data")
	create.Flags().StringVar(&cf.expires, "expires", "", "expiry: a duration (720h, 30d) or an RFC 3339 time (default: never)")
	create.Flags().BoolVar(&cf.admin, "admin", false, "the key signs in to the admin API and setup UI only; MCP routes refuse it")

	var listOutput string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List API keys (never the keys themselves)",
		Example: "  mcpgate keys list\n  mcpgate keys list --output json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openState(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			ks, err := st.Store.ListAPIKeys(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if listOutput == "json" {
				type view struct {
					ID        string          `json:"id"`
					Consumer  string          `json:"consumer"`
					Admin     bool            `json:"admin"`
					Metadata  json.RawMessage `json:"metadata,omitempty"`
					CreatedAt time.Time       `json:"createdAt"`
					ExpiresAt *time.Time      `json:"expiresAt,omitempty"`
					RevokedAt *time.Time      `json:"revokedAt,omitempty"`
				}
				views := make([]view, 0, len(ks))
				for _, k := range ks {
					views = append(views, view{k.ID, k.Consumer, k.Admin, k.Metadata, k.CreatedAt, timePtr(k.ExpiresAt), timePtr(k.RevokedAt)})
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(views)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCONSUMER\tADMIN\tCREATED\tEXPIRES\tREVOKED\tMETADATA")
			for _, k := range ks {
				meta := string(k.Metadata)
				if meta == "" {
					meta = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\t%s\t%s\n", k.ID, k.Consumer, k.Admin, fmtTime(k.CreatedAt),
					fmtTime(k.ExpiresAt), fmtTime(k.RevokedAt), meta)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVarP(&listOutput, "output", "o", "text", "output format: text or json")

	revoke := &cobra.Command{
		Use:     "revoke KEY_ID",
		Short:   "Revoke an API key",
		Long:    "revoke marks the key revoked; gateways refuse it once their key cache (cacheTtlSeconds) expires.",
		Example: "  mcpgate keys revoke key_3f9a1c0de4b27781",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openState(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.Store.RevokeAPIKey(cmd.Context(), args[0]); err != nil {
				return notFoundHint(err, "API key "+args[0])
			}
			_ = st.Store.AppendAudit(cmd.Context(), &store.AuditEvent{
				Event: "api_key.revoked", Outcome: "success", Actor: "cli",
				Details: json.RawMessage(fmt.Sprintf(`{"keyId":%q}`, args[0])),
			})
			notice(cmd.ErrOrStderr(), "revoked API key %s", args[0])
			return nil
		},
	}

	for _, c := range []*cobra.Command{create, list, revoke} {
		addStateFlags(c)
	}
	for _, c := range []*cobra.Command{gen, create, list, revoke} {
		annotateEnv(c)
		keys.AddCommand(c)
	}
	rootCmd.AddCommand(keys)
}
