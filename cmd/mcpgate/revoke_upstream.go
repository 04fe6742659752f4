package main

import (
	"github.com/spf13/cobra"

	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/safehttp"
	"github.com/mcpgate/mcpgate/internal/store"
)

// revokeASFlags are the flags `connections revoke` needs to reach the authorization server
// (named as serve's, so MCPGATE_PUBLIC_URL and friends apply to both).
type revokeASFlags struct {
	publicURL, basePath, safeHTTPAllow string
}

func (f *revokeASFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.publicURL, "public-url", "", "the gateway's externally visible base URL (finds a dynamically registered client's secret for RFC 7009 revocation)")
	cmd.Flags().StringVar(&f.basePath, "base-path", gateway.DefaultBasePath, "path prefix of the gateway's own endpoints, as serve uses it")
	cmd.Flags().StringVar(&f.safeHTTPAllow, "safehttp-allow", "", "comma-separated hosts/CIDRs where the revocation request may use http and private addresses (development and tests only)")
}

// revoke asks the authorization server to revoke the connection's refresh token, best effort,
// and says what happened on stderr.
func (f *revokeASFlags) revoke(cmd *cobra.Command, st store.Store, k store.ConnectionKey) {
	conn, err := st.GetConnection(cmd.Context(), k)
	if err != nil || conn.Status != store.StatusActive {
		return // missing (reported by the local revoke), unreadable (lost key) or already dead
	}
	allow, err := safehttp.ParseAllowList(f.safeHTTPAllow)
	if err != nil {
		notice(cmd.ErrOrStderr(), "--safehttp-allow is invalid (%v); not contacting the authorization server", err)
		return
	}
	res := connect.RevokeAtAuthorizationServer(cmd.Context(), st, conn, connect.RevokeOptions{PublicURL: f.publicURL, BasePath: f.basePath, Allow: allow})
	notice(cmd.ErrOrStderr(), "authorization server revocation of the refresh token: %s", res)
}
