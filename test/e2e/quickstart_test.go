package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testutil/browser"
)

// TestQuickstartOAuthWalkthrough is README command 1 as a new user follows it: the quickstart
// served with --demo, the printed demo key, connect-required on the OAuth route, the gateway's
// API-key sign-in (the connect page acts only for the key's owner), the consent page and the demo
// upstream's sign-in in a fresh Chromium, then the same call answered with the user's
// own upstream token. The project is examples/quickstart with the demo port moved to a free one.
func TestQuickstartOAuthWalkthrough(t *testing.T) {
	if serveMissing != "" {
		t.Skip(serveMissing)
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	demoAddr := freeLoopbackAddr(t)
	project := copyQuickstart(t, filepath.Join(root, "examples", "quickstart"), demoAddr)

	g, _ := serveGateway(t, []string{"serve", "--demo", "--config", project, "--demo-listen", demoAddr,
		"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data")})
	done := g.exited
	// The walkthrough text is printed after the listener is up; wait for it with a deadline.
	keyRe := regexp.MustCompile(`mcpgate_demo_[A-Za-z0-9_-]{20,}`)
	var key string
	for deadline := time.Now().Add(10 * time.Second); key == "" && time.Now().Before(deadline); {
		key = keyRe.FindString(g.Logs())
		if key == "" {
			select {
			case <-done:
				t.Fatal("serve exited")
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if key == "" {
		t.Fatal("serve --demo printed no demo API key")
	}

	// The public route works without credentials.
	if got := quickstartCall(t, g.URL("/mcp/demo"), "", `{"name":"add","arguments":{"a":2,"b":3}}`); !strings.Contains(got, `"sum":5`) {
		t.Fatalf("public route add: %s", got)
	}
	// The OAuth route: connect-required first.
	first := quickstartCall(t, g.URL("/mcp/demo-oauth"), key, `{"name":"whoami","arguments":{}}`)
	var msg struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Data    struct {
				AuthURL string `json:"authUrl"`
				State   string `json:"state"`
			} `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(first), &msg); err != nil || msg.Error.Code != -32042 || msg.Error.Data.State != "authenticating" ||
		!strings.HasPrefix(msg.Error.Message, "Connect Demo upstream to continue: http") {
		t.Fatalf("first whoami: want connect-required, got %s", first)
	}

	// A fresh browser: the connect page acts only for the demo key's owner, so the gateway first
	// asks for the key on its API-key sign-in form; then the consent page, Approve, the demo
	// upstream's sign-in, back to the gateway.
	b := browser.New(t)
	b.Navigate(msg.Error.Data.AuthURL)
	signInWithAPIKey(t, b, key, msg.Error.Data.AuthURL, "quickstart-apikey-signin")
	if got := b.Text("h1"); !strings.Contains(got, "Demo upstream") {
		t.Fatalf("consent page h1 %q", got)
	}
	b.Screenshot("quickstart-consent")
	b.ClickNavigate(`button[name="decision"][value="approve"]`)
	if u := b.CurrentURL(); !strings.HasPrefix(u, "http://"+demoAddr+"/authorize") {
		t.Fatalf("after approve the browser is at %s, want the demo upstream's sign-in", u)
	}
	b.Screenshot("quickstart-upstream-signin")
	b.ClickNavigate(`button[type="submit"]`)
	if got := b.Text("h1"); !strings.Contains(got, "Demo upstream is connected") {
		t.Fatalf("after sign-in: %q at %s", got, b.CurrentURL())
	}
	b.Screenshot("quickstart-connected")

	// The same call now carries the user's own upstream token.
	if got := quickstartCall(t, g.URL("/mcp/demo-oauth"), key, `{"name":"whoami","arguments":{}}`); !strings.Contains(got, "You are demo-user at the demo upstream.") {
		t.Fatalf("whoami after connecting: %s", got)
	}
}

// copyQuickstart copies the quickstart project, pointing its upstreams at demoAddr.
func copyQuickstart(t *testing.T, src, demoAddr string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b = []byte(strings.ReplaceAll(string(b), "127.0.0.1:9001", demoAddr))
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// quickstartCall posts a tools/call as the README's curl does and returns the JSON-RPC message
// (the data line of the SSE event, or the JSON body).
func quickstartCall(t *testing.T, url, key, params string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":`+params+`}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: HTTP %d %s", url, resp.StatusCode, body)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			return d
		}
	}
	return string(body)
}
