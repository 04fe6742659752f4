package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/demo"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/testutil/tlstest"
)

// TestServeTLSRefuses: --tls-cert and --tls-key go together, an http --public-url is refused with
// TLS, and a pair that cannot be loaded stops serve naming the file.
func TestServeTLSRefuses(t *testing.T) {
	dir := t.TempDir()
	project := serveProject(t)
	ca := tlstest.NewCA(t)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.WritePair(t, 1, certFile, keyFile)
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.crt")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"certificate without key", nil, []string{"--tls-cert", certFile},
			"mcpgate: --tls-cert needs --tls-key (MCPGATE_TLS_KEY): set both to serve TLS, or neither\n"},
		{"key without certificate", []string{"MCPGATE_TLS_KEY=" + keyFile}, nil,
			"mcpgate: --tls-key needs --tls-cert (MCPGATE_TLS_CERT): set both to serve TLS, or neither\n"},
		{"http public URL", nil, []string{"--tls-cert", certFile, "--tls-key", keyFile, "--public-url", "http://mcp.example.com"},
			`mcpgate: --public-url: must be https when serving TLS (--tls-cert, --tls-key), got "http://mcp.example.com"` + "\n"},
		{"missing certificate", nil, []string{"--tls-cert", missing, "--tls-key", keyFile},
			"mcpgate: --tls-cert, --tls-key: reading the certificate file: stat " + missing + ": no such file or directory\n"},
		{"garbage key", nil, []string{"--tls-cert", certFile, "--tls-key", garbage},
			"mcpgate: --tls-cert, --tls-key: loading the certificate " + certFile + " with the key " + garbage + ": tls: failed to find any PEM data in key input\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--config", project, "--listen", "127.0.0.1:0"}, tc.args...)
			r := runCLIExit(t, dir, tc.env, 30*time.Second, args...)
			if r.code != 1 || !strings.HasSuffix(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant it to end with:\n%s", r.code, r.stderr, tc.want)
			}
		})
	}
}

// protoRecorder is a transport that remembers the protocol and content type of every response.
type protoRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	seen []string // "POST HTTP/2.0 text/event-stream"
}

func (p *protoRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.base.RoundTrip(r)
	if err == nil {
		p.mu.Lock()
		p.seen = append(p.seen, fmt.Sprintf("%s %s %s", r.Method, resp.Proto, resp.Header.Get("Content-Type")))
		p.mu.Unlock()
	}
	return resp, err
}

func (p *protoRecorder) all() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.seen, "\n")
}

