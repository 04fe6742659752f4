// Regression guards from the security review of forwarding (SSE flushing and cancellation, body
// limits, challenge stripping, the gateway's error answers), driven through a whole gateway in
// front of gatewaytest.FakeUpstream so each test controls exactly what the upstream answers.
// Their names end in _Review.
package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// reviewPost posts body to url with ctx and the MCP content headers plus hdr; the caller closes
// the response body.
func reviewPost(t *testing.T, ctx context.Context, url, body string, hdr map[string]string) *http.Response {
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
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	upstreamDone := make(chan struct{})
	e.Up.SetAnswer(func(w http.ResponseWriter, r *http.Request, _ string) bool {
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
	resp := reviewPost(t, ctx, e.Gateway.URL+"/mcp/public", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, map[string]string{"Mcp-Session-Id": "sess-42"})
	defer resp.Body.Close()
	if got := e.Up.LastHeaders().Get("Mcp-Session-Id"); got != "sess-42" {
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
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
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
		req, _ := http.NewRequest(tc.method, e.Gateway.URL+tc.path, nil)
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
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	before := e.Up.Requests()
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
	req, _ := http.NewRequest("POST", e.Gateway.URL+"/mcp/public", pr)
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
	if e.Up.Requests() != before {
		t.Error("an oversized body reached the upstream")
	}
}

// FIXED FINDING (regression guard): the MCP proxy allocates a buffer of the request's declared Content-Length (up to the
// 4 MiB limit) before a byte of the body has arrived, and the server has no body read deadline.
// On a route without gateway auth (or with any valid key) 20 connections that each declare 4 MiB
// and send one byte pin 80 MiB until they give up; a few thousand pin gigabytes.
func TestDeclaredLengthNotPreallocated_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	addr := strings.TrimPrefix(e.Gateway.URL, "http://")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	const conns = 20
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /mcp/public HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", addr, 4<<20)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		runtime.ReadMemStats(&ms)
		if grown := int64(ms.HeapAlloc) - int64(base); grown > conns*(2<<20) {
			t.Fatalf("%d stalled requests that sent one byte each hold %d MiB of heap", conns, grown>>20)
		}
		<-time.After(100 * time.Millisecond)
	}
}

// A public MCP route passes the upstream's 401 through but never its WWW-Authenticate challenge
// (the MCP client would start OAuth against the upstream's authorization server).
func TestPublicRouteUpstreamChallengeStripped_Review(t *testing.T) {
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	resp, _ := e.ToolsCall(e.Gateway, "/mcp/public", "", map[string]string{"Authorization": "Bearer client-token"})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want the upstream's 401", resp.StatusCode)
	}
	if v := resp.Header.Get("WWW-Authenticate"); v != "" {
		t.Errorf("upstream challenge reached the MCP client: %q", v)
	}
	if got := e.Up.LastHeaders().Get("Authorization"); got != "" {
		t.Errorf("the client's Authorization reached a public upstream: %q", got)
	}
}
