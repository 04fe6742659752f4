package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/subject"
)

// connectionView is what the CLI shows of a connection: never a token, only whether one is stored.
type connectionView struct {
	UpstreamID      string           `json:"upstreamId"`
	Mode            store.Mode       `json:"mode"`
	Subject         string           `json:"subject"`
	Status          store.Status     `json:"status"`
	HasAccessToken  bool             `json:"hasAccessToken"`
	HasRefreshToken bool             `json:"hasRefreshToken"`
	Expiry          *time.Time       `json:"expiry,omitempty"`
	Scopes          []string         `json:"scopes"`
	Issuer          string           `json:"issuer,omitempty"`
	TokenEndpoint   string           `json:"tokenEndpoint,omitempty"`
	ClientID        string           `json:"clientId,omitempty"`
	AuthMethod      string           `json:"authMethod,omitempty"`
	Resource        string           `json:"resource,omitempty"`
	LastError       *store.LastError `json:"lastError,omitempty"`
	LastRefreshAt   *time.Time       `json:"lastRefreshAt,omitempty"`
	ConnectedBy     string           `json:"connectedBy,omitempty"`
	CreatedAt       time.Time        `json:"createdAt"`
	UpdatedAt       time.Time        `json:"updatedAt"`
	Version         int64            `json:"version"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func viewOf(c store.Connection) connectionView {
	return connectionView{
		UpstreamID: c.UpstreamID, Mode: c.Mode, Subject: c.Subject, Status: c.Status,
		HasAccessToken: c.HasAccessToken, HasRefreshToken: c.HasRefreshToken, Expiry: timePtr(c.Expiry),
		Scopes: c.Scopes, Issuer: c.Issuer, TokenEndpoint: c.TokenEndpoint, ClientID: c.ClientID,
		AuthMethod: c.AuthMethod, Resource: c.Resource, LastError: c.LastError, LastRefreshAt: timePtr(c.LastRefreshAt),
		ConnectedBy: c.ConnectedBy, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, Version: c.Version,
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// connectionKeyArgs reads UPSTREAM [SUBJECT] and --shared.
func connectionKeyArgs(args []string, shared bool) (store.ConnectionKey, error) {
	k := store.ConnectionKey{UpstreamID: args[0], Mode: store.ModeUser}
	switch {
	case shared && len(args) == 1:
		k.Mode, k.Subject = store.ModeShared, subject.Shared.String()
	case !shared && len(args) == 2:
		k.Subject = args[1]
	default:
		return k, errors.New("give UPSTREAM SUBJECT for a user connection, or UPSTREAM --shared")
	}
	return k, nil
}

// findConnection reads a connection's metadata without decrypting it (works with a lost key).
func findConnection(cmd *cobra.Command, s store.Connections, k store.ConnectionKey) (*store.Connection, error) {
	list, err := s.ListConnections(cmd.Context(), store.ConnectionFilter{UpstreamID: k.UpstreamID, Subject: k.Subject})
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		if c.Mode == k.Mode {
			return &c, nil
		}
	}
	return nil, fmt.Errorf("no %s connection to %q for subject %q", k.Mode, k.UpstreamID, k.Subject)
}

func init() {
	conns := &cobra.Command{
		Use:   "connections",
		Short: "List, show and revoke users' upstream connections (tokens are never printed)",
		Long: `connections reads the upstream OAuth connections mcpgate holds. Subjects are namespaced by how the
user was authenticated: "apikey|<consumer>" or "jwt:<issuer>|<sub>"; a shared connection's subject is
"shared". No command prints a token or any other secret.`,
		Example: `  mcpgate connections list --status reconsent_required
  mcpgate connections revoke linear 'apikey|alice'`,
		Args: cobra.NoArgs,
	}

	var lf struct {
		upstream, subject, status, output string
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List connections",
		Example: `  mcpgate connections list
  mcpgate connections list --upstream linear --status reconsent_required
  mcpgate connections list --subject 'apikey|alice' --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openState(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			cs, err := st.Store.ListConnections(cmd.Context(), store.ConnectionFilter{
				UpstreamID: lf.upstream, Subject: lf.subject, Status: store.Status(lf.status),
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if lf.output == "json" {
				views := make([]connectionView, 0, len(cs))
				for _, c := range cs {
					views = append(views, viewOf(c))
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(views)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "UPSTREAM\tMODE\tSUBJECT\tSTATUS\tEXPIRES\tSCOPES\tUPDATED\tLAST ERROR")
			for _, c := range cs {
				lastErr := "-"
				if c.LastError != nil {
					lastErr = c.LastError.Code + " at " + fmtTime(c.LastError.At)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.UpstreamID, c.Mode, c.Subject, c.Status,
					fmtTime(c.Expiry), strings.Join(c.Scopes, " "), fmtTime(c.UpdatedAt), lastErr)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&lf.upstream, "upstream", "", "only this upstream id")
	list.Flags().StringVar(&lf.subject, "subject", "", "only this namespaced subject")
	list.Flags().StringVar(&lf.status, "status", "", "only this status: active, reconsent_required or revoked")
	list.Flags().StringVarP(&lf.output, "output", "o", "text", "output format: text or json")

	var showShared bool
	show := &cobra.Command{
		Use:   "show UPSTREAM [SUBJECT]",
		Short: "Show one connection (as JSON, without its tokens)",
		Example: `  mcpgate connections show linear 'apikey|alice'
  mcpgate connections show github --shared`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := connectionKeyArgs(args, showShared)
			if err != nil {
				return err
			}
			st, err := openState(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			c, err := findConnection(cmd, st.Store, k)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(viewOf(*c))
		},
	}
	show.Flags().BoolVar(&showShared, "shared", false, "the upstream's shared connection")

	var revokeShared bool
	var revokeAS revokeASFlags
	revoke := &cobra.Command{
		Use:   "revoke UPSTREAM [SUBJECT]",
		Short: "Revoke a connection: its tokens are wiped, the row and its history are kept",
		Long: `revoke marks a connection revoked and wipes its stored tokens, so the next request of that user
is asked to connect again. First, when the tokens can be read, it asks the authorization server that
issued them to revoke the refresh token (RFC 7009, when the server offers a revocation endpoint; a
dynamically registered client's secret is found with --public-url and --base-path, as serve uses them).
That step is best effort: the local revoke happens whatever it answers. It works even when the key
that sealed the tokens was lost (then only locally).`,
		Example: `  mcpgate connections revoke linear 'apikey|alice'
  mcpgate connections revoke github --shared
  MCPGATE_PUBLIC_URL=https://mcp.example.com mcpgate connections revoke linear 'apikey|alice'`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := connectionKeyArgs(args, revokeShared)
			if err != nil {
				return err
			}
			st, err := openState(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			revokeAS.revoke(cmd, st.Store, k)
			// Compare-and-swap on the metadata read (no decryption), retried if a refresh wins the race.
			for attempt := 0; ; attempt++ {
				c, err := findConnection(cmd, st.Store, k)
				if err != nil {
					return err
				}
				c.Status, c.AccessToken, c.RefreshToken = store.StatusRevoked, "", ""
				c.Expiry = time.Time{}
				err = st.Store.PutConnection(cmd.Context(), c)
				if errors.Is(err, store.ErrConflict) && attempt < 100 {
					continue
				}
				if err != nil {
					return err
				}
				break
			}
			_ = st.Store.AppendAudit(cmd.Context(), &store.AuditEvent{
				Event: "connection.revoked", Outcome: "success", ReasonCode: "cli_revoke",
				UpstreamID: k.UpstreamID, Subject: k.Subject, Actor: "cli",
			})
			notice(cmd.ErrOrStderr(), "revoked %s connection to %q for %q", k.Mode, k.UpstreamID, k.Subject)
			return nil
		},
	}
	revoke.Flags().BoolVar(&revokeShared, "shared", false, "the upstream's shared connection")
	revokeAS.register(revoke)

	for _, c := range []*cobra.Command{list, show, revoke} {
		addStateFlags(c)
		annotateEnv(c)
		conns.AddCommand(c)
	}
	rootCmd.AddCommand(conns)
}
