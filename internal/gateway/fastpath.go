package gateway

import (
	"context"
	"log/slog"
	"maps"
	"strings"
)

// The request path's two per-request costs that did not need to be paid on every request
// (BENCHMARKS.md, "Gateway throughput"): asking the gateway's own mux about paths it cannot
// match, and pre-formatting the request id into a logger that usually logs nothing.

// ownIndex lists the first path segments of the gateway's own endpoints. Every request to a route
// would otherwise go through the own mux first, and a miss there is not free: ServeMux works out
// the 405 method set, five allocations per request.
type ownIndex struct {
	all   bool // some pattern matches any first segment ("/", "/{x}/…"): always ask the mux
	roots map[string]bool
}

// indexOwn adds pattern ("[METHOD ][HOST]/path") to the index, copy-on-write so requests read it
// without a lock.
func (s *Server) indexOwn(pattern string) {
	_, path, _ := strings.Cut(pattern, "/")
	seg, _, _ := strings.Cut(path, "/")
	next := &ownIndex{roots: map[string]bool{}}
	if old := s.ownIndex.Load(); old != nil {
		next.all = old.all
		maps.Copy(next.roots, old.roots)
	}
	if seg == "" || strings.ContainsAny(seg, "{}") {
		next.all = true
	} else {
		next.roots[seg] = true
	}
	s.ownIndex.Store(next)
}

// mayBeOwn reports whether path could match a gateway endpoint. Paths the mux would clean and
// redirect ("//x", "/./x", "/a/../x") always go to the mux, as before.
func (s *Server) mayBeOwn(path string) bool {
	idx := s.ownIndex.Load()
	switch {
	case idx == nil:
		return false
	case idx.all, !strings.HasPrefix(path, "/"), strings.Contains(path, "//"), strings.Contains(path, "/."):
		return true
	}
	seg, _, _ := strings.Cut(path[1:], "/")
	return idx.roots[seg]
}

// requestHandler adds the request id to every record a request logs. Unlike Logger.With, which
// formats the attribute for the handler on every request, it does nothing until a record is
// actually handled: at the usual levels most requests log nothing.
//
// With tracing on, it adds the trace id too, when the request's span is recording
// (docs/architecture.md#traces).
type requestHandler struct {
	slog.Handler
	rid     string
	traceID string // "" when the request is not traced
}

func (h *requestHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(slog.String("requestId", h.rid))
	if h.traceID != "" {
		r.AddAttrs(slog.String("traceId", h.traceID))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *requestHandler) ids() []slog.Attr {
	if h.traceID == "" {
		return []slog.Attr{slog.String("requestId", h.rid)}
	}
	return []slog.Attr{slog.String("requestId", h.rid), slog.String("traceId", h.traceID)}
}

func (h *requestHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.Handler.WithAttrs(append(h.ids(), as...))
}

func (h *requestHandler) WithGroup(name string) slog.Handler {
	return h.Handler.WithAttrs(h.ids()).WithGroup(name)
}

var _ slog.Handler = (*requestHandler)(nil)
