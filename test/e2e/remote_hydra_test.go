package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testutil/nodeenv"
)

// TestMCPRemoteSignInHydra is mcp-remote 0.15.1 — the bridge desktop clients use — doing the whole
// OAuth dance against mcpgate with Ory Hydra as the organisation's IdP: the 401, discovery, DCR,
// the login at Hydra, the gateway's consent page where the person connects the upstream (behind
// a second Hydra), Authorize, the code on mcp-remote's loopback callback, then tools/call reaching
// the upstream with the person's own upstream token; after the gateway's access token expires,
// mcp-remote refreshes on the 401 and the call succeeds; after the grant is revoked, the call
// fails and mcp-remote asks for a new authorization.
func TestMCPRemoteSignInHydra(t *testing.T) {
	env := nodeenv.Get(t)
	const accessTTL = 15 // seconds: the refresh below waits it out
	lin := signInPerson{idp: "lin", upstream: "lin-at-upstream"}
	s := startSignInSetup(t, lin, accessTTL)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	dir := t.TempDir()
	configDir, opened, browserScript := filepath.Join(dir, "mcp-auth"), filepath.Join(dir, "opened-urls"), filepath.Join(dir, "browser.sh")
	if err := os.WriteFile(browserScript, []byte("#!/bin/sh\nprintf '%s\\n' \"$1\" >> \"$MCPGATE_E2E_OPENED\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	mr := startMCPRemote(t, ctx, env, []string{"MCP_REMOTE_CONFIG_DIR=" + configDir, "BROWSER=" + browserScript, "MCPGATE_E2E_OPENED=" + opened}, s.url, port)

	i := mr.waitStderr(0, "Please authorize this client by visiting:")
	authURL := strings.TrimSpace(mr.stderrLine(i + 1))
	if !strings.HasPrefix(authURL, strings.TrimSuffix(s.url, signInPath)+"/__mcpgate/oauth/authorize"+signInPath+"?") {
		t.Fatalf("mcp-remote's authorization URL %q is not the route's authorization endpoint", authURL)
	}
	s.signInInBrowser(t, authURL, signInExpect{person: lin, clientName: "MCP CLI Proxy", redirectURI: "http://localhost:" + port + "/oauth/callback", connect: true, foreignRedirect: true})
	mr.waitStderr(i, "Proxy established successfully")

	mr.initialize("remote-hydra-test")
	whoami := func() rpcReply {
		return mr.call("tools/call", map[string]any{"name": "whoami", "arguments": map[string]any{}})
	}
	var res toolResult
	whoami().decode(t, "whoami", &res)
	if res.IsError || res.text() != "subject="+lin.upstream {
		t.Fatalf("whoami through mcp-remote = %+v, want the person's upstream subject", res)
	}
	s.checkUpstream(t, lin.upstream)
	stored := readRemoteTokens(t, configDir)

	// Refresh after expiry: the next call gets 401 from the gateway; mcp-remote refreshes and retries.
	time.Sleep(time.Duration(accessTTL+1) * time.Second) // the token's real lifetime, nothing to observe before it ends
	whoami().decode(t, "whoami after the access token expired", &res)
	if res.IsError || res.text() != "subject="+lin.upstream {
		t.Fatalf("whoami after expiry = %+v", res)
	}
	// mcp-remote refreshes a minute before expiry, so with 15-second tokens it refreshes before
	// every call; the gateway rotates the refresh token at most once per 30 s (signin.RefreshGrace).
	refreshed := readRemoteTokens(t, configDir)
	if refreshed.AccessToken == stored.AccessToken {
		t.Fatal("mcp-remote did not store a refreshed access token")
	}
	if !strings.Contains(s.gw.Logs(), "mcp_auth_downstream_token_refreshed") {
		t.Error("the gateway logged no refresh")
	}

	// Revoke the grant (RFC 7009 with mcp-remote's own refresh token): the next call fails and
	// mcp-remote starts a new authorization instead of reaching the upstream.
	if st := s.revoke(t, refreshed.RefreshToken, refreshed.clientID(t, configDir)); st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	// mcp-remote's refresh is refused (invalid_grant), its call gets 401 and it asks the person to
	// authorize again; the call waits for that, so it is sent without waiting for an answer.
	lines, _ := mr.stderr.snapshot()
	seenBefore := len(s.up.Seen())
	mr.nextID++
	mr.send(map[string]any{"id": mr.nextID, "method": "tools/call", "params": map[string]any{"name": "whoami", "arguments": map[string]any{}}})
	mr.waitStderr(len(lines), "Please authorize this client by visiting:")
	if n := len(s.up.Seen()); n != seenBefore {
		t.Fatalf("the upstream authorized %d requests after the revocation", n-seenBefore)
	}
	if !strings.Contains(s.gw.Logs(), `"reasonCode":"revoked"`) {
		t.Error("the gateway did not refuse the revoked grant's access token")
	}
}

// remoteTokens is what mcp-remote stores after a sign-in.
type remoteTokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func readRemoteTokens(t *testing.T, configDir string) remoteTokens {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(configDir, "*", "*_tokens.json"))
	if len(files) != 1 {
		t.Fatalf("mcp-remote stored tokens %v, want one file", files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var tok remoteTokens
	if err := json.Unmarshal(raw, &tok); err != nil || !strings.HasPrefix(tok.AccessToken, "mcpgate_at_") || !strings.HasPrefix(tok.RefreshToken, "mcpgate_rt_") {
		t.Fatalf("mcp-remote's stored tokens are not the gateway's (%v)", err)
	}
	return tok
}

// clientID is the client id mcp-remote registered (its *_client_info.json).
func (remoteTokens) clientID(t *testing.T, configDir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(configDir, "*", "*_client_info.json"))
	if len(files) != 1 {
		t.Fatalf("mcp-remote's client registrations %v, want one", files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(raw, &info); err != nil || !strings.HasPrefix(info.ClientID, "dcr:") {
		t.Fatalf("mcp-remote's client info: %s (%v)", raw, err)
	}
	return info.ClientID
}
