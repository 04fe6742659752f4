package connect_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/testutil/mcpupstream"
)

// The tests of this file check what binds a connect link to a person: with the default binding
// (connect.BindingSession) the connect, consent and disconnect pages of an API-key user act only
// in a browser signed in, on the gateway's API-key sign-in form, as that user. Everything is real
// except the browser, played by a cookie-keeping HTTP client that posts forms as Chromium posts
// the gateway's own forms: an in-process gateway (gatewaytest.New, the wiring of `mcpgate serve`)
// on a SQLite file, api-key-inbound before mcp-token-exchange-inbound (user-oauth, DCR) in front
// of a Go SDK MCP server (mcpupstream) behind a real Ory Hydra.

// bindingEnv is the gateway of these tests.
type bindingEnv struct {
	t      *testing.T
	hydra  *hydra.Server
	up     *mcpupstream.Server
	gw     *gatewaytest.Gateway
	dbPath string
	keys   map[string]string // API key by consumer
}

const (
	bindingUpstream = "tracker"
	bindingRoute    = "/mcp/tracker"
	bindingOp       = "tracker-mcp"
)

// newBindingEnv starts Hydra, the upstream and a gateway with binding mode b ("" is the
// default), and creates API keys for alice and bob.
func newBindingEnv(t *testing.T, b connect.Binding) *bindingEnv {
	t.Helper()
	h := hydra.Start(t, hydra.Options{Scopes: []string{"mcp"}})
	up := mcpupstream.Start(t, mcpupstream.Options{Issuer: h.PublicURL, IntrospectURL: h.AdminURL + "/admin/oauth2/introspect"})
	dir := gatewaytest.Project(t, map[string]string{
		"config/policies.json": `{"policies":[
	 {"name":"api-key","policyType":"api-key-inbound","handler":{"module":"$import(@zuplo/runtime)","export":"ApiKeyInboundPolicy","options":{"cacheTtlSeconds":0}}},
	 {"name":"mcp-token-exchange-tracker","policyType":"mcp-token-exchange-inbound","handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpTokenExchangeInboundPolicy",
	   "options":{"id":"` + bindingUpstream + `","displayName":"Tracker","summary":"A Go SDK server behind Ory Hydra.","authMode":"user-oauth","scopes":["mcp","offline_access"]}}}]}`,
		"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{
	 "` + bindingRoute + `":{"get,post":{"operationId":"` + bindingOp + `","x-zuplo-route":{"corsPolicy":"none",
	   "handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"` + up.URL + `"}},
	   "policies":{"inbound":["api-key","mcp-token-exchange-tracker"]}}}}}}`,
	})
	ring := gatewaytest.Ring(t)
	dbPath := filepath.Join(t.TempDir(), "mcpgate.db")
	st := gatewaytest.Store(t, dbPath, ring)
	gw := gatewaytest.New(t, gatewaytest.Options{Dir: dir, Store: st, Ring: ring, Binding: b})
	e := &bindingEnv{t: t, hydra: h, up: up, gw: gw, dbPath: dbPath, keys: map[string]string{}}
	for _, c := range []string{"alice", "bob"} {
		id, k, hash, err := store.NewAPIKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateAPIKey(context.Background(), &store.APIKey{ID: id, Consumer: c, Hash: hash, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		e.keys[c] = k
	}
	return e
}

// call posts a tools/call as consumer (with their API key) and returns the JSON-RPC answer.
func (e *bindingEnv) call(consumer, tool string) map[string]any {
	e.t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
	req, _ := http.NewRequest("POST", e.gw.URL+bindingRoute, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	req.Header.Set("Authorization", "Bearer "+e.keys[consumer])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := readBody(resp)
	var m map[string]any
	if err == nil {
		err = json.Unmarshal([]byte(b), &m)
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("tools/call as %s: HTTP %d %v %s", consumer, resp.StatusCode, err, b)
	}
	return m
}

// link is consumer's connect link: the authUrl of the connect-required answer to their call.
func (e *bindingEnv) link(consumer string) string {
	e.t.Helper()
	return authURLOf(e.t, e.call(consumer, "whoami"))
}

// whoami is the upstream's answer to consumer's whoami call ("" when it is not a tool result).
func (e *bindingEnv) whoami(consumer string) string {
	e.t.Helper()
	res, _ := e.call(consumer, "whoami")["result"].(map[string]any)
	content, _ := res["content"].([]any)
	if len(content) == 0 {
		return ""
	}
	c, _ := content[0].(map[string]any)
	s, _ := c["text"].(string)
	return s
}

// loginURL is the gateway's API-key sign-in form coming back to returnTo.
func (e *bindingEnv) loginURL(returnTo string) string {
	return e.gw.Base + "/oauth/login/api-key?" + url.Values{"return": {returnTo}}.Encode()
}

// signIn signs browser b in as consumer on the API-key sign-in form that comes back to returnTo:
// the form is fetched (it sets the browser's binding cookie and carries the form's CSRF field),
// then the key is posted as a same-origin form post; the gateway answers 303 back to returnTo.
func (e *bindingEnv) signIn(b *browser, consumer, returnTo string) {
	e.t.Helper()
	resp, form := b.get(e.loginURL(returnTo))
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("API-key sign-in page: %d %s", resp.StatusCode, form)
	}
	m := csrfRe.FindStringSubmatch(form)
	if m == nil {
		e.t.Fatalf("no CSRF field on the API-key sign-in page:\n%s", form)
	}
	resp, body := b.post(e.gw.Base+"/oauth/login/api-key", url.Values{"csrf": {htmlUnescape(m[1])}, "return": {returnTo}, "key": {e.keys[consumer]}}, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != returnTo {
		e.t.Fatalf("signing in as %s: %d to %q, want 303 to %q\n%s", consumer, resp.StatusCode, resp.Header.Get("Location"), returnTo, body)
	}
}

// consentForm opens link in b (which must be signed in as the link's person) and returns the
// consent form's fields with decision approve.
func (e *bindingEnv) consentForm(b *browser, link string) url.Values {
	e.t.Helper()
	resp, page := b.get(link)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("consent page: %d %s", resp.StatusCode, page)
	}
	form := url.Values{"decision": {"approve"}}
	for _, m := range hiddenRe.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		e.t.Fatalf("no CSRF field on the consent page:\n%s", page)
	}
	form.Set("csrf", htmlUnescape(m[1]))
	return form
}

// action is where the consent form of link posts.
func action(link string) string { return strings.SplitN(link, "?", 2)[0] }

// rows counts the rows of a table of the gateway's database, read from the file itself.
func (e *bindingEnv) rows(table string) int {
	e.t.Helper()
	db, err := sql.Open("sqlite", "file:"+e.dbPath+"?mode=ro")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		e.t.Fatalf("counting %s: %v", table, err)
	}
	return n
}

// wantNothingStored fails unless no connection exists for alice or bob, no authorization is
// pending, no connect link was used and no consent was recorded.
func (e *bindingEnv) wantNothingStored(when string) {
	e.t.Helper()
	ctx := context.Background()
	for _, c := range []string{"alice", "bob"} {
		key := store.ConnectionKey{UpstreamID: bindingUpstream, Mode: store.ModeUser, Subject: "apikey|" + c}
		if conn, err := e.gw.Store.GetConnection(ctx, key); !errors.Is(err, store.ErrNotFound) {
			e.t.Errorf("%s: a connection for %s: %+v %v", when, c, conn, err)
		}
	}
	for _, table := range []string{"connections", "pending_authorizations", "ticket_uses"} {
		if n := e.rows(table); n != 0 {
			e.t.Errorf("%s: %d rows in %s, want none", when, n, table)
		}
	}
	for _, ev := range []string{audit.ConsentApproved, audit.ConsentDenied, audit.UpstreamConnectStarted} {
		evs, err := e.gw.Store.QueryAudit(ctx, store.AuditQuery{Event: ev})
		if err != nil || len(evs) != 0 {
			e.t.Errorf("%s: audit events %s: %+v %v", when, ev, evs, err)
		}
	}
}

// connectAlice completes alice's connection from link in her browser b, which is signed in as
// her: approve, Hydra's login as alice, the callback; it returns the result page.
func (e *bindingEnv) connectAlice(b *browser, link string) string {
	e.t.Helper()
	resp, body := b.post(action(link), e.consentForm(b, link), "")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), e.hydra.PublicURL) {
		e.t.Fatalf("alice approves her link: %d to %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	callback := e.hydra.AuthorizeHeadless(e.t, resp.Header.Get("Location"), "alice")
	resp, page := b.get(callback.String())
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "connected") {
		e.t.Fatalf("callback: %d %s", resp.StatusCode, page)
	}
	if got := e.whoami("alice"); got != "subject=alice" {
		e.t.Fatalf("alice's call after connecting: %q", got)
	}
	return page
}

// wantRefusedFor fails unless resp/page is the 403 page of a link made for alice opened in a
// browser signed in as bob: it names both, by their display forms, and offers no form.
func wantRefusedFor(t *testing.T, what string, resp *http.Response, page string) {
	t.Helper()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("%s: %d, want 403\n%s", what, resp.StatusCode, page)
	}
	for _, want := range []string{"This link is for someone else", "made for alice (API key)", "signed in as bob (API key)",
		"browser_not_signed_in_as_subject", "Nothing was changed"} {
		if !strings.Contains(page, want) {
			t.Errorf("%s: the page does not say %q:\n%s", what, want, page)
		}
	}
	if strings.Contains(page, "<form") || strings.Contains(page, `name="csrf"`) {
		t.Errorf("%s: the refusal page has a form:\n%s", what, page)
	}
}

// TestConnectLinkOpenedByAnotherPersonIsRefused: bob opens alice's connect link (she forwarded
// it, or it leaked). The gateway sends him to sign in; signed in as bob, the link is refused with
// a page naming both identities, and so is a POST of the consent form with alice's ticket. Nothing
// is stored: no connection for either, no pending authorization, the ticket unused — alice then
// uses the same link in her own browser.
func TestConnectLinkOpenedByAnotherPersonIsRefused(t *testing.T) {
	e := newBindingEnv(t, "")
	link := e.link("alice")

	bob := newBrowser(t)
	resp, _ := bob.get(link)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != e.loginURL(link) {
		t.Fatalf("alice's link in a browser with no session: %d to %q, want the API-key sign-in", resp.StatusCode, resp.Header.Get("Location"))
	}
	e.signIn(bob, "bob", link)
	resp, page := bob.get(link)
	wantRefusedFor(t, "alice's link opened as bob", resp, page)

	// The consent form posted anyway (alice's ticket, no CSRF token bob could have got) is refused
	// the same way, before anything is used.
	u, _ := url.Parse(link)
	resp, page = bob.post(action(link), url.Values{"browserTicket": {u.Query().Get("browserTicket")},
		"operationId": {u.Query().Get("operationId")}, "decision": {"approve"}}, "")
	wantRefusedFor(t, "alice's consent form posted as bob", resp, page)
	e.wantNothingStored("after bob opened alice's link")

	// The ticket was not used: alice connects with the same link in her browser.
	alice := newBrowser(t)
	e.signIn(alice, "alice", link)
	e.connectAlice(alice, link)
	if _, err := e.gw.Store.GetConnection(context.Background(), store.ConnectionKey{UpstreamID: bindingUpstream, Mode: store.ModeUser, Subject: "apikey|bob"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob has a connection after alice connected: %v", err)
	}
}

// TestConnectLinkWithoutSessionRedirectsToSignIn: a connect link opened in a browser that is not
// signed in redirects to the API-key sign-in form with return=<the link>; after signing in as
// alice there, the gateway comes back to the link, which shows alice's consent page.
func TestConnectLinkWithoutSessionRedirectsToSignIn(t *testing.T) {
	e := newBindingEnv(t, "")
	link := e.link("alice")
	b := newBrowser(t)
	resp, page := b.get(link)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("link without a session: %d, want 302\n%s", resp.StatusCode, page)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Scheme+"://"+loc.Host+loc.Path != e.gw.Base+"/oauth/login/api-key" || loc.Query().Get("return") != link || len(loc.Query()) != 1 {
		t.Fatalf("link without a session redirects to %q, want %s/oauth/login/api-key?return=<the link>", resp.Header.Get("Location"), e.gw.Base)
	}
	// A POST of the consent form without a session is sent to sign in too; nothing is used.
	u, _ := url.Parse(link)
	resp, _ = b.post(action(link), url.Values{"browserTicket": {u.Query().Get("browserTicket")},
		"operationId": {u.Query().Get("operationId")}, "decision": {"approve"}}, "")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != e.loginURL(link) {
		t.Fatalf("consent form posted without a session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	e.wantNothingStored("before signing in")

	resp, form := b.get(loc.String())
	if resp.StatusCode != http.StatusOK || !strings.Contains(form, `name="key"`) || !strings.Contains(form, `name="return"`) {
		t.Fatalf("API-key sign-in page: %d\n%s", resp.StatusCode, form)
	}
	e.signIn(b, "alice", link)
	resp, page = b.get(link)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Connect Tracker") || !strings.Contains(page, "alice") ||
		!strings.Contains(page, `name="csrf"`) || !strings.Contains(page, `value="approve"`) {
		t.Fatalf("the link after signing in as alice: %d\n%s", resp.StatusCode, page)
	}
}

// TestOriginNullApproveIsRefused: the consent page's CSRF value posted from alice's own signed-in
// browser is refused (403, nothing stored) when the request says "Origin: null" without
// Sec-Fetch-Site (a sandboxed or data: page elsewhere), and when it carries no origin signal at
// all; "Origin: null" with "Sec-Fetch-Site: same-origin" (what Chromium sends for the gateway's
// no-referrer pages) proceeds to the authorization server.
func TestOriginNullApproveIsRefused(t *testing.T) {
	e := newBindingEnv(t, "")
	link := e.link("alice")
	b := newBrowser(t)
	e.signIn(b, "alice", link)
	form := e.consentForm(b, link)

	for _, tc := range []struct {
		name string
		hdr  map[string]string
	}{
		{"Origin: null without Sec-Fetch-Site", map[string]string{"Origin": "null"}},
		{"no Origin and no Sec-Fetch-Site", nil},
	} {
		req, _ := http.NewRequest("POST", action(link), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := readBody(resp)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "csrf_failed") || !strings.Contains(page, "submitted from another site") {
			t.Errorf("%s: %d, want 403 csrf_failed\n%s", tc.name, resp.StatusCode, page)
		}
		e.wantNothingStored(tc.name)
	}

	req, _ := http.NewRequest("POST", action(link), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "null")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := readBody(resp)
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), e.hydra.AuthURL()) {
		t.Fatalf("Origin: null with Sec-Fetch-Site: same-origin: %d to %q, want 302 to %s\n%s", resp.StatusCode, resp.Header.Get("Location"), e.hydra.AuthURL(), page)
	}
	if n := e.rows("pending_authorizations"); n != 1 {
		t.Errorf("%d pending authorizations after the approve, want 1", n)
	}
}

// TestCSRFTokenBoundToBrowser: alice is signed in in two browsers (each with its own
// mcpgate-browser cookie). The consent form's CSRF value from browser A posted from browser B,
// with everything else right, is refused, and nothing is stored; B's own value proceeds.
func TestCSRFTokenBoundToBrowser(t *testing.T) {
	e := newBindingEnv(t, "")
	link := e.link("alice")
	a, b := newBrowser(t), newBrowser(t)
	e.signIn(a, "alice", link)
	e.signIn(b, "alice", link)
	formA, formB := e.consentForm(a, link), e.consentForm(b, link)
	idA, idB := browserCookie(t, a, e.gw.URL), browserCookie(t, b, e.gw.URL)
	if idA == idB {
		t.Fatalf("the two browsers share the binding cookie %q", idA)
	}
	if formA.Get("csrf") == formB.Get("csrf") {
		t.Fatal("the two browsers got the same CSRF value for one link")
	}

	stolen := url.Values{}
	for k, v := range formB {
		stolen[k] = v
	}
	stolen.Set("csrf", formA.Get("csrf"))
	resp, page := b.post(action(link), stolen, "")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "csrf_failed") || !strings.Contains(page, "security token is missing or wrong") {
		t.Fatalf("browser A's CSRF value posted from browser B: %d, want 403 csrf_failed\n%s", resp.StatusCode, page)
	}
	e.wantNothingStored("after browser A's CSRF value was posted from browser B")

	resp, page = b.post(action(link), formB, "")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), e.hydra.AuthURL()) {
		t.Fatalf("browser B's own CSRF value: %d to %q\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
}

// TestTicketBindingOptOut: with MCPGATE_CONNECT_BINDING=ticket (connect.BindingTicket) the link
// alone authorizes whoever opens it, as before sign-in existed: alice's link opened in a browser
// signed in as bob shows alice's consent page and its approve proceeds to the authorization
// server. `mcpgate serve` logs a warning at start when this is set (cmd/mcpgate/serve.go,
// warnBinding: "connect links are not bound to the person signed in; a link forwarded to someone
// else connects their upstream account under the sender's identity"); gatewaytest.New has no such
// log line to check.
func TestTicketBindingOptOut(t *testing.T) {
	e := newBindingEnv(t, connect.BindingTicket)
	link := e.link("alice")
	bob := newBrowser(t)
	e.signIn(bob, "bob", link)
	resp, page := bob.get(link)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "alice") || strings.Contains(page, "someone else") {
		t.Fatalf("alice's link opened as bob with ticket binding: %d\n%s", resp.StatusCode, page)
	}
	resp, body := bob.post(action(link), e.consentForm(bob, link), "")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), e.hydra.AuthURL()) {
		t.Fatalf("bob approves alice's link with ticket binding: %d to %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}

	// A browser with no session at all is not sent to sign in either.
	other := newBrowser(t)
	if resp, page := other.get(e.link("bob")); resp.StatusCode != http.StatusOK || !strings.Contains(page, "bob") {
		t.Fatalf("bob's link in a browser with no session, ticket binding: %d\n%s", resp.StatusCode, page)
	}
}

// TestDisconnectPageBoundToPerson: the "Disconnect" link of alice's result page, opened by bob,
// sends him to sign in and then refuses him with a page naming both; a POST of the disconnect form
// with alice's token from his browser is refused too. Alice's connection is intact, and she can
// still use the link herself.
func TestDisconnectPageBoundToPerson(t *testing.T) {
	e := newBindingEnv(t, "")
	link := e.link("alice")
	alice := newBrowser(t)
	e.signIn(alice, "alice", link)
	result := e.connectAlice(alice, link)
	m := disconnectLinkRe.FindStringSubmatch(result)
	if m == nil {
		t.Fatalf("no disconnect link on the result page:\n%s", result)
	}
	disconnect := htmlUnescape(m[1])
	key := store.ConnectionKey{UpstreamID: bindingUpstream, Mode: store.ModeUser, Subject: "apikey|alice"}
	before, err := e.gw.Store.GetConnection(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}

	bob := newBrowser(t)
	resp, _ := bob.get(disconnect)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != e.loginURL(disconnect) {
		t.Fatalf("alice's disconnect link with no session: %d to %q, want the API-key sign-in", resp.StatusCode, resp.Header.Get("Location"))
	}
	e.signIn(bob, "bob", disconnect)
	resp, page := bob.get(disconnect)
	wantRefusedFor(t, "alice's disconnect link opened as bob", resp, page)
	u, _ := url.Parse(disconnect)
	resp, page = bob.post(action(disconnect), url.Values{"t": {u.Query().Get("t")}}, "")
	wantRefusedFor(t, "alice's disconnect form posted as bob", resp, page)

	after, err := e.gw.Store.GetConnection(context.Background(), key)
	if err != nil || after.Status != store.StatusActive || after.AccessToken.IsZero() || after.RefreshToken.IsZero() ||
		after.AccessToken.Reveal() != before.AccessToken.Reveal() {
		t.Fatalf("alice's connection after bob's attempts: %+v %v", after, err)
	}
	if evs, err := e.gw.Store.QueryAudit(context.Background(), store.AuditQuery{Event: audit.UpstreamConnectionRevoked}); err != nil || len(evs) != 0 {
		t.Errorf("revoke audit events: %+v %v", evs, err)
	}
	if got := e.whoami("alice"); got != "subject=alice" {
		t.Fatalf("alice's call after bob's attempts: %q", got)
	}

	// The link is still alice's: her browser sees the confirm page.
	if resp, page := alice.get(disconnect); resp.StatusCode != http.StatusOK || !strings.Contains(page, "Disconnect Tracker") || !strings.Contains(page, "alice") {
		t.Fatalf("alice's disconnect link in her browser: %d\n%s", resp.StatusCode, page)
	}
}

// browserCookie is the value of the browser-binding cookie b holds for the gateway at base.
func browserCookie(t *testing.T, b *browser, base string) string {
	t.Helper()
	u, _ := url.Parse(base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "mcpgate-browser" {
			return c.Value
		}
	}
	t.Fatal("the browser has no mcpgate-browser cookie")
	return ""
}

// readBody reads and closes resp's body.
func readBody(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
