package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// serveReal serves h with the http.Server `mcpgate serve` uses on a real loopback listener and
// returns its address.
func serveReal(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := gateway.NewHTTPServer(h)
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return ln.Addr().String()
}

// trickler is a raw connection that sent head (request line and headers, maybe the start of a
// body) and then sends one more byte every interval until the server hangs up or stop is called.
type trickler struct {
	conn   net.Conn
	start  time.Time
	closed chan struct{} // closed when the server closed the connection (read EOF or error)
	got    []byte        // what the server answered before closing
	stopC  chan struct{}
	once   sync.Once
}

func trickle(t *testing.T, addr, head string, interval time.Duration) *trickler {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &trickler{conn: conn, start: time.Now(), closed: make(chan struct{}), stopC: make(chan struct{})}
	t.Cleanup(c.stop)
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.closed)
		c.got, _ = io.ReadAll(conn) // until the server closes it, or stop closes our side
	}()
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-c.stopC:
				return
			case <-c.closed:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte("a")); err != nil {
					return
				}
			}
		}
	}()
	return c
}

func (c *trickler) stop() {
	c.once.Do(func() {
		close(c.stopC)
		_ = c.conn.Close()
	})
}

// closedWithin reports whether the server closed the connection within d of its start.
func (c *trickler) closedWithin(d time.Duration) bool {
	select {
	case <-c.closed:
		return true
	case <-time.After(time.Until(c.start.Add(d))):
		return false
	}
}

// bodyHead is a request with a declared body of 1000 bytes of which only the headers are sent.
func bodyHead(path, contentType string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + contentType + "\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n"
}

// ownEndpointGateway is a gateway with no routes and test endpoints of its own: a form that is
// parsed, a body read to its end before the handler works on for a while, and a slow GET.
func ownEndpointGateway(t *testing.T, bodyTimeout time.Duration) (addr string, ctxErrs chan error) {
	t.Helper()
	srv, err := gateway.New(context.Background(), &config.Project{}, gateway.Settings{Logger: slog.New(slog.DiscardHandler), BodyReadTimeout: bodyTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ctxErrs = make(chan error, 4)
	srv.Handle("POST /__mcpgate/test/form", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "unreadable form", http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "form ok")
	}))
	// Work well past the body deadline after the body is in, or with no body at all.
	work := func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-r.Context().Done():
		case <-time.After(4 * bodyTimeout):
		}
		ctxErrs <- r.Context().Err()
		_, _ = io.WriteString(w, "worked")
	}
	srv.Handle("POST /__mcpgate/test/work", http.HandlerFunc(work))
	srv.Handle("GET /__mcpgate/test/work", http.HandlerFunc(work))
	srv.SetReady(true)
	return serveReal(t, srv), ctxErrs
}

// A body that trickles into one of the gateway's own endpoints (a form) is cut at the body
// deadline: the handler's read fails, the client gets its answer and the connection is closed.
func TestOwnEndpointBodyDeadline(t *testing.T) {
	addr, _ := ownEndpointGateway(t, 300*time.Millisecond)
	c := trickle(t, addr, bodyHead("/__mcpgate/test/form", "application/x-www-form-urlencoded"), 50*time.Millisecond)
	if !c.closedWithin(3 * time.Second) {
		t.Fatal("the connection trickling a form body is still open after 3 s (body deadline 300 ms)")
	}
	if !strings.HasPrefix(string(c.got), "HTTP/1.1 400") {
		t.Errorf("answer %q, want the handler's 400", c.got)
	}
}

// A body nobody reads (no route matches) would be discarded by net/http before the answer's
// headers go out; with the deadline that discard cannot be held open by a trickle either.
func TestUnreadBodyBounded(t *testing.T) {
	addr, _ := ownEndpointGateway(t, 300*time.Millisecond)
	c := trickle(t, addr, bodyHead("/no/such/route", "application/json"), 50*time.Millisecond)
	if !c.closedWithin(3 * time.Second) {
		t.Fatal("the connection trickling a body to an unknown path is still open after 3 s (body deadline 300 ms)")
	}
	if !strings.HasPrefix(string(c.got), "HTTP/1.1 404") {
		t.Errorf("answer %q, want 404", c.got)
	}
}

// The deadline bounds only the body: a handler that keeps working after reading the whole body
// (or a request with no body at all) is not cut, and its context is not cancelled.
func TestBodyDeadlineSparesSlowHandlers(t *testing.T) {
	addr, ctxErrs := ownEndpointGateway(t, 200*time.Millisecond)
	client := &http.Client{Timeout: 10 * time.Second}
	for _, req := range []func() (*http.Response, error){
		func() (*http.Response, error) {
			return client.Post("http://"+addr+"/__mcpgate/test/work", "application/json", strings.NewReader(`{"a":1}`))
		},
		func() (*http.Response, error) { return client.Get("http://" + addr + "/__mcpgate/test/work") },
	} {
		resp, err := req()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "worked" {
			t.Errorf("got %d %q", resp.StatusCode, b)
		}
		if err := <-ctxErrs; err != nil {
			t.Errorf("the handler's context ended while it worked: %v", err)
		}
	}
}

