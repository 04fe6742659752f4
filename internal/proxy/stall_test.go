package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A client that declares an MCP body and then sends it a byte at a time gets a 408 once the body
// deadline passes, and its connection is closed: net/http's discard of the unread rest, before
// the answer's headers go out, must not read the trickle with no deadline at all.
func TestStalledBodyClosesConnection(t *testing.T) {
	old := bodyReadTimeout
	bodyReadTimeout = 300 * time.Millisecond
	t.Cleanup(func() { bodyReadTimeout = old })
	up := newUpstream(t, jsonStateless)
	gw := newGateway(t, mcpProxy(up.URL, Settings{}), up.URL, nil)

	conn, err := net.Dial("tcp", gw.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /mcp HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // one byte every 50 ms, until the test ends or the server hangs up
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()

	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer within 5 s while the body trickles: %v", err)
	}
	body, _ := io.ReadAll(resp.Body) // ends when the server closes the connection
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), ReasonBodyTimeout) {
		t.Errorf("got %d %s, want 408 %s", resp.StatusCode, body, ReasonBodyTimeout)
	}
	if !resp.Close && resp.Header.Get("Connection") != "close" {
		// The connection must not be kept for another request: the rest of the body is on it.
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Error("the connection stayed open after the stalled body")
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("answered and closed after %s, want about the body deadline (300ms)", d)
	}
}
