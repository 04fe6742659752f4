package proxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unsafe"

	"github.com/mcpgate/mcpgate/internal/jsonspan"
	"github.com/mcpgate/mcpgate/internal/telemetry"
)

// Per-capability analytics (docs/architecture.md#capability-analytics). A single JSON-RPC request
// that calls a tool, a prompt or a resource gets two log events, mcp_capability_invoked (debug,
// before forwarding) and mcp_capability_completed (info, when the answer has been copied), and is
// counted in telemetry's per-route, per-capability metrics. A list request's answer teaches the
// metrics which names the upstream lists through the route (the only names that become labels).
// Nothing here ever writes an audit row.

// Event names of the capability analytics.
const (
	EventCapabilityInvoked   = "mcp_capability_invoked"
	EventCapabilityCompleted = "mcp_capability_completed"
)

// Failure origins (failureOrigin).
const (
	originGateway  = "gateway"
	originUpstream = "upstream"
	originClient   = "client"
)

// maxListAnswer bounds the list answer kept to learn names from (a longer one teaches nothing).
const maxListAnswer = 1 << 20

// capCall is what the analytics know of one forwarded request.
type capCall struct {
	method, name string // a call: tools/call with its tool's name, …
	listOf       string // a list request: the call method whose names its answer lists
	client       string // the MCP client's name, when known
	forwarded    time.Time
	done         bool
}

// observeRequest returns what the analytics follow of a request body, and false when they follow
// nothing: only single requests (not batches, not notifications) of the call and list methods. It
// reads the body's top-level members as spans (jsonspan): no allocation but the name's string.
func observeRequest(body []byte) (capCall, bool) {
	if !bytes.Contains(body, []byte(`"tools/`)) && !bytes.Contains(body, []byte(`"prompts/`)) && !bytes.Contains(body, []byte(`"resources/`)) {
		return capCall{}, false
	}
	var top [8]jsonspan.Member
	ms, err := jsonspan.Members(body, top[:0])
	if err != nil {
		return capCall{}, false
	}
	var method, params []byte
	hasID, v2 := false, false
	for i := range ms {
		m := &ms[i]
		v := body[m.VS:m.VE]
		switch {
		case m.Is("jsonrpc"):
			v2 = string(v) == `"2.0"`
		case m.Is("id"):
			hasID = string(v) != "null"
		case m.Is("method"):
			method = v
		case m.Is("params"):
			params = v
		}
	}
	if !v2 || !hasID || len(method) < 2 {
		return capCall{}, false
	}
	var cc capCall
	switch string(method) {
	case `"tools/call"`:
		cc.method = "tools/call"
	case `"prompts/get"`:
		cc.method = "prompts/get"
	case `"resources/read"`:
		cc.method = "resources/read"
	case `"tools/list"`:
		return capCall{listOf: "tools/call"}, true
	case `"prompts/list"`:
		return capCall{listOf: "prompts/get"}, true
	case `"resources/list"`:
		return capCall{listOf: "resources/read"}, true
	default:
		return capCall{}, false
	}
	key := "name"
	if cc.method == "resources/read" {
		key = "uri"
	}
	var inner [8]jsonspan.Member
	ps, err := jsonspan.Members(params, inner[:0])
	if err != nil {
		return capCall{}, false
	}
	for i := range ps {
		if !ps[i].Is(key) {
			continue
		}
		v := params[ps[i].VS:ps[i].VE]
		if inner, ok := jsonspan.PlainStringValue(v); ok && len(inner) > 0 {
			// The name shares the body's memory: the body is never written after it was read and
			// lives as long as the call; telemetry keeps only its own copies (Label).
			cc.name = unsafe.String(&inner[0], len(inner))
		} else {
			cc.name, _ = jsonspan.StringValue(v)
		}
	}
	return cc, cc.name != ""
}

