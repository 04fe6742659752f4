package connect

import (
	"context"
	"time"

	"github.com/mcpgate/mcpgate/internal/safehttp"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/upstream"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// RevokeOptions say how a process without a running gateway (the CLI) reaches an authorization
// server to revoke a connection's grant.
type RevokeOptions struct {
	// PublicURL and BasePath are the gateway's (serve --public-url, --base-path): with the
	// upstream id they name the redirect URI under which a dynamically registered client and its
	// secret are cached. Without PublicURL only public clients (auth method none) and ClientSecret
	// can authenticate.
	PublicURL, BasePath string
	// ClientSecret is a manually configured client's secret (the policy's clientSecret), if any.
	ClientSecret vault.Secret
	// Allow is MCPGATE_SAFEHTTP_ALLOW: hosts/CIDRs where http and private addresses are allowed.
	Allow safehttp.AllowList
	// Timeout bounds discovery and the revocation request (10 s when zero).
	Timeout time.Duration
}

// RevokeAtAuthorizationServer revokes conn's refresh token (RFC 7009) at the authorization server
// that issued it, without a running gateway: `mcpgate connections revoke` calls it before it wipes
// the stored tokens. conn must be read with its tokens (store.Connections.GetConnection). The
// authorization server is found from the connection's resource (protected resource metadata,
// then the AS metadata) and must still be conn.Issuer; the client authenticates as it did when
// the grant was issued. It never fails the caller: it returns what happened, as RevokeResult's
// UpstreamRevocation does — "revoked", "not_supported" (no revocation_endpoint), "skipped" (no
// refresh token, the issuer moved, the client's secret is unknown) or "failed: <code>".
func RevokeAtAuthorizationServer(ctx context.Context, regs store.ClientRegistrations, conn *store.Connection, o RevokeOptions) string {
	if conn.RefreshToken.IsZero() || conn.Resource == "" {
		return "skipped"
	}
	if o.Timeout <= 0 {
		o.Timeout = revokeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	cache := storeRegistrations{regs}
	e := upstream.New(upstream.Options{Allow: o.Allow, Registrations: cache, HTTPTimeout: o.Timeout})
	up := upstream.Upstream{ID: conn.UpstreamID, URL: conn.Resource, DisplayName: conn.UpstreamID}
	d, err := e.Discover(ctx, up, "")
	if err != nil || d.AS.Issuer != conn.Issuer {
		return "skipped"
	}
	if d.AS.RevocationEndpoint == "" {
		return "not_supported"
	}
	secret := o.ClientSecret
	if secret.IsZero() && conn.AuthMethod != upstream.AuthNone && conn.AuthMethod != "" && o.PublicURL != "" {
		ep := upstream.Endpoints{PublicURL: o.PublicURL, BasePath: o.BasePath}
		reg, err := cache.GetRegistration(ctx, upstream.RegistrationKey{Issuer: conn.Issuer, UpstreamID: conn.UpstreamID, RedirectURI: ep.RedirectURI(conn.UpstreamID)})
		if err == nil && reg.ClientID == conn.ClientID {
			secret = reg.ClientSecret
		}
	}
	if secret.IsZero() && conn.AuthMethod != upstream.AuthNone && conn.AuthMethod != "" {
		return "skipped"
	}
	err = e.Revoke(ctx, up, upstream.RevokeRequest{Endpoint: d.AS.RevocationEndpoint, ClientID: conn.ClientID, ClientSecret: secret,
		AuthMethod: conn.AuthMethod, Token: conn.RefreshToken, TokenTypeHint: "refresh_token"})
	if err != nil {
		return "failed: " + upstream.CodeOf(err)
	}
	return "revoked"
}
