package review_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, ctx context.Context, url, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// An SSE event reaches the client while the upstream stream is still open, and closing the
// client's side cancels the upstream request.
func TestSSEFlushedAndClientCancelReachesUpstream_Review(t *testing.T) {
	e := newEnv(t, "")
	upstreamDone := make(chan struct{})
	e.up.setAnswer(func(w http.ResponseWriter, r *http.Request, _ string) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Mcp-Session-Id", "sess-42")
		_, _ = io.WriteString(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(upstreamDone)
		return true
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := post(t, ctx, e.gw.URL+"/mcp/public", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, map[string]string{"Mcp-Session-Id": "sess-42"})
	defer resp.Body.Close()
	if got := e.up.lastHeaders().Get("Mcp-Session-Id"); got != "sess-42" {
		t.Errorf("upstream got Mcp-Session-Id %q", got)
	}
	if resp.Header.Get("Mcp-Session-Id") != "sess-42" || resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Errorf("response headers: %v", resp.Header)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "event: message\n" {
		t.Fatalf("first SSE line %q, %v", line, err)
	}
	cancel()
	select {
	case <-upstreamDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request was not cancelled when the client went away")
	}
}

// Gateway-answered errors are problem+json with the request id in the header and the body.
func TestGatewayErrorPaths_Review(t *testing.T) {
	e := newEnv(t, "")
	cases := []struct {
		method, path string
		status       int
	}{
		{"POST", "/nope", 404},
		{"PROPFIND", "/mcp/public", 501},
		{"GET", "/mcp/public", 405},
		{"DELETE", "/mcp/public", 405},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, e.gw.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Status int `json:"status"`
			Trace  struct {
				RequestID string `json:"requestId"`
			} `json:"trace"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		rid := resp.Header.Get("X-Request-Id")
		if resp.StatusCode != tc.status || body.Status != tc.status || rid == "" || body.Trace.RequestID != rid ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s %s: HTTP %d (body status %d, request id %q/%q, %s), want %d problem+json",
				tc.method, tc.path, resp.StatusCode, body.Status, rid, body.Trace.RequestID, resp.Header.Get("Content-Type"), tc.status)
		}
	}
}

// A chunked body over the limit is refused with 413 before anything reaches the upstream.
func TestChunkedBodyOverLimit_Review(t *testing.T) {
	e := newEnv(t, "")
	before := e.up.requests()
	pr, pw := io.Pipe()
	go func() {
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range (5 << 20) / len(chunk) {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequest("POST", e.gw.URL+"/mcp/public", pr)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_ = pr.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("5 MiB chunked body: HTTP %d, want 413", resp.StatusCode)
	}
	if e.up.requests() != before {
		t.Error("an oversized body reached the upstream")
	}
}

// A notification the upstream refuses for want of a connection gets 428 problem+json, never a
// JSON-RPC body and never the upstream's challenge.
func TestNotificationConnectRequiredIs428_Review(t *testing.T) {
	e := newEnv(t, "")
	resp := post(t, context.Background(), e.gw.URL+"/mcp/alpha", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, map[string]string{"X-Review-User": "alice"})
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPreconditionRequired || resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("notification: HTTP %d, WWW-Authenticate %q; want 428 without challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
