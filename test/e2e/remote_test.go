package e2e

// mcp-remote end to end: README command 1 (`mcpgate serve --demo --config examples/quickstart`, on
// free ports) driven by the bridge desktop MCP clients use, mcp-remote 0.15.1 from npm, run as a
// stdio process that the test speaks newline-delimited JSON-RPC to, with headless Chromium as the
// person's browser.
//
//   - TestMCPRemoteSignIn: /mcp/demo-signin with no API key. mcp-remote discovers the gateway as its
//     authorization server, registers, and "opens a browser" (BROWSER is a script that records the
//     URL); Chromium signs in with the development login, connects the demo upstream from the
//     gateway's consent page (the connect page, the demo authorization server's sign-in), and
//     authorizes; mcp-remote's loopback callback gets the code, and whoami through mcp-remote
//     answers with the name typed at the demo upstream.
//   - TestMCPRemoteWithoutURLElicitation: /mcp/demo-oauth with the demo API key, before the person
//     connected the upstream. mcp-remote does not declare URL elicitation, so the gateway answers in
//     terms it can show (docs/sign-in.md, "Clients without URL elicitation"): it must not exit, and
//     the link it carries is opened in Chromium, which signs in with the API key first.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mcpgate/mcpgate/internal/testutil/browser"
	"github.com/mcpgate/mcpgate/internal/testutil/nodeenv"
)

const (
	// mcpRemoteEntry is mcp-remote's stdio proxy (its `mcp-remote` bin) under test/e2e/node.
	mcpRemoteEntry = "node_modules/mcp-remote/dist/proxy.js"
	// remoteTimeout bounds one mcp-remote test: the gateway, the bridge, the browser flow, the calls.
	remoteTimeout = 2 * time.Minute
	// remoteStepTimeout bounds waiting for one line or answer from mcp-remote.
	remoteStepTimeout = 30 * time.Second
	// demoDisplayName is the quickstart's name of its upstream.
	demoDisplayName = "Demo upstream"
)

// demoQuickstart is `mcpgate serve --demo --config examples/quickstart` on free ports.
type demoQuickstart struct {
	gw *gateway
	// demoAddr is the demo upstream (and its authorization server), host:port.
	demoAddr string
	// key is the demo API key serve printed (consumer demo-user); keys holds the keys of the extra
	// consumers created before the start.
	key  string
	keys map[string]string
}

