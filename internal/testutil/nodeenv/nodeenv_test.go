package nodeenv

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestListeningLine(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{name: "among other lines", in: "Starting...\nMCPGATE_LISTENING 127.0.0.1:4242\nlistening on port 0\n", want: "127.0.0.1:4242", ok: true},
		{name: "line not finished yet", in: "MCPGATE_LISTENING 127.0.0.1:42", ok: false},
		{name: "absent", in: "Starting...\n", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := listeningLine(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("listeningLine(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestStartEverything starts the real server-everything and speaks raw Streamable HTTP to it.
func TestStartEverything(t *testing.T) {
	env := Get(t)
	srv := env.StartEverything(t)
	if !strings.HasPrefix(srv.Addr, "127.0.0.1:") {
		t.Fatalf("server-everything listens on %q, want 127.0.0.1 only", srv.Addr)
	}
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"nodeenv-test","version":"1"}}}`
	req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: status %d, want 200", resp.StatusCode)
	}
	if resp.Header.Get("Mcp-Session-Id") == "" {
		t.Errorf("initialize: no Mcp-Session-Id header")
	}
	// The answer is one SSE event carrying the JSON-RPC result.
	var msg struct {
		Result struct {
			ServerInfo struct{ Name string } `json:"serverInfo"`
		} `json:"result"`
	}
	data := readSSEData(t, resp)
	if err := json.Unmarshal([]byte(data), &msg); err != nil {
		t.Fatalf("decoding initialize result %q: %v", data, err)
	}
	if msg.Result.ServerInfo.Name == "" {
		t.Errorf("initialize result has no serverInfo.name: %s", data)
	}
}

// readSSEData returns the first non-empty data line of an SSE response (a priming event with
// empty data may come first).
func readSSEData(t *testing.T, resp *http.Response) string {
	t.Helper()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data:"); ok && strings.TrimSpace(d) != "" {
			return strings.TrimSpace(d)
		}
	}
	t.Fatalf("reading SSE answer: no data event (err %v)", sc.Err())
	return ""
}

func TestRunScript(t *testing.T) {
	env := Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _, err := env.Run(ctx, []string{"SECRET_FROM_TEST=1"}, "-e", `process.stdout.write(JSON.stringify({v: process.versions.node, env: Object.keys(process.env).sort()}))`)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		V   string
		Env []string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
	for _, k := range got.Env {
		switch k {
		case "PATH", "HOME", "TMPDIR", "NO_COLOR", "SECRET_FROM_TEST":
		default:
			t.Errorf("node saw environment variable %s; only a minimal environment should pass", k)
		}
	}
	t.Logf("node %s at %s", got.V, env.Node)
}

// TestConformanceServerRefusesRebinding checks the fixture's DNS-rebinding protection, which the
// e2e conformance comparison relies on.
func TestConformanceServerRefusesRebinding(t *testing.T) {
	env := Get(t)
	srv := env.StartConformanceServer(t)
	tests := []struct {
		name, host, origin string
		want               int
	}{
		{name: "loopback host and origin", origin: "http://" + srv.Addr, want: http.StatusOK},
		{name: "foreign origin", origin: "http://evil.example.com", want: http.StatusForbidden},
		{name: "foreign host", host: "evil.example.com", want: http.StatusForbidden},
	}
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"nodeenv-test","version":"1"}}}`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}
