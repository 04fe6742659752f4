package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// countingConn counts the writes made on a connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestForwardedRequestIsOneWrite: a forwarded POST leaves in one write, request line, headers and
// body together. ReverseProxy wraps the outgoing body in a reader net/http does not know is in
// memory, which makes the transport flush the headers and write the body in a second write: a
// syscall (and on a real network possibly a packet) more per request.
func TestForwardedRequestIsOneWrite(t *testing.T) {
	up := newUpstream(t, nil)
	var writes atomic.Int64
	tr := newTransport()
	d := &net.Dialer{}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, writes: &writes}, nil
	}
	t.Cleanup(tr.CloseIdleConnections)
	gw := newGateway(t, mcpProxy(up.URL, Settings{Transport: tr}), up.URL, nil)
	resp := post(t, t.Context(), gw.url(), initializeBody, nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize through the gateway: %s", resp.Status)
	}
	if n := writes.Load(); n != 1 {
		t.Fatalf("the forwarded initialize took %d writes to the upstream connection, want 1", n)
	}
}
