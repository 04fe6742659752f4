package gateway

import (
	"io"
	"net/http"
	"time"
)

// Timeouts of the gateway's HTTP server. There is deliberately no ReadTimeout or WriteTimeout:
// either would cut a long server-sent-event stream. Slow clients are bounded piecewise instead:
// request headers by ReadHeaderTimeout, request bodies by the gateway's body deadline
// (Settings.BodyReadTimeout; the proxy sets its own while it buffers an MCP body), streamed
// responses by the proxy's per-write deadline, and idle keep-alive connections by IdleTimeout.
const (
	// ReadHeaderTimeout bounds reading a request's headers (a slowloris sending them a byte at a
	// time is dropped).
	ReadHeaderTimeout = 10 * time.Second
	// IdleTimeout closes a keep-alive connection with no request for this long.
	IdleTimeout = 120 * time.Second
	// DefaultBodyReadTimeout bounds reading a request body, from the moment the request's
	// headers are in until the body's end.
	DefaultBodyReadTimeout = 10 * time.Second
)

// NewHTTPServer returns the http.Server that serves h the way `mcpgate serve` does, with the
// timeouts above.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
	}
}

// boundBody gives a request's body a read deadline, so a client that declares a body and then
// sends it a byte at a time cannot hold a connection (and the handler reading it) for longer than
// BodyReadTimeout. It covers the gateway's own endpoints (forms, JSON APIs) and the bodies nobody
// reads (a 404, a policy's 401), which net/http would otherwise discard after the handler without
// any deadline. The proxy replaces the deadline with its own while it buffers an MCP body.
//
// The deadline is cleared when the body has been read to its end: from then on net/http reads
// the connection in the background to notice the client leaving, and a deadline passing there
// would cancel the request's context under a handler still working (an SSE stream, a slow
// upstream). A request without a body gets no deadline for the same reason. A body that failed
// (the deadline passed) keeps it: net/http then gives up on the rest of the body and closes the
// connection instead of reading it with no deadline at all.
func (s *Server) boundBody(rec *recorder, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return
	}
	d := readDeadliner(rec.ResponseWriter)
	if d == nil || d.SetReadDeadline(time.Now().Add(s.settings.BodyReadTimeout)) != nil {
		return // the connection has no deadlines (a test recorder)
	}
	// The wrapper lives in the recorder: no allocation of its own on every request.
	rec.body = deadlineBody{ReadCloser: r.Body, d: d}
	r.Body = &rec.body
}

// deadliner is the part of http.ResponseController the body deadline needs.
type deadliner interface{ SetReadDeadline(time.Time) error }

// readDeadliner finds SetReadDeadline on w or what it wraps, as http.ResponseController does,
// without allocating one per request.
func readDeadliner(w http.ResponseWriter) deadliner {
	for w != nil {
		if d, ok := w.(deadliner); ok {
			return d
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

// deadlineBody clears the connection's read deadline once the body has been read to its end.
type deadlineBody struct {
	io.ReadCloser
	d    deadliner
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.d.SetReadDeadline(time.Time{})
	}
	return n, err
}