// startDemoQuickstart runs README command 1 as quickstart_test.go does: the quickstart project with
// the demo upstream moved to a free port, the gateway on another, JSON logs, a fresh data dir in
// which `mcpgate keys create` first makes an API key for each of consumers.
func startDemoQuickstart(t *testing.T, consumers ...string) *demoQuickstart {
	t.Helper()
	if serveMissing != "" {
		t.Skip(serveMissing)
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	q := &demoQuickstart{demoAddr: freeLoopbackAddr(t), keys: map[string]string{}}
	project := copyQuickstart(t, filepath.Join(root, "examples", "quickstart"), q.demoAddr)
	dataDir := filepath.Join(t.TempDir(), "data")
	for _, c := range consumers {
		k := strings.TrimSpace(mcpgateCLI(t, dataDir, "keys", "create", "--consumer", c))
		if !apiKeyPattern.MatchString(k) {
			t.Fatalf("keys create --consumer %s printed %q, want one key", c, k)
		}
		q.keys[c] = k
	}

	q.gw, _ = serveGateway(t, []string{"serve", "--demo", "--config", project, "--demo-listen", q.demoAddr,
		"--listen", "127.0.0.1:0", "--data-dir", dataDir})
	done := q.gw.exited
	// The walkthrough with the key is printed right after the listener is up.
	keyRe := regexp.MustCompile(`mcpgate_demo_[A-Za-z0-9_-]{20,}`)
	deadline := time.Now().Add(10 * time.Second)
	for q.key = keyRe.FindString(q.gw.Logs()); q.key == ""; q.key = keyRe.FindString(q.gw.Logs()) {
		if time.Now().After(deadline) {
			t.Fatal("serve --demo printed no demo API key")
		}
		select {
		case <-done:
			t.Fatalf("serve --demo exited:\n%s", q.gw.Logs())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return q
}

// lineLog collects a process's output line by line and wakes waiters on each new line.
type lineLog struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	changed chan struct{}
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	added := false
	for {
		i := strings.IndexByte(string(l.partial), '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, strings.TrimRight(string(l.partial[:i]), "\r"))
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

// snapshot returns the complete lines so far and a channel closed when another arrives.
func (l *lineLog) snapshot() ([]string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...), l.changed
}

func (l *lineLog) String() string {
	lines, _ := l.snapshot()
	return strings.Join(lines, "\n")
}

// rpcReply is one JSON-RPC message mcp-remote wrote to stdout.
type rpcReply struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int64           `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
	raw string
}

// mcpRemote is a running mcp-remote stdio bridge.
type mcpRemote struct {
	t      *testing.T
	stdin  io.WriteCloser
	stdout chan rpcReply
	stderr *lineLog
	exited chan struct{}
	err    error         // the exit status, once exited is closed
	stop   chan struct{} // closed when the test ends: stdout is no longer read
	nextID int
}

// startMCPRemote runs `mcp-remote <url> <args…>` under node with extraEnv and no other
// environment than nodeenv's minimal one. It is stopped (stdin closed, then SIGTERM) when the
// test ends; its stderr is logged if the test failed.
func startMCPRemote(t *testing.T, ctx context.Context, env *nodeenv.Env, extraEnv []string, url string, args ...string) *mcpRemote {
	t.Helper()
	if _, err := os.Stat(env.Path(mcpRemoteEntry)); err != nil {
		t.Fatalf("mcp-remote is not installed (run npm ci in %s): %v", env.Dir, err)
	}
	cmd := env.Command(ctx, extraEnv, append([]string{mcpRemoteEntry, url}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	m := &mcpRemote{t: t, stdin: stdin, stdout: make(chan rpcReply, 64), stderr: newLineLog(), exited: make(chan struct{}), stop: make(chan struct{})}
	cmd.Stderr = m.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			var r rpcReply
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r = rpcReply{Method: "(not JSON)"}
			}
			r.raw = sc.Text()
			select {
			case m.stdout <- r:
			case <-m.stop:
			}
		}
		m.err = cmd.Wait()
		close(m.exited)
	}()
	t.Cleanup(func() {
		close(m.stop)
		_ = stdin.Close() // mcp-remote shuts down when its stdin ends
		select {
		case <-m.exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-m.exited
		}
		if t.Failed() {
			t.Logf("mcp-remote (exit: %v) stderr:\n%s", m.err, m.stderr)
		}
	})
	return m
}

// alive fails the test if mcp-remote has exited.
func (m *mcpRemote) alive(when string) {
	m.t.Helper()
	select {
	case <-m.exited:
		m.t.Fatalf("mcp-remote exited %s (%v)\nstderr:\n%s", when, m.err, m.stderr)
	default:
	}
}

// waitStderr waits until a line of mcp-remote's stderr at or after index from contains substr
// and returns its index.
func (m *mcpRemote) waitStderr(from int, substr string) int {
	m.t.Helper()
	timeout := time.After(remoteStepTimeout)
	for {
		lines, changed := m.stderr.snapshot()
		for i := from; i < len(lines); i++ {
			if strings.Contains(lines[i], substr) {
				return i
			}
		}
		select {
		case <-changed:
		case <-m.exited:
			m.t.Fatalf("mcp-remote exited (%v) before printing %q\nstderr:\n%s", m.err, substr, m.stderr)
		case <-timeout:
			m.t.Fatalf("mcp-remote printed no %q within %v\nstderr:\n%s", substr, remoteStepTimeout, m.stderr)
		}
	}
}

// stderrLine returns line i of stderr, waiting for it.
func (m *mcpRemote) stderrLine(i int) string {
	m.t.Helper()
	timeout := time.After(remoteStepTimeout)
	for {
		lines, changed := m.stderr.snapshot()
		if i < len(lines) {
			return lines[i]
		}
		select {
		case <-changed:
		case <-m.exited:
			m.t.Fatalf("mcp-remote exited (%v)\nstderr:\n%s", m.err, m.stderr)
		case <-timeout:
			m.t.Fatalf("mcp-remote printed no line %d within %v\nstderr:\n%s", i, remoteStepTimeout, m.stderr)
		}
	}
}

// send writes one JSON-RPC message to mcp-remote's stdin.
func (m *mcpRemote) send(msg map[string]any) {
	m.t.Helper()
	msg["jsonrpc"] = "2.0"
	b, err := json.Marshal(msg)
	if err != nil {
		m.t.Fatal(err)
	}
	if _, err := m.stdin.Write(append(b, '\n')); err != nil {
		m.t.Fatalf("writing to mcp-remote: %v\nstderr:\n%s", err, m.stderr)
	}
}

// call sends a request and returns mcp-remote's answer to it.
func (m *mcpRemote) call(method string, params any) rpcReply {
	m.t.Helper()
	m.nextID++
	id := m.nextID
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	m.send(msg)
	timeout := time.After(remoteStepTimeout)
	for {
		select {
		case r := <-m.stdout:
			if string(r.ID) == fmt.Sprint(id) {
				return r
			}
			m.t.Logf("mcp-remote wrote, while waiting for the answer to %s: %s", method, r.raw)
		case <-m.exited:
			m.t.Fatalf("mcp-remote exited (%v) before answering %s\nstderr:\n%s", m.err, method, m.stderr)
		case <-timeout:
			m.t.Fatalf("mcp-remote did not answer %s within %v\nstderr:\n%s", method, remoteStepTimeout, m.stderr)
		}
	}
}

// result decodes the result of an answer into v, failing on a JSON-RPC error.
func (r rpcReply) decode(t *testing.T, what string, v any) {
	t.Helper()
	if r.Error != nil || r.Result == nil {
		t.Fatalf("%s: want a result, got %s", what, r.raw)
	}
	if err := json.Unmarshal(r.Result, v); err != nil {
		t.Fatalf("%s: %v in %s", what, err, r.raw)
	}
}

// initialize speaks the MCP handshake as a desktop client does (no URL elicitation declared) and
// returns the initialize result.
func (m *mcpRemote) initialize(clientName string) initializeResult {
	m.t.Helper()
	var res initializeResult
	m.call("initialize", map[string]any{
		"protocolVersion": "2025-06-18",
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": clientName, "version": "1.0.0"},
	}).decode(m.t, "initialize", &res)
	m.send(map[string]any{"method": "notifications/initialized"})
	return res
}

type initializeResult struct {
	ProtocolVersion string `json:"protocolVersion"`
	ServerInfo      struct {
		Name string `json:"name"`
	} `json:"serverInfo"`
	Instructions string `json:"instructions"`
}

type toolsListResult struct {
	Tools []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"tools"`
}

func (r toolsListResult) names() []string {
	var out []string
	for _, tool := range r.Tools {
		out = append(out, tool.Name)
	}
	return out
}

type toolResult struct {
	IsError bool `json:"isError"`
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
}

func (r toolResult) text() string {
	var parts []string
	for _, c := range r.Content {
		if c.Type == "text" {
			parts = append(parts, c.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	_, port, err := net.SplitHostPort(freeLoopbackAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// typeInto replaces the value of the input matching selector by typing text, as a person would.
func typeInto(t *testing.T, b *browser.Browser, selector, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), browser.DefaultTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Clear(chromedp.CSS(selector)), chromedp.SendKeys(chromedp.CSS(selector), text)); err != nil {
		t.Fatalf("typing into %s at %s: %v", selector, b.CurrentURL(), err)
	}
}

// bodyText is the rendered text of the page.
func bodyText(b *browser.Browser) string { return browser.Eval[string](b, `document.body.innerText`) }

// connectLinkRe finds the gateway's connect link in the fallback texts.
func connectLinkRe(q *demoQuickstart) *regexp.Regexp {
	return regexp.MustCompile(regexp.QuoteMeta(q.gw.URL("/__mcpgate/auth/connections/demo/connect?")) + `[^\s"]+`)
}

// TestMCPRemoteSignIn is the README's "point a real MCP client at the quickstart, sign in, connect,
// and call a tool, with no API key": mcp-remote on /mcp/demo-signin, the person in Chromium.
func TestMCPRemoteSignIn(t *testing.T) {
	env := nodeenv.Get(t)
	browser.Require(t)
	q := startDemoQuickstart(t)
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()

	// mcp-remote starts with no stored tokens and opens the authorization URL with the `open`
	// package, whose xdg-open runs $BROWSER: a script that records the URL instead.
	dir := t.TempDir()
	configDir, opened, browserScript := filepath.Join(dir, "mcp-auth"), filepath.Join(dir, "opened-urls"), filepath.Join(dir, "browser.sh")
	if err := os.WriteFile(browserScript, []byte("#!/bin/sh\nprintf '%s\\n' \"$1\" >> \"$MCPGATE_E2E_OPENED\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	callbackPort := freePort(t)
	remoteEnv := []string{"MCP_REMOTE_CONFIG_DIR=" + configDir, "BROWSER=" + browserScript, "MCPGATE_E2E_OPENED=" + opened}
	mr := startMCPRemote(t, ctx, env, remoteEnv, q.gw.URL("/mcp/demo-signin"), callbackPort)

	// The authorization URL, as printed and as handed to the "browser".
	i := mr.waitStderr(0, "Please authorize this client by visiting:")
	authURL := strings.TrimSpace(mr.stderrLine(i + 1))
	wantPrefix := q.gw.URL("/__mcpgate/oauth/authorize/mcp/demo-signin?")
	if !strings.HasPrefix(authURL, wantPrefix) || !strings.Contains(authURL, "redirect_uri=http%3A%2F%2Flocalhost%3A"+callbackPort+"%2Foauth%2Fcallback") {
		t.Fatalf("mcp-remote's authorization URL %q, want %s… with its loopback callback on port %s", authURL, wantPrefix, callbackPort)
	}
	mr.waitStderr(i, "Browser opened automatically.")
	if b, err := os.ReadFile(opened); err != nil || strings.TrimSpace(string(b)) != authURL {
		t.Fatalf("$BROWSER was given %q (%v), want the authorization URL", b, err)
	}
	mr.waitStderr(i, "Authentication required. Waiting for authorization...")

	// The person: the development login, then the gateway's consent page.
	b := browser.New(t)
	b.Navigate(authURL)
	if h1 := b.Text("h1"); h1 != "Sign in to Demo MCP server with sign-in" {
		t.Fatalf("after the authorization URL the browser shows %q at %s, want the consent page", h1, b.CurrentURL())
	}
	page := bodyText(b)
	for _, want := range []string{"dev-browser-user", "MCP CLI Proxy", "localhost:" + callbackPort, demoDisplayName, "not connected"} {
		if !strings.Contains(page, want) {
			t.Errorf("consent page does not show %q:\n%s", want, page)
		}
	}
	if !browser.Eval[bool](b, `document.querySelector('button[name="decision"][value="approve"]').disabled`) {
		t.Error("Authorize is enabled before the demo upstream is connected")
	}
	b.Screenshot("consent-not-connected")

	// Connect: the gateway's connect page, then the demo authorization server's sign-in.
	b.ClickNavigate("table a.button")
	if h1 := b.Text("h1"); h1 != "Connect "+demoDisplayName {
		t.Fatalf("Connect led to %q at %s, want the gateway's connect page", h1, b.CurrentURL())
	}
	if page := bodyText(b); !strings.Contains(page, "dev-browser-user") {
		t.Errorf("connect page does not name the signed-in person:\n%s", page)
	}
	b.Screenshot("connect-page")
	b.ClickNavigate(`button[name="decision"][value="approve"]`)
	if u := b.CurrentURL(); !strings.HasPrefix(u, "http://"+q.demoAddr+"/authorize") {
		t.Fatalf("after approving the browser is at %s, want the demo upstream's sign-in", u)
	}
	const name = "ada-remote"
	typeInto(t, b, "#user", name)
	b.Screenshot("demo-upstream-signin")
	b.ClickNavigate(`button[type="submit"]`)

	// Back on the consent page, connected: Authorize hands the code to mcp-remote's callback.
	if h1 := b.Text("h1"); h1 != "Sign in to Demo MCP server with sign-in" {
		t.Fatalf("after the demo sign-in the browser shows %q at %s, want the consent page again", h1, b.CurrentURL())
	}
	if got := b.Text("table .pill"); got != "connected" {
		t.Fatalf("consent page shows the demo upstream as %q, want connected", got)
	}
	b.Screenshot("consent-connected")
	b.ClickNavigate(`button[name="decision"][value="approve"]`)
	if u := b.CurrentURL(); !strings.HasPrefix(u, "http://localhost:"+callbackPort+"/oauth/callback?") {
		t.Fatalf("Authorize led to %s, want mcp-remote's callback", u)
	}
	if page := bodyText(b); !strings.Contains(page, "Authorization successful!") {
		t.Fatalf("mcp-remote's callback page: %q", page)
	}
	b.Screenshot("mcp-remote-callback")
	j := mr.waitStderr(i, "Auth code received, resolving promise")
	mr.waitStderr(j, "Proxy established successfully")

	// The MCP client speaks through mcp-remote: the upstream's own tools, the person's own token.
	ir := mr.initialize("mcpgate-e2e-desktop-client")
	if strings.Contains(ir.ServerInfo.Name, "not connected") {
		t.Errorf("initialize after signing in: serverInfo %q", ir.ServerInfo.Name)
	}
	var tools toolsListResult
	mr.call("tools/list", nil).decode(t, "tools/list", &tools)
	if !strings.Contains(strings.Join(tools.names(), ","), "whoami") {
		t.Errorf("tools/list through mcp-remote: %v, want the demo upstream's tools with whoami", tools.names())
	}
	var res toolResult
	mr.call("tools/call", map[string]any{"name": "whoami", "arguments": map[string]any{}}).decode(t, "tools/call whoami", &res)
	if want := "You are " + name + " at the demo upstream."; res.IsError || res.text() != want {
		t.Fatalf("whoami through mcp-remote = %+v, want %q", res, want)
	}

	// No API key anywhere: mcp-remote holds the gateway's own access token from the sign-in.
	tokens, _ := filepath.Glob(filepath.Join(configDir, "*", "*_tokens.json"))
	if len(tokens) != 1 {
		t.Fatalf("mcp-remote stored tokens %v, want one file", tokens)
	}
	raw, err := os.ReadFile(tokens[0])
	if err != nil {
		t.Fatal(err)
	}
	var stored struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(raw, &stored); err != nil || !strings.HasPrefix(stored.AccessToken, "mcpgate_at_") ||
		!strings.HasPrefix(stored.RefreshToken, "mcpgate_rt_") {
		t.Errorf("mcp-remote's tokens are not the gateway's own (access %.12q…, refresh %.12q…): %v", stored.AccessToken, stored.RefreshToken, err)
	}
	if strings.Contains(mr.stderr.String(), "mcpgate_demo_") {
		t.Error("an API key reached mcp-remote")
	}
}

// TestMCPRemoteWithoutURLElicitation is mcp-remote with the demo API key on /mcp/demo-oauth before
// the person connected the demo upstream: the gateway's answers for clients without URL
// elicitation keep it running and show the link; the link, opened in Chromium, asks for the API
// key first; after connecting, whoami works.
func TestMCPRemoteWithoutURLElicitation(t *testing.T) {
	env := nodeenv.Get(t)
	browser.Require(t)
	q := startDemoQuickstart(t)
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()

	remoteEnv := []string{"MCP_REMOTE_CONFIG_DIR=" + filepath.Join(t.TempDir(), "mcp-auth"), "DEMO_KEY=" + q.key}
	start := func() *mcpRemote {
		// The key goes through the environment, as desktop client configurations pass it.
		mr := startMCPRemote(t, ctx, env, remoteEnv, q.gw.URL("/mcp/demo-oauth"), freePort(t),
			"--header", "Authorization: Bearer ${DEMO_KEY}")
		mr.waitStderr(0, "Proxy established successfully")
		return mr
	}
	mr := start()
	linkRe := connectLinkRe(q)

	ir := mr.initialize("mcpgate-e2e-desktop-client")
	if ir.ServerInfo.Name != "mcpgate (Demo upstream not connected)" || linkRe.FindString(ir.Instructions) == "" {
		t.Fatalf("initialize before connecting: serverInfo %q, instructions %q; want the gateway's answer with the connect link",
			ir.ServerInfo.Name, ir.Instructions)
	}
	var tools toolsListResult
	mr.call("tools/list", nil).decode(t, "tools/list", &tools)
	if len(tools.Tools) != 1 || tools.Tools[0].Name != "connect_demo" || linkRe.FindString(tools.Tools[0].Description) == "" {
		t.Fatalf("tools/list before connecting: %+v, want connect_demo with the link", tools.Tools)
	}
	var res toolResult
	mr.call("tools/call", map[string]any{"name": "whoami", "arguments": map[string]any{}}).decode(t, "tools/call whoami", &res)
	link := linkRe.FindString(res.text())
	if !res.IsError || link == "" {
		t.Fatalf("tools/call before connecting: %+v, want isError with the link", res)
	}
	var connectRes toolResult
	mr.call("tools/call", map[string]any{"name": "connect_demo", "arguments": map[string]any{}}).decode(t, "tools/call connect_demo", &connectRes)
	if !connectRes.IsError || linkRe.FindString(connectRes.text()) == "" {
		t.Errorf("tools/call connect_demo: %+v, want isError with the link", connectRes)
	}
	if r := mr.call("ping", nil); r.Error != nil {
		t.Errorf("ping: %s", r.raw)
	}
	mr.alive("after the gateway's answers for a client without URL elicitation")
	if s := mr.stderr.String(); strings.Contains(s, "Fatal error") || strings.Contains(s, "UrlElicitationRequired") {
		t.Errorf("mcp-remote reported an error:\n%s", s)
	}

	// The link: the connect page acts only for the key's owner, so the browser signs in with the key.
	b := browser.New(t)
	b.Navigate(link)
	if h1 := b.Text("h1"); h1 != "Sign in with your API key" {
		t.Fatalf("the connect link shows %q at %s, want the API-key sign-in", h1, b.CurrentURL())
	}
	b.Screenshot("apikey-signin")
	typeInto(t, b, "#key", q.key)
	b.ClickNavigate(`button[type="submit"]`)
	if h1 := b.Text("h1"); h1 != "Connect "+demoDisplayName {
		t.Fatalf("after the API-key sign-in: %q at %s, want the connect page", h1, b.CurrentURL())
	}
	if page := bodyText(b); !strings.Contains(page, "demo-user") {
		t.Errorf("connect page does not name the key's owner:\n%s", page)
	}
	b.Screenshot("connect-page")
	b.ClickNavigate(`button[name="decision"][value="approve"]`)
	if u := b.CurrentURL(); !strings.HasPrefix(u, "http://"+q.demoAddr+"/authorize") {
		t.Fatalf("after approving the browser is at %s, want the demo upstream's sign-in", u)
	}
	const name = "grace-remote"
	typeInto(t, b, "#user", name)
	b.ClickNavigate(`button[type="submit"]`)
	if h1 := b.Text("h1"); h1 != demoDisplayName+" is connected" {
		t.Fatalf("after the demo sign-in: %q at %s", h1, b.CurrentURL())
	}
	b.Screenshot("connected")

	// "Then come back and try again": the same mcp-remote session now reaches the upstream.
	want := "You are " + name + " at the demo upstream."
	res = toolResult{}
	mr.call("tools/call", map[string]any{"name": "whoami", "arguments": map[string]any{}}).decode(t, "tools/call whoami after connecting", &res)
	if res.IsError || res.text() != want {
		t.Fatalf("whoami in the same mcp-remote session after connecting = %+v, want %q", res, want)
	}
	tools = toolsListResult{}
	mr.call("tools/list", nil).decode(t, "tools/list after connecting", &tools)
	if !strings.Contains(strings.Join(tools.names(), ","), "whoami") {
		t.Errorf("tools/list in the same session after connecting: %v, want the demo upstream's tools", tools.names())
	}

	// A fresh mcp-remote (the client reconnecting the server) sees the upstream from the start.
	mr2 := start()
	ir = mr2.initialize("mcpgate-e2e-desktop-client")
	if strings.Contains(ir.ServerInfo.Name, "not connected") || linkRe.FindString(ir.Instructions) != "" {
		t.Errorf("initialize of a new session after connecting: %+v", ir)
	}
	res = toolResult{}
	mr2.call("tools/call", map[string]any{"name": "whoami", "arguments": map[string]any{}}).decode(t, "tools/call whoami in a new session", &res)
	if res.IsError || res.text() != want {
		t.Fatalf("whoami in a new mcp-remote session = %+v, want %q", res, want)
	}
}
