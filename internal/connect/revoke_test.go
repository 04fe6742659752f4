package connect_test

import (
	"testing"

	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/safehttp"
)

// TestRevokeAtAuthorizationServerWithoutAGateway: what `mcpgate connections revoke` does before it
// wipes a connection — it finds Hydra from the stored connection alone and revokes the refresh
// token there (RFC 7009), authenticating as the dynamically registered client.
func TestRevokeAtAuthorizationServerWithoutAGateway(t *testing.T) {
	c := newCluster(t, clusterOptions{instances: 1})
	c.connect("alice")
	conn := c.connection("alice")
	allow, err := safehttp.ParseAllowList("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	st := c.gws[0].Store

	if !c.hydra.Introspect(t, conn.RefreshToken.Reveal()).Active {
		t.Fatal("the refresh token is not active before the revocation")
	}
	if conn.AuthMethod != "none" {
		// A confidential DCR client: without the public URL its cached secret cannot be found,
		// and nothing is sent.
		if got := connect.RevokeAtAuthorizationServer(t.Context(), st, conn, connect.RevokeOptions{Allow: allow}); got != "skipped" {
			t.Fatalf("without the public URL: %s", got)
		}
	}

	got := connect.RevokeAtAuthorizationServer(t.Context(), st, conn, connect.RevokeOptions{PublicURL: c.gws[0].URL, BasePath: "/__mcpgate", Allow: allow})
	if got != "revoked" {
		t.Fatalf("revocation: %s", got)
	}
	if c.hydra.Introspect(t, conn.RefreshToken.Reveal()).Active {
		t.Fatal("the refresh token is still active at Hydra")
	}
	// Idempotent at the AS (RFC 7009: an invalid token is not an error).
	if got := connect.RevokeAtAuthorizationServer(t.Context(), st, conn, connect.RevokeOptions{PublicURL: c.gws[0].URL, BasePath: "/__mcpgate", Allow: allow}); got != "revoked" {
		t.Fatalf("second revocation: %s", got)
	}
}
