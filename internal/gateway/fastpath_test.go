package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/requestid"
)

func TestEveryLogLineOfARequestCarriesItsRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(context.Background(), &config.Project{Routes: []*config.Route{mcpRoute("/mcp/a")}}, Settings{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/mcp/a", "/nowhere"} { // served, and refused (404 at debug)
		buf.Reset()
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader("{}")))
		rid := rec.Header().Get(requestid.Header)
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if rid == "" || len(lines) == 0 || lines[0] == "" {
			t.Fatalf("%s: request id %q, log %q", path, rid, buf.String())
		}
		for _, line := range lines {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil || m["requestId"] != rid {
				t.Errorf("%s: line without requestId %s: %s", path, rid, line)
			}
		}
	}
}

func TestRequestLoggerKeepsTheIDThroughWithAndWithGroup(t *testing.T) {
	var buf bytes.Buffer
	base := slog.NewJSONHandler(&buf, nil)
	slog.New(&requestHandler{Handler: base, rid: "rid-1"}).With("a", 1).WithGroup("g").Info("m", "b", 2)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	g, _ := m["g"].(map[string]any)
	if m["requestId"] != "rid-1" || m["a"] != float64(1) || g["b"] != float64(2) {
		t.Fatalf("got %s", buf.String())
	}
}

func TestGatewayEndpointsStillWinOverRoutes(t *testing.T) {
	srv := newTestServer(t, []*config.Route{mcpRoute("/mcp/a"), mcpRoute("/__mcpgate/shadowed")}, nil, Settings{})
	own := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(name + ":" + r.PathValue("rest")))
		})
	}
	srv.Handle("POST /__mcpgate/shadowed", own("endpoint"))
	srv.Handle("GET /.well-known/thing/{rest...}", own("well-known"))

	tests := []struct {
		name, method, path string
		status             int
		body               string // prefix
	}{
		{"health", "GET", "/healthz", 200, "ok"},
		{"endpoint before route", "POST", "/__mcpgate/shadowed", 200, "endpoint:"},
		{"wildcard endpoint", "GET", "/.well-known/thing/x/y", 200, "well-known:x/y"},
		{"route", "POST", "/mcp/a", 200, `{"auth"`},
		{"unknown", "POST", "/elsewhere", 404, ""},
		// The mux redirects to the clean path, as it did before the index existed.
		{"unclean path still cleaned by the mux", "GET", "/mcp/../healthz", 307, `<a href="/healthz">`},
		{"double slash still cleaned by the mux", "GET", "//healthz", 307, `<a href="/healthz">`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(tt.method, "http://gw.example"+tt.path, strings.NewReader("{}"))
			req.URL.Path = tt.path // keep it unclean
			srv.ServeHTTP(rec, req)
			if rec.Code != tt.status || !strings.HasPrefix(rec.Body.String(), tt.body) {
				t.Fatalf("%s %s: %d %q, want %d %q…", tt.method, tt.path, rec.Code, rec.Body, tt.status, tt.body)
			}
		})
	}
}

func TestOwnIndex(t *testing.T) {
	s := &Server{}
	if s.mayBeOwn("/healthz") {
		t.Fatal("nothing registered, yet the mux would be asked")
	}
	s.indexOwn("GET /healthz")
	s.indexOwn("GET example.com/__mcpgate/auth/{id}")
	for path, want := range map[string]bool{
		"/healthz": true, "/healthz/x": true, "/__mcpgate/auth/1": true,
		"/mcp/a": false, "/": false, "/healthzz": false,
		"/a/../healthz": true, "//x": true, "relative": true,
	} {
		if got := s.mayBeOwn(path); got != want {
			t.Errorf("mayBeOwn(%q) = %v, want %v", path, got, want)
		}
	}
	s.indexOwn("/{tenant}/status")
	if !s.mayBeOwn("/mcp/a") {
		t.Error("a wildcard first segment must send every path to the mux")
	}
}
