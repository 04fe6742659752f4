// Package upstream is the MCP-shaped server the benchmark proxies to. It answers a JSON-RPC
// tools/call with a fixed-size result, in JSON or as a short SSE stream, and does nothing else: no
// Go SDK, no session, no JSON decoding beyond finding the request id, so the CPU the benchmark
// measures is the proxy's, not the upstream's.
//
// An SSE answer (request header X-Bench-Stream: sse) is two events: a progress notification, sent
// and flushed at once, then the result after SSEDelay. Time to first event therefore shows whether
// a proxy forwards events as they come or holds them until the stream ends. An idle stream
// (X-Bench-Stream: idle) is one priming event, flushed at once, and then nothing until the client
// goes away: what a long-running tool call or a quiet notification stream costs a proxy.
//
// With an AuthServer (Handler.Auth) the upstream is an OAuth-protected resource with its own
// authorization server; see AuthServer.
package upstream

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// StreamHeader selects the answer's form: "sse" for an event stream, "idle" for an event stream
// that stays open after its first event, anything else JSON.
const StreamHeader = "X-Bench-Stream"

// IdleEvent is the one event an idle stream sends (an MCP-style priming event: an id, no data).
const IdleEvent = "id: bench-0\ndata: \n\n"

// DefaultSSEDelay is the pause between the progress event and the result of an SSE answer.
const DefaultSSEDelay = 2 * time.Millisecond

// ResultTextSize is the size of the text content in every tools/call result, a typical small
// tool answer.
const ResultTextSize = 512

// ToolsCall is the request body the benchmark sends (184 bytes), shaped like a real client's.
const ToolsCall = `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello from the benchmark load generator","count":3},"_meta":{"progressToken":"bench-1"}}}`

var resultText = strings.Repeat("x", ResultTextSize)

// Handler answers POST tools/call requests. The zero value is ready to use.
type Handler struct {
	// SSEDelay is the pause between the two events of an SSE answer; zero means DefaultSSEDelay,
	// a negative value none.
	SSEDelay time.Duration
	// Auth, when set, protects /mcp and serves the authorization server on every other path.
	Auth *AuthServer
}

// maxBody bounds what the upstream reads of a request.
const maxBody = 64 << 10

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.Auth != nil {
		if r.URL.Path != ResourcePath {
			h.Auth.ServeHTTP(w, r)
			return
		}
		if !h.Auth.Allow(r) {
			h.Auth.Challenge(w, r)
			return
		}
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		http.Error(w, "reading body", http.StatusBadRequest)
		return
	}
	id, ok := requestID(body)
	if !ok || !bytes.Contains(body, []byte(`"tools/call"`)) {
		http.Error(w, "expected a tools/call request with an id", http.StatusBadRequest)
		return
	}
	switch r.Header.Get(StreamHeader) {
	case "sse":
		h.stream(w, r, id)
		return
	case "idle":
		idle(w, r)
		return
	}
	out := result(id)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}

func (h *Handler) stream(w http.ResponseWriter, r *http.Request, id []byte) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	progress := `event: message` + "\n" +
		`data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"bench-1","progress":1,"total":2}}` + "\n\n"
	_, _ = io.WriteString(w, progress)
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	delay := h.SSEDelay
	if delay == 0 {
		delay = DefaultSSEDelay
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	var b bytes.Buffer
	b.WriteString("event: message\ndata: ")
	b.Write(result(id))
	b.WriteString("\n\n")
	_, _ = w.Write(b.Bytes())
}

// idle sends the priming event and holds the stream open, sending nothing, until the client (or
// the proxy in front) closes it.
func idle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, IdleEvent)
	if err := http.NewResponseController(w).Flush(); err != nil {
		return
	}
	<-r.Context().Done()
}

// result is the JSON-RPC response to request id.
func result(id []byte) []byte {
	b := make([]byte, 0, ResultTextSize+128)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":{"content":[{"type":"text","text":"`...)
	b = append(b, resultText...)
	b = append(b, `"}],"isError":false}}`...)
	return b
}

// requestID returns the raw JSON value of the top-level "id" member when it is a number or a
// plain string (what every MCP client sends); a real parser is not the point here.
func requestID(body []byte) ([]byte, bool) {
	i := bytes.Index(body, []byte(`"id":`))
	if i < 0 {
		return nil, false
	}
	v := bytes.TrimLeft(body[i+len(`"id":`):], " ")
	if len(v) == 0 {
		return nil, false
	}
	if v[0] == '"' {
		end := bytes.IndexByte(v[1:], '"')
		if end < 0 {
			return nil, false
		}
		return v[:end+2], true
	}
	end := 0
	for end < len(v) && (v[end] == '-' || (v[end] >= '0' && v[end] <= '9')) {
		end++
	}
	return v[:end], end > 0
}
