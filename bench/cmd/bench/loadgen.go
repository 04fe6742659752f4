package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/bench/upstream"
)

// The load generator speaks just enough HTTP/1.1 to send a prebuilt POST and read the answer
// (Content-Length, chunked, or until close), timing the whole response and, for event streams,
// the first complete event. It is several times cheaper per request than net/http's client,
// which matters when it shares two cores with the proxy it measures.

// load describes one measurement: concurrency workers, each with its own keep-alive connection,
// send requests back to back until the duration is over.
type load struct {
	addr        string // host:port
	path        string
	sse         bool
	header      string // extra request header lines, each ending in CRLF (credentials)
	concurrency int
	duration    time.Duration
}

// sample is what a measurement returns.
type sample struct {
	requests int
	errors   int
	firstErr error
	elapsed  time.Duration
	latency  []time.Duration // whole response, sorted
	ttfe     []time.Duration // time to first SSE event, sorted (sse only)
}

func (s *sample) rps() float64 { return float64(s.requests) / s.elapsed.Seconds() }

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.5) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

func (l load) request() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\n", l.path, l.addr)
	b.WriteString("Content-Type: application/json\r\n")
	b.WriteString("Accept: application/json, text/event-stream\r\n")
	b.WriteString("MCP-Protocol-Version: 2025-06-18\r\n")
	b.WriteString("User-Agent: mcpgate-bench\r\n")
	if l.sse {
		b.WriteString(upstream.StreamHeader + ": sse\r\n")
	}
	b.WriteString(l.header)
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(upstream.ToolsCall))
	b.WriteString(upstream.ToolsCall)
	return b.Bytes()
}

// run measures l. It stops early, with what it has, when ctx ends.
func (l load) run(ctx context.Context) *sample {
	req := l.request()
	deadline := time.Now().Add(l.duration)
	type worker struct {
		lat, ttfe []time.Duration
		errors    int
		firstErr  error
	}
	ws := make([]worker, l.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range ws {
		w := &ws[i]
		w.lat = make([]time.Duration, 0, 4096)
		wg.Go(func() {
			var c *conn
			defer func() {
				if c != nil {
					c.close()
				}
			}()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if c == nil {
					var err error
					if c, err = dial(ctx, l.addr); err != nil {
						w.errors++
						w.firstErr = cmp(w.firstErr, err)
						// Do not spin on a refused connection.
						select {
						case <-ctx.Done():
						case <-time.After(10 * time.Millisecond):
						}
						continue
					}
				}
				r, err := c.do(req, l.sse)
				if err != nil {
					w.errors++
					w.firstErr = cmp(w.firstErr, err)
					c.close()
					c = nil
					continue
				}
				w.lat = append(w.lat, r.total)
				if l.sse {
					w.ttfe = append(w.ttfe, r.firstEvent)
				}
				if r.closed {
					c.close()
					c = nil
				}
			}
		})
	}
	wg.Wait()
	s := &sample{elapsed: time.Since(start)}
	for i := range ws {
		s.latency = append(s.latency, ws[i].lat...)
		s.ttfe = append(s.ttfe, ws[i].ttfe...)
		s.errors += ws[i].errors
		s.firstErr = cmp(s.firstErr, ws[i].firstErr)
	}
	s.requests = len(s.latency)
	slices.Sort(s.latency)
	slices.Sort(s.ttfe)
	return s
}

func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// conn is one keep-alive connection of a worker.
type conn struct {
	nc   net.Conn
	r    *bufio.Reader
	body []byte
}

func dial(ctx context.Context, addr string) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &conn{nc: nc, r: bufio.NewReaderSize(nc, 16<<10), body: make([]byte, 0, 4096)}, nil
}

func (c *conn) close() { _ = c.nc.Close() }

// timing is one response's measurements.
type timing struct {
	total      time.Duration
	firstEvent time.Duration
	closed     bool // the server will close the connection
}

var errBadResponse = errors.New("response is not a tools/call result")