// TestServeTLS: serve with --tls-cert and --tls-key, the certificate mounted as Kubernetes mounts
// a secret. Clients get HTTP/2 on /healthz and on an MCP route whose tools/call answer streams
// progress as server-sent events; derived public URLs are https; a new secret version is served on
// new connections, and a broken one is refused while the last good certificate stays.
func TestServeTLS(t *testing.T) {
	up := httptest.NewServer(demo.Handler(nil))
	t.Cleanup(up.Close)
	project := gatewaytest.Project(t, map[string]string{"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{
		"/mcp/demo":{"post":{"operationId":"demo","x-zuplo-route":{"corsPolicy":"none",
			"handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"` + up.URL + `/mcp"}}}}}}}`})
	ca := tlstest.NewCA(t)
	secret := t.TempDir()
	c, k := ca.Issue(t, 1)
	certFile, keyFile := tlstest.SwapSecret(t, secret, "..2026_12_03_10_00_00.1", c, k)

	s := startServe(t, t.TempDir(), []string{"MCPGATE_TLS_KEY=" + keyFile}, "--config", project, "--listen", "127.0.0.1:0", "--tls-cert", certFile)
	listening := s.log("mcpgate listening")
	addr, _ := listening["address"].(string)
	if listening["scheme"] != "https" {
		t.Errorf("listening log %v, want scheme https", listening)
	}
	if l := s.log("TLS on"); l == nil || l["serial"] != "1" || l["cert"] != certFile {
		t.Errorf("TLS log %v", l)
	}
	base := "https://" + addr
	rec := &protoRecorder{base: ca.Transport()}
	hc := &http.Client{Transport: rec, Timeout: 30 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)

	t.Run("HTTP/2", func(t *testing.T) {
		resp, err := hc.Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Errorf("GET /healthz: %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
		}

		var (
			mu       sync.Mutex
			progress []float64
		)
		client := mcp.NewClient(&mcp.Implementation{Name: "tls-test", Version: "v1"}, &mcp.ClientOptions{
			ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
				mu.Lock()
				progress = append(progress, req.Params.Progress)
				mu.Unlock()
			},
		})
		cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: base + "/mcp/demo", HTTPClient: hc, MaxRetries: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "countdown",
			Arguments: map[string]any{"from": 3, "delayMs": 1}, Meta: mcp.Meta{"progressToken": "tls"}})
		if err != nil {
			t.Fatalf("tools/call: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if got := res.Content[0].(*mcp.TextContent).Text; got != "liftoff" || len(progress) != 3 {
			t.Errorf("countdown: %q after progress %v, want liftoff after 3", got, progress)
		}
		seen := rec.all()
		if !strings.Contains(seen, "POST HTTP/2.0 text/event-stream") {
			t.Errorf("no tools/call streamed as server-sent events over HTTP/2:\n%s", seen)
		}
		if strings.Contains(seen, "HTTP/1.1") {
			t.Errorf("a response over HTTP/1.1:\n%s", seen)
		}
	})

	t.Run("derived URLs are https", func(t *testing.T) {
		resp, err := hc.Get(base + "/__mcpgate/registry/v0.1/servers")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if want := `"url":"https://` + addr + `/mcp/demo"`; !strings.Contains(string(body), want) {
			t.Errorf("registry: %s\nwant %s", body, want)
		}
	})

	t.Run("plain HTTP", func(t *testing.T) {
		if status, _ := get(t, "http://"+addr+"/healthz"); status != http.StatusBadRequest {
			t.Errorf("plain HTTP on the TLS listener: %d, want 400", status)
		}
	})

	// A rotation is seen by the first handshake after certfile's check interval: poll fresh
	// handshakes until it shows.
	servedSerial := func(want int64) func() bool {
		return func() bool {
			got, err := ca.Serial(addr)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			return got == want
		}
	}
	c, k = ca.Issue(t, 2)
	tlstest.SwapSecret(t, secret, "..2026_12_03_11_00_00.2", c, k)
	gatewaytest.Eventually(t, 20*time.Second, "the rotated certificate served", servedSerial(2))
	if l := s.log("TLS certificate reloaded"); l == nil || l["serial"] != "2" || l["component"] != "tls" {
		t.Errorf("reload log %v", l)
	}

	// A version whose key is garbage: refused (logged once), and the last good certificate stays.
	c, _ = ca.Issue(t, 3)
	tlstest.SwapSecret(t, secret, "..2026_12_03_12_00_00.3", c, []byte("garbage"))
	gatewaytest.Eventually(t, 20*time.Second, "the broken rotation refused", func() bool {
		_, _ = ca.Serial(addr)
		return s.log("TLS certificate not reloaded: keeping the previous one until the files change again") != nil
	})
	if l := s.log("TLS certificate not reloaded: keeping the previous one until the files change again"); l["level"] != "ERROR" ||
		!strings.Contains(fmt.Sprint(l["error"]), "tls: failed to find any PEM data in key input") {
		t.Errorf("refusal log %v", l)
	}
	if !servedSerial(2)() {
		t.Error("the broken rotation replaced the last good certificate")
	}
	resp, err := hc.Get(base + "/healthz") // the connection opened before the rotations still serves
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Errorf("the kept-alive connection: %s, serial %v", resp.Proto, resp.TLS.PeerCertificates[0].SerialNumber)
	}

	c, k = ca.Issue(t, 4)
	tlstest.SwapSecret(t, secret, "..2026_12_03_13_00_00.4", c, k)
	gatewaytest.Eventually(t, 20*time.Second, "the next good certificate served", servedSerial(4))
	if n := strings.Count(s.output(), "TLS certificate not reloaded"); n != 1 {
		t.Errorf("the refusal was logged %d times, want once:\n%s", n, s.output())
	}

	// SIGTERM stops the TLS listener as it stops the plain one, HTTP/2 connection still open.
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("serve still running 30 s after SIGTERM")
	}
	if s.log("stopped") == nil {
		t.Errorf("no clean stop:\n%s", s.output())
	}
}
