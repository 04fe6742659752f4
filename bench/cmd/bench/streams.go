package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/bench/upstream"
)

// The streams workload: how much memory a proxy holds per idle SSE stream. Through one target at
// a time it opens n event streams (a tools/call the upstream answers with one priming event and
// then nothing, holding the stream open) and keeps them all open; the growth of the proxy's
// resident set from before the first to after the last, divided by n, is its cost per stream.

// streamDials bounds the streams being opened at once (the listen backlogs stay short).
const streamDials = 64

// streamSettle is how long the streams stay open, all established, before the RSS is read.
const streamSettle = time.Second

// streamResult is one target's figures.
type streamResult struct {
	n        int
	before   int64 // RSS bytes before opening
	after    int64 // RSS bytes with n streams open
	openTime time.Duration
	err      error
}

// perStream is the RSS growth per stream in bytes.
func (r streamResult) perStream() float64 {
	if r.n == 0 {
		return 0
	}
	return float64(r.after-r.before) / float64(r.n)
}

// idleRequest is l's request asking for an idle stream.
func (l load) idleRequest() []byte {
	l.sse = false
	req := string(l.request())
	return []byte(strings.Replace(req, "\r\n\r\n", "\r\n"+upstream.StreamHeader+": idle\r\n\r\n", 1))
}

// measureStreams opens n idle streams through l's target, reads pid's RSS with them open, and
// closes them.
func measureStreams(ctx context.Context, l load, pid string, n int) streamResult {
	res := streamResult{n: n}
	var err error
	if res.before, err = rss(pid); err != nil {
		res.err = err
		return res
	}
	start := time.Now()
	conns, err := openStreams(ctx, l, n)
	res.openTime = time.Since(start)
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	if err != nil {
		res.err = fmt.Errorf("%d of %d streams open: %w", len(conns), n, err)
		return res
	}
	select {
	case <-ctx.Done():
		res.err = ctx.Err()
		return res
	case <-time.After(streamSettle):
	}
	// Every stream must still be open: a proxy that dropped some would look cheap.
	if err := stillOpen(conns); err != nil {
		res.err = err
		return res
	}
	if res.after, err = rss(pid); err != nil {
		res.err = err
	}
	return res
}

// openStreams opens n idle streams, each on its own connection, and returns once every one has
// delivered its first event (or on the first failure, with the ones open so far).
func openStreams(ctx context.Context, l load, n int) ([]*conn, error) {
	req := l.idleRequest()
	var (
		mu    sync.Mutex
		conns = make([]*conn, 0, n)
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, streamDials)
	)
	for range n {
		sem <- struct{}{}
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := openStream(ctx, l.addr, req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				first = cmp(first, err)
				return
			}
			conns = append(conns, c)
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return conns, first
}

// openStream sends req on a new connection and reads the answer's headers and its first event.
func openStream(ctx context.Context, addr string, req []byte) (*conn, error) {
	c, err := dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	_ = c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.readFirstEvent(req); err != nil {
		c.close()
		return nil, err
	}
	_ = c.nc.SetDeadline(time.Time{})
	return c, nil
}

var errNotAStream = errors.New("answer is not an event stream")

func (c *conn) readFirstEvent(req []byte) error {
	if _, err := c.nc.Write(req); err != nil {
		return fmt.Errorf("writing request: %w", err)
	}
	line, err := c.line()
	if err != nil {
		return fmt.Errorf("reading status line: %w", err)
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200")) {
		return fmt.Errorf("status line %q", line)
	}
	stream := false
	for {
		h, err := c.line()
		if err != nil {
			return fmt.Errorf("reading headers: %w", err)
		}
		if len(h) == 0 {
			break
		}
		if name, value, ok := bytes.Cut(h, []byte(":")); ok && bytes.EqualFold(name, []byte("Content-Type")) {
			stream = bytes.HasPrefix(bytes.TrimSpace(value), []byte("text/event-stream"))
		}
	}
	if !stream {
		return errNotAStream
	}
	// The body is chunked; the chunk framing does not end the event (its CRLF follows a size), so
	// scanning the raw bytes for the event's blank line finds the end of the first event.
	ev := eventScanner{start: time.Now()}
	buf := make([]byte, 512)
	for ev.at == 0 {
		k, err := c.r.Read(buf)
		ev.scan(buf[:k])
		if err != nil && ev.at == 0 {
			return fmt.Errorf("reading the first event: %w", err)
		}
	}
	return nil
}

// stillOpen checks, without blocking, that no stream has been closed by the other side.
func stillOpen(conns []*conn) error {
	closed := 0
	var b [1]byte
	for _, c := range conns {
		if c.r.Buffered() > 0 {
			continue // more data than the first event: still open
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(time.Microsecond))
		_, err := c.nc.Read(b[:])
		_ = c.nc.SetReadDeadline(time.Time{})
		var ne interface{ Timeout() bool }
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			closed++
		}
	}
	if closed > 0 {
		return fmt.Errorf("%d of %d streams were closed or sent more data while idle", closed, len(conns))
	}
	return nil
}

// rss returns the resident set size of process pid in bytes (VmRSS).
func rss(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(string(f[0]), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("parsing VmRSS of %s: %w", pid, err)
				}
				return kb << 10, nil
			}
		}
	}
	return 0, fmt.Errorf("/proc/%s/status: no VmRSS", pid)
}