// Slowloris: hundreds of connections trickling headers or bodies, a byte a second, into MCP routes
// and into the gateway's own forms (connect consent, API-key sign-in), on the http.Server
// `mcpgate serve` uses.
// Normal requests keep being answered within 2 s throughout; the trickling headers are cut by
// ReadHeaderTimeout and the trickling form bodies by the body deadline, each within its
// bound plus slack. (MCP bodies are bounded by the proxy's own, longer deadline, which this test
// does not wait for.)
func TestSlowlorisKeepsGatewayServing(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 15 s")
	}
	e := gatewaytest.NewFakeUpstreamEnv(t, "")
	e.Up.SetAnswer(func(w http.ResponseWriter, _ *http.Request, _ string) bool {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}`)
		return true
	})
	addr := serveReal(t, e.Gateway.Server)
	base := "http://" + addr
	const slack = 4 * time.Second

	var headers, mcpBodies, ownBodies []*trickler
	for i := range 300 {
		switch i % 3 {
		case 0:
			headers = append(headers, trickle(t, addr, "POST /mcp/public HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", time.Second))
		case 1:
			mcpBodies = append(mcpBodies, trickle(t, addr, bodyHead("/mcp/public", "application/json")+"{", time.Second))
		default:
			// The connect consent form and the API-key sign-in form.
			if i%2 == 0 {
				ownBodies = append(ownBodies, trickle(t, addr, bodyHead(gateway.DefaultBasePath+"/auth/connections/alpha/connect", "application/x-www-form-urlencoded")+"decision=", time.Second))
			} else {
				ownBodies = append(ownBodies, trickle(t, addr, bodyHead(gateway.DefaultBasePath+"/oauth/login/api-key", "application/x-www-form-urlencoded")+"api_key=", time.Second))
			}
		}
	}

	// Normal traffic, each request on a fresh connection, until every bounded trickle is cut.
	done := make(chan struct{})
	var normal, slowest atomic.Int64
	var failMu sync.Mutex
	var failures []string
	fail := func(s string) {
		failMu.Lock()
		defer failMu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, s)
		}
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	requests := []struct {
		name string
		do   func() (*http.Response, error)
		want int // 0: any answer below 500
	}{
		{"MCP tools/call", func() (*http.Response, error) {
			req, _ := http.NewRequest(http.MethodPost, base+"/mcp/public", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			return client.Do(req)
		}, http.StatusOK},
		{"consent form", func() (*http.Response, error) {
			return client.PostForm(base+gateway.DefaultBasePath+"/auth/connections/alpha/connect", url.Values{"decision": {"approve"}})
		}, 0},
		{"API-key sign-in form", func() (*http.Response, error) {
			return client.PostForm(base+gateway.DefaultBasePath+"/oauth/login/api-key", url.Values{"api_key": {"nope"}})
		}, 0},
		{"healthz", func() (*http.Response, error) { return client.Get(base + "/healthz") }, http.StatusOK},
	}
	var wg sync.WaitGroup
	for _, rq := range requests {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(100 * time.Millisecond):
				}
				start := time.Now()
				resp, err := rq.do()
				d := time.Since(start)
				if err != nil {
					fail(fmt.Sprintf("%s: %v after %s", rq.name, err, d))
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if (rq.want != 0 && resp.StatusCode != rq.want) || resp.StatusCode >= 500 || resp.StatusCode == http.StatusNotFound {
					fail(fmt.Sprintf("%s: status %d, want %d", rq.name, resp.StatusCode, rq.want))
				}
				normal.Add(1)
				for {
					s := slowest.Load()
					if int64(d) <= s || slowest.CompareAndSwap(s, int64(d)) {
						break
					}
				}
			}
		})
	}

	var openHeaders, openBodies int
	for _, c := range headers {
		if !c.closedWithin(gateway.ReadHeaderTimeout + slack) {
			openHeaders++
		}
	}
	for _, c := range ownBodies {
		if !c.closedWithin(gateway.DefaultBodyReadTimeout + slack) {
			openBodies++
		}
	}
	close(done)
	wg.Wait()
	stillTrickling := 0
	for _, c := range mcpBodies {
		select {
		case <-c.closed:
		default:
			stillTrickling++
		}
		c.stop()
	}

	t.Logf("%d normal requests answered, slowest %s; %d MCP body trickles still open at the end (the proxy allows 30 s)",
		normal.Load(), time.Duration(slowest.Load()), stillTrickling)
	for _, f := range failures {
		t.Error(f)
	}
	if normal.Load() < 30 {
		t.Errorf("only %d normal requests were answered", normal.Load())
	}
	if openHeaders > 0 {
		t.Errorf("%d of %d connections trickling headers were still open after %s", openHeaders, len(headers), gateway.ReadHeaderTimeout+slack)
	}
	if openBodies > 0 {
		t.Errorf("%d of %d connections trickling a form body into the gateway's own endpoints were still open after %s", openBodies, len(ownBodies), gateway.DefaultBodyReadTimeout+slack)
	}
}
