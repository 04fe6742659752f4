package gateway

import (
	"io"
	"net/http"
	"strings"
)

// recorder wraps the ResponseWriter to know the status and byte count for the access log, and to
// apply the route's CORS policy to every response, whoever writes it (handler, policy or error).
// It unwraps for http.ResponseController, so full duplex, deadlines and flushing keep working.
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
	cors        *corsPolicy
	origin      string
	// own is set for the gateway's own endpoints, which set their CORS headers themselves (the
	// metadata documents allow any origin); route CORS policies do not apply to them.
	own bool
	// body is the request body's deadline wrapper (boundBody), kept here to save an allocation.
	body deadlineBody
}

func (w *recorder) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code >= 200 {
		w.wroteHeader = true
		w.status = code
		if !w.own {
			applyCORS(w.Header(), w.cors, w.origin)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush lets ReverseProxy flush SSE events through the wrapper.
func (w *recorder) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap is for http.ResponseController.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *recorder) statusOrOK() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// applyCORS replaces any CORS headers in h with the route policy's: "none" strips them.
func applyCORS(h http.Header, cp *corsPolicy, origin string) {
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(h, k)
		}
	}
	if cp == nil || origin == "" || !cp.allowsOrigin(origin) {
		return
	}
	cp.setResponseHeaders(h, origin)
}

// writeResponse sends an *http.Response produced by a policy or hook, streaming its body.
func writeResponse(w http.ResponseWriter, resp *http.Response) {
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = append(h[k][:0:0], vs...)
	}
	status := resp.StatusCode
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	if resp.Body == nil {
		return
	}
	defer resp.Body.Close()
	stream := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	if !stream {
		_, _ = io.Copy(w, resp.Body)
		return
	}
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			_ = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}