// invoked logs mcp_capability_invoked as the request is forwarded.
func (cl *call) invoked() {
	cc := &cl.cap
	cc.forwarded = time.Now()
	if cc.method == "" || cl.pc.Log == nil || !cl.pc.Log.Enabled(cl, slog.LevelDebug) {
		return
	}
	cl.pc.Log.LogAttrs(cl, slog.LevelDebug, "capability invoked", slog.String("event", EventCapabilityInvoked),
		slog.String("operationId", cl.routeID()), slog.String("mcpMethod", cc.method), slog.String("capabilityName", cc.name),
		slog.String("clientName", cc.client))
}

func (cl *call) routeID() string {
	if cl.pc.Route == nil {
		return ""
	}
	return cl.pc.Route.OperationID
}

// completed records the call's end once: the completion event and the metrics.
func (cl *call) completed(outcome, origin, reason string, mcpStatus int) {
	cc := &cl.cap
	if cc.done {
		return
	}
	cc.done = true
	{
		now := time.Now()
		var upstream time.Duration
		if !cc.forwarded.IsZero() {
			upstream = now.Sub(cc.forwarded)
		}
		total := now.Sub(cl.pc.Start)
		if cl.pc.Start.IsZero() || total < upstream {
			total = upstream
		}
		gateway := total - upstream
		route := cl.routeID()
		cl.eng.capabilities(route).Record(telemetry.CapabilityCall{Method: cc.method, Name: cc.name, Outcome: outcome,
			Gateway: gateway, Upstream: upstream})
		if cl.pc.Log == nil || !cl.pc.Log.Enabled(cl, slog.LevelInfo) {
			return
		}
		attrs := []slog.Attr{slog.String("event", EventCapabilityCompleted), slog.String("operationId", route),
			slog.String("mcpMethod", cc.method), slog.String("capabilityName", cc.name), slog.String("clientName", cc.client),
			slog.String("outcome", outcome), slog.Int("mcpStatus", mcpStatus),
			slog.Float64("gatewayLatencyMs", ms(gateway)), slog.Float64("upstreamLatencyMs", ms(upstream))}
		if origin != "" {
			attrs = append(attrs, slog.String("failureOrigin", origin))
		}
		if reason != "" {
			attrs = append(attrs, slog.String("reasonCode", reason))
		}
		// The request has ended: its context may be done, the log line must still be written.
		cl.pc.Log.LogAttrs(context.Background(), slog.LevelInfo, "capability completed", attrs...)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// failed records a call that ended in a gateway or transport error (nothing was copied).
func (cl *call) failed(status int, reason string) {
	if !cl.capOn || cl.cap.method == "" {
		return
	}
	switch {
	case status == StatusClientClosedRequest:
		cl.completed(telemetry.OutcomeCancelled, originClient, reason, 0)
	case reason == ReasonTimeout || reason == ReasonUnreachable:
		cl.completed(telemetry.OutcomeFailure, originUpstream, reason, 0)
	default:
		cl.completed(telemetry.OutcomeFailure, originGateway, reason, 0)
	}
}

// watchAnswer wraps the answer the client gets (after every hook) so its end is recorded.
func (cl *call) watchAnswer(resp *http.Response) {
	cc := &cl.cap
	if cc.method == "" {
		if resp.StatusCode == http.StatusOK && cl.pc.Route != nil && cl.eng.capabilities(cl.routeID()).ShouldLearn(cc.listOf, time.Now()) {
			resp.Body = &listAnswer{ReadCloser: resp.Body, cl: cl, sse: isEventStream(resp.Header)}
		}
		return
	}
	cl.watch = answerWatch{ReadCloser: resp.Body, cl: cl, status: resp.StatusCode}
	resp.Body = &cl.watch
}

// answerWatch follows a call's answer as it is copied to the client and records its outcome when
// it is closed. It scans the bytes for the JSON-RPC answer's shape (a result, isError, an error
// and its code) without parsing them; a marker split between two reads is found through the tail
// kept from the previous one.
type answerWatch struct {
	io.ReadCloser
	cl     *call
	status int

	// window holds the last bytes of the previous read, then the first of this one.
	window                        [2 * tailKeep]byte
	tail                          int
	result, isError, errSeen, eof bool
	code                          int
	inputRequired                 bool
}

var (
	markResult        = []byte(`"result":`)
	markIsError       = []byte(`"isError":true`)
	markIsErrorSpaced = []byte(`"isError": true`)
	markError         = []byte(`"error":{`)
	markCode          = []byte(`"code":`)
	markInputRequired = []byte(`"input_required"`)
)

// tailKeep is how many bytes of a read are kept to find markers split across reads.
const tailKeep = 64

func (a *answerWatch) Read(p []byte) (int, error) {
	n, err := a.ReadCloser.Read(p)
	if n > 0 {
		a.scan(p[:n])
	}
	if err == io.EOF {
		a.eof = true
	}
	return n, err
}

func (a *answerWatch) scan(b []byte) {
	// A marker split between two reads lies in the window: the previous read's tail and this
	// read's head. Markers are shorter than tailKeep.
	if a.tail > 0 {
		n := a.tail + copy(a.window[a.tail:], b)
		a.look(a.window[:n])
	}
	a.look(b)
	if len(b) >= tailKeep {
		a.tail = copy(a.window[:], b[len(b)-tailKeep:])
	} else {
		// Keep the newest tailKeep bytes of the old tail and b.
		old := min(a.tail, tailKeep-len(b))
		copy(a.window[:], a.window[a.tail-old:a.tail])
		a.tail = old + copy(a.window[old:], b)
	}
}

// look sets what buf shows of the answer. Every marker starts with a quote: one pass hops from
// quote to quote (IndexByte, vectorised) and compares there, rather than searching buf once per
// marker — JSON is full of quotes, which sends bytes.Index to its brute-force loop (that was 18%
// of a no-policy request's CPU in process).
func (a *answerWatch) look(buf []byte) {
	for i := 0; i < len(buf); i++ {
		j := bytes.IndexByte(buf[i:], '"')
		if j < 0 {
			return
		}
		i += j
		at := buf[i:]
		if len(at) < 2 {
			return
		}
		switch at[1] {
		case 'r':
			if !a.result && bytes.HasPrefix(at, markResult) {
				a.result = true
			}
		case 'i':
			switch {
			case !a.isError && (bytes.HasPrefix(at, markIsError) || bytes.HasPrefix(at, markIsErrorSpaced)):
				a.isError = true
			case !a.inputRequired && bytes.HasPrefix(at, markInputRequired):
				a.inputRequired = true
			}
		case 'e':
			if !a.errSeen && bytes.HasPrefix(at, markError) {
				rest := at[len(markError):]
				if k := bytes.Index(rest, markCode); k >= 0 {
					if code, ok := leadingInt(rest[k+len(markCode):]); ok {
						a.errSeen, a.code = true, code
					}
				}
			}
		}
	}
}

// leadingInt reads the integer at the start of b, if it is complete there.
func leadingInt(b []byte) (int, bool) {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == start || i == len(b) {
		return 0, false
	}
	n, err := strconv.Atoi(string(b[:i]))
	return n, err == nil
}

func (a *answerWatch) Close() error {
	err := a.ReadCloser.Close()
	outcome, origin, status := a.outcome()
	a.cl.completed(outcome, origin, "", status)
	return err
}

// connectRequiredCode is the JSON-RPC code of a connect-required answer (mcpwire's -32042).
const connectRequiredCode = -32042

func (a *answerWatch) outcome() (outcome, origin string, mcpStatus int) {
	switch {
	case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden:
		return telemetry.OutcomeDenied, originUpstream, 0
	case a.status >= 500:
		return telemetry.OutcomeFailure, originUpstream, 0
	case a.errSeen && a.code == connectRequiredCode:
		return telemetry.OutcomeConnectRequired, "", a.code
	case a.errSeen:
		// A JSON-RPC error, also in a 4xx body (some servers answer an unknown tool with 400).
		return telemetry.OutcomeApplicationError, originUpstream, a.code
	case a.status >= 400:
		return telemetry.OutcomeFailure, originClient, 0
	case a.inputRequired && !a.isError:
		return telemetry.OutcomeConnectRequired, "", 0
	case a.result && a.isError:
		return telemetry.OutcomeApplicationError, originUpstream, 0
	case a.result:
		return telemetry.OutcomeSuccess, "", 0
	case a.cl.in.Context().Err() != nil:
		return telemetry.OutcomeCancelled, originClient, 0
	}
	return telemetry.OutcomePartial, originUpstream, 0
}

// listAnswer keeps a list request's answer (bounded) as it is copied, and learns the names it
// lists when it is closed.
type listAnswer struct {
	io.ReadCloser
	cl   *call
	sse  bool
	buf  []byte
	over bool
}

func (l *listAnswer) Read(p []byte) (int, error) {
	n, err := l.ReadCloser.Read(p)
	if n > 0 && !l.over {
		if len(l.buf)+n > maxListAnswer {
			l.over, l.buf = true, nil
		} else {
			l.buf = append(l.buf, p[:n]...)
		}
	}
	return n, err
}

func (l *listAnswer) Close() error {
	err := l.ReadCloser.Close()
	if !l.over && len(l.buf) > 0 {
		rc := l.cl.eng.capabilities(l.cl.routeID())
		listedNames(l.buf, l.sse, l.cl.cap.listOf, func(name []byte) { rc.Learn(l.cl.cap.listOf, name) })
	}
	return err
}

// listedNames calls learn with each name a list answer lists (tools' and prompts' names,
// resources' URIs), from a JSON body or the data of an SSE stream's events. It reads spans
// (jsonspan): a name's bytes point into body, so learn must copy what it keeps.
func listedNames(body []byte, sse bool, callMethod string, learn func(name []byte)) {
	listKey, nameKey := "tools", "name"
	switch callMethod {
	case "prompts/get":
		listKey = "prompts"
	case "resources/read":
		listKey, nameKey = "resources", "uri"
	}
	var top, res, item [8]jsonspan.Member
	var els [][2]int
	read := func(msg []byte) {
		ms, err := jsonspan.Members(msg, top[:0])
		if err != nil {
			return
		}
		for _, m := range ms {
			if !m.Is("result") {
				continue
			}
			r := msg[m.VS:m.VE]
			rs, err := jsonspan.Members(r, res[:0])
			if err != nil {
				return
			}
			for _, l := range rs {
				if !l.Is(listKey) {
					continue
				}
				arr := r[l.VS:l.VE]
				if els, err = jsonspan.Elements(arr, els[:0]); err != nil {
					return
				}
				for _, e := range els {
					it := arr[e[0]:e[1]]
					is, err := jsonspan.Members(it, item[:0])
					if err != nil {
						continue
					}
					for _, f := range is {
						if f.Is(nameKey) {
							if name, ok := jsonspan.PlainStringValue(it[f.VS:f.VE]); ok && len(name) > 0 {
								learn(name)
							}
						}
					}
				}
			}
		}
	}
	if !sse {
		read(body)
		return
	}
	// SSE: each event's data lines, joined by newlines.
	var data []byte
	for line := range bytes.Lines(body) {
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if len(data) > 0 {
				read(data)
				data = data[:0]
			}
		case bytes.HasPrefix(line, []byte("data:")):
			v := bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, v...)
		}
	}
	if len(data) > 0 {
		read(data)
	}
}

// capabilities returns the route's capability metrics, resolved once per engine (an engine
// serves one route).
func (e *engine) capabilities(route string) *telemetry.RouteCapabilities {
	if rc := e.caps.Load(); rc != nil && rc.Route() == route {
		return rc
	}
	rc := telemetry.Default.Capabilities(route)
	e.caps.Store(rc)
	return rc
}
