package connect_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// deleteConnection sends DELETE {base}/connections/{id} as user to instance i.
func (c *cluster) deleteConnection(i int, user, id string) (int, map[string]any) {
	c.t.Helper()
	req, _ := http.NewRequest("DELETE", c.gws[i].Base+"/connections/"+id, nil)
	req.Header.Set(gatewaytest.UserHeader, user)
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// wantDisconnected asserts alice's connection was revoked by alice herself, at Hydra too.
func wantDisconnected(t *testing.T, c *cluster, before *store.Connection) {
	t.Helper()
	after := c.connection("alice")
	if after.Status != store.StatusRevoked || !after.AccessToken.IsZero() || !after.RefreshToken.IsZero() {
		t.Fatalf("after disconnect: status %s, tokens wiped %v", after.Status, after.AccessToken.IsZero() && after.RefreshToken.IsZero())
	}
	if in := c.hydra.Introspect(t, before.RefreshToken.Reveal()); in.Active {
		t.Error("the refresh token is still active at Hydra: RFC 7009 revocation did not happen")
	}
	evs, err := c.gws[0].Store.QueryAudit(t.Context(), store.AuditQuery{Subject: "test|alice", Event: audit.UpstreamConnectionRevoked})
	if err != nil || len(evs) != 1 || evs[0].ReasonCode != "user_disconnect" || evs[0].Actor != "test|alice" {
		t.Fatalf("revoke audit events: %+v %v", evs, err)
	}
	// The next call asks to connect again; the gateway never forwards a revoked token.
	if d := c.call(t.Context(), len(c.gws)-1, "alice", "whoami").errorData(); d == nil || d["authUrl"] == nil {
		t.Fatalf("after disconnect: want connect-required, got %v", d)
	}
}

func TestUserDisconnectsWithTheirGatewayCredential(t *testing.T) {
	c := newCluster(t, clusterOptions{instances: 2})
	c.connect("alice")
	before := c.connection("alice")
	// Warm instance 1's cache: the disconnect on instance 0 must still reach it through the store.
	if a := c.call(t.Context(), 1, "alice", "whoami"); a.text() != "subject=alice" {
		t.Fatal(a)
	}

	// bob has nothing to disconnect, and cannot touch alice's connection.
	if status, m := c.deleteConnection(0, "bob", "hydra-up"); status != 200 || m["disconnected"] != false {
		t.Fatalf("bob: %d %v", status, m)
	}
	if c.connection("alice").Status != store.StatusActive {
		t.Fatal("bob's DELETE changed alice's connection")
	}
	if status, _ := c.deleteConnection(0, "alice", "no-such-upstream"); status != 404 {
		t.Fatalf("unknown upstream: %d", status)
	}

	status, m := c.deleteConnection(0, "alice", "hydra-up")
	if status != 200 || m["disconnected"] != true || m["upstreamRevocation"] != "revoked" {
		t.Fatalf("alice: %d %v", status, m)
	}
	wantDisconnected(t, c, before)
	// Again: nothing left to do, no second audit event.
	if status, m := c.deleteConnection(1, "alice", "hydra-up"); status != 200 || m["disconnected"] != false {
		t.Fatalf("second DELETE: %d %v", status, m)
	}
	if n := c.audits("alice", audit.UpstreamConnectionRevoked); n != 1 {
		t.Fatalf("%d revoke audit events after two DELETEs", n)
	}
}

var disconnectLinkRe = regexp.MustCompile(`<a href="([^"]+/disconnect\?t=[^"]+)">Disconnect</a>`)

func TestDisconnectLinkOnTheResultPage(t *testing.T) {
	c := newCluster(t, clusterOptions{instances: 1})
	page := c.connect("alice")
	m := disconnectLinkRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no disconnect link on the result page:\n%s", page)
	}
	link := htmlUnescape(m[1])
	before := c.connection("alice")

	// Another browser may open it (the person may have switched); viewing changes nothing.
	b := newBrowser(t)
	resp, confirm := b.get(link)
	if resp.StatusCode != 200 || !strings.Contains(confirm, "Disconnect Hydra Upstream") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("confirm page: %d %s", resp.StatusCode, confirm)
	}
	if c.connection("alice").Status != store.StatusActive {
		t.Fatal("viewing the confirm page disconnected")
	}
	action := strings.SplitN(link, "?", 2)[0]
	token := func() string { u, _ := url.Parse(link); return u.Query().Get("t") }()
	csrf := csrfRe.FindStringSubmatch(confirm)
	if csrf == nil {
		t.Fatalf("no CSRF token on the confirm page:\n%s", confirm)
	}

	post := func(form url.Values, origin string) (*http.Response, string) { return b.post(action, form, origin) }
	// Refused: no CSRF token; another site's form; a connect link's ticket in place of the token.
	if resp, _ := post(url.Values{"t": {token}}, ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("without CSRF token: %d", resp.StatusCode)
	}
	if resp, _ := post(url.Values{"t": {token}, "csrf": {htmlUnescape(csrf[1])}}, "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin post: %d", resp.StatusCode)
	}
	connectLink, _ := url.Parse(authURLOf(t, c.call(t.Context(), 0, "bob", "whoami").json()))
	if resp, _ := post(url.Values{"t": {connectLink.Query().Get("browserTicket")}, "csrf": {htmlUnescape(csrf[1])}}, ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a connect ticket as disconnect token: %d", resp.StatusCode)
	}
	if c.connection("alice").Status != store.StatusActive {
		t.Fatal("a refused post disconnected")
	}

	resp, done := post(url.Values{"t": {token}, "csrf": {htmlUnescape(csrf[1])}}, c.gws[0].URL)
	if resp.StatusCode != 200 || !strings.Contains(done, "is disconnected") {
		t.Fatalf("disconnect: %d %s", resp.StatusCode, done)
	}
	wantDisconnected(t, c, before)
}
