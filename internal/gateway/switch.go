package gateway

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
)

// Switch is the http.Handler serve gives its http.Server: it serves each request entirely with the
// generation (a Server built from one configuration) that was current when the request arrived,
// and a reload replaces the current generation without touching the listener
// (docs/architecture.md#reloading-the-configuration).
//
// A replaced generation keeps serving what it started — requests in flight, open streams — and is
// closed (Server.Close, every module's Cleanup) when the last of them ends, however long that
// takes: there is no total timeout that would cut a stream.
type Switch struct {
	cur atomic.Pointer[generation]
	log *slog.Logger

	mu     sync.Mutex // serializes Swap, SetReady and Close
	ready  bool
	closed bool
	n      uint64
}

// generation is one Server and the count of what uses it.
type generation struct {
	srv *Server
	n   uint64
	log *slog.Logger
	// refs is the number of requests the generation is serving, plus one while it is current.
	// It never rises again once it reached zero: acquire only increments a positive count.
	refs    atomic.Int64
	drained chan struct{}
}

// NewSwitch returns a switch serving s as generation 1.
func NewSwitch(s *Server, log *slog.Logger) *Switch {
	if log == nil {
		log = slog.Default()
	}
	sw := &Switch{log: log, n: 1}
	sw.cur.Store(newGeneration(s, 1, log))
	return sw
}

func newGeneration(s *Server, n uint64, log *slog.Logger) *generation {
	g := &generation{srv: s, n: n, log: log, drained: make(chan struct{})}
	g.refs.Store(1)
	return g
}

// ServeHTTP implements http.Handler.
func (sw *Switch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g, counted := sw.acquire()
	if counted {
		// Deferred: a stream the client broke ends in a panic (http.ErrAbortHandler) that must
		// still release the generation.
		defer g.release()
	}
	g.srv.ServeHTTP(w, r)
}

// acquire returns the current generation with one more reference. A generation replaced between
// the load and the increment has no reference left to take once it drained: the loop then finds
// its successor. Only a closed switch (serve shutting down) has a current generation with none;
// its requests are served uncounted.
func (sw *Switch) acquire() (*generation, bool) {
	for {
		g := sw.cur.Load()
		for n := g.refs.Load(); n > 0; n = g.refs.Load() {
			if g.refs.CompareAndSwap(n, n+1) {
				return g, true
			}
		}
		if sw.cur.Load() == g {
			return g, false
		}
	}
}

// release drops one reference; the last one closes the generation.
func (g *generation) release() {
	if g.refs.Add(-1) != 0 {
		return
	}
	if err := g.srv.Close(); err != nil {
		g.log.Error("closing a replaced configuration's modules", "generation", g.n, "error", err)
	}
	close(g.drained)
}

// Current returns the generation serving new requests and its number (1 for the configuration
// serve started with, one more for every reload).
func (sw *Switch) Current() (*Server, uint64) {
	g := sw.cur.Load()
	return g.srv, g.n
}

// Swap makes s the generation that serves new requests, with the readiness SetReady last set, and
// returns the new generation's number and a channel closed once the replaced generation served its
// last request and was closed.
//
// Swapping into a closed switch closes s instead and returns a closed channel.
func (sw *Switch) Swap(s *Server) (n uint64, drained <-chan struct{}) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.closed {
		_ = s.Close()
		done := make(chan struct{})
		close(done)
		return sw.n, done
	}
	sw.n++
	s.SetReady(sw.ready)
	old := sw.cur.Swap(newGeneration(s, sw.n, sw.log))
	old.srv.SetReady(sw.ready) // a request still on the old generation asking /readyz gets the same answer
	old.release()
	return sw.n, old.drained
}

// SetReady sets the readiness /readyz reports, for the current generation and those that follow.
func (sw *Switch) SetReady(ready bool) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.ready = ready
	sw.cur.Load().srv.SetReady(ready)
}

// Close releases the current generation, after serve stopped accepting requests: it is closed
// once its remaining requests end (at once when none is left), and the returned channel is closed
// then. Requests that still arrive are served by it, uncounted. Closing twice is harmless.
func (sw *Switch) Close() <-chan struct{} {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	g := sw.cur.Load()
	if !sw.closed {
		sw.closed = true
		g.release()
	}
	return g.drained
}