// do sends req and reads the whole response. A response counts only when it is a 200 whose body
// holds a JSON-RPC result (and, for SSE, at least one event before it).
func (c *conn) do(req []byte, sse bool) (timing, error) {
	var t timing
	_ = c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	if _, err := c.nc.Write(req); err != nil {
		return t, fmt.Errorf("writing request: %w", err)
	}
	line, err := c.line()
	if err != nil {
		return t, fmt.Errorf("reading status line: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return t, fmt.Errorf("malformed status line %q", line)
	}
	status := string(line[9:12])
	length, chunked := -1, false
	for {
		h, err := c.line()
		if err != nil {
			return t, fmt.Errorf("reading headers: %w", err)
		}
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return t, fmt.Errorf("malformed header %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return t, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			t.closed = bytes.EqualFold(value, []byte("close"))
		}
	}
	if line[7] == '0' && length < 0 && !chunked {
		t.closed = true // HTTP/1.0 without a length ends at close
	}
	ev := eventScanner{start: start}
	c.body = c.body[:0]
	switch {
	case chunked:
		err = c.readChunked(&ev)
	case length >= 0:
		err = c.readN(length, &ev)
	default:
		err = c.readToEOF(&ev)
		t.closed = true
	}
	if err != nil {
		return t, fmt.Errorf("reading body: %w", err)
	}
	t.total = time.Since(start)
	if status != "200" {
		return t, fmt.Errorf("status %s: %.200s", status, c.body)
	}
	if !bytes.Contains(c.body, []byte(`"result":`)) {
		return t, errBadResponse
	}
	if sse {
		if ev.at == 0 || !bytes.Contains(c.body, []byte("notifications/progress")) {
			return t, fmt.Errorf("expected an event stream, got %.200s", c.body)
		}
		t.firstEvent = ev.at
	}
	return t, nil
}

// line reads one header line without its CRLF. The slice is valid until the next read.
func (c *conn) line() ([]byte, error) {
	l, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	l = bytes.TrimSuffix(l, []byte("\n"))
	return bytes.TrimSuffix(l, []byte("\r")), nil
}

// readN reads an n-byte body (or chunk). A chunk is read whole before it is scanned, so the first
// event is timed when its chunk has arrived: proxies send one chunk per flushed event.
func (c *conn) readN(n int, ev *eventScanner) error {
	for n > 0 {
		k := min(n, c.r.Size())
		p, err := c.r.Peek(k)
		if err != nil {
			return err
		}
		c.take(p, ev)
		_, _ = c.r.Discard(k)
		n -= k
	}
	return nil
}

func (c *conn) take(p []byte, ev *eventScanner) {
	c.body = append(c.body, p...)
	ev.scan(p)
}

func (c *conn) readChunked(ev *eventScanner) error {
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		if i := bytes.IndexByte(l, ';'); i >= 0 {
			l = l[:i]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(l)), 16, 64)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", l)
		}
		if size == 0 {
			for { // trailers
				l, err := c.line()
				if err != nil {
					return err
				}
				if len(l) == 0 {
					return nil
				}
			}
		}
		if err := c.readN(int(size), ev); err != nil {
			return err
		}
		if l, err := c.line(); err != nil || len(l) != 0 {
			return fmt.Errorf("missing CRLF after chunk: %v", err)
		}
	}
}

func (c *conn) readToEOF(ev *eventScanner) error {
	buf := make([]byte, 4096)
	for {
		n, err := c.r.Read(buf)
		c.take(buf[:n], ev)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// eventScanner notes when the first SSE event is complete: the first blank line ("\n\n", or
// "\r\n\r\n") of the body, across read boundaries.
type eventScanner struct {
	start time.Time
	at    time.Duration
	nl    int // newlines seen in a row (CR ignored)
}

func (e *eventScanner) scan(p []byte) {
	if e.at != 0 {
		return
	}
	for _, b := range p {
		switch b {
		case '\n':
			e.nl++
			if e.nl == 2 {
				e.at = time.Since(e.start)
				return
			}
		case '\r':
		default:
			e.nl = 0
		}
	}
}
