package capfilter

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mcpgate/mcpgate/internal/mcpwire"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
)

// JSON-RPC codes of the policy's own answers.
const (
	// CodeMethodNotFound answers a call of a hidden item, as Zuplo does.
	CodeMethodNotFound = -32601
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeInternalError  = -32603
)

// maxRequestBody bounds the request body the policy reads: the JSON-RPC envelope limit, which is
// also the MCP proxy's default body limit.
const maxRequestBody = mcpwire.MaxEnvelopeBytes

// Reason codes of the problems the policy answers with.
const (
	ReasonTooLarge     = "request_too_large"
	ReasonBodyUnread   = "request_body_unreadable"
	ReasonBodyTimeout  = "request_body_timeout"
	ReasonUnfilterable = "capability_filter_unreadable_answer"
)

var errNotProvisioned = problem.New(http.StatusInternalServerError, "The route's capability filter was not provisioned.",
	errors.New("capfilter: HandleRequest called before Provision")).WithReason("gateway_configuration")

// active reports whether any capability list is configured (with none, the policy does nothing).
func (idx *index) active() bool {
	for _, l := range idx.lists {
		if l != nil {
			return true
		}
	}
	return false
}

// HandleRequest implements policy.Inbound. It reads the JSON-RPC body (bounded, then restored
// for the handler), answers a call of a hidden item itself, and registers the list filter for
// list requests.
func (p *Policy) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	idx := p.idx
	if idx == nil {
		return nil, errNotProvisioned
	}
	if !idx.active() {
		return nil, nil
	}
	if mcpwire.IsResumption(r.Method, r.Header) {
		// A stream resumption replays answers to requests this filter saw on another request (or
		// another replica): every result on it is filtered by what it holds.
		r.Header.Del("Accept-Encoding")
		c.AddResponseHook((&filterer{who: idx.caller(c.User), pend: &pending{resume: true}}).hook)
		return nil, nil
	}
	if r.Method != http.MethodPost || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, nil
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength, r.TransferEncoding = int64(len(body)), nil
	who := idx.caller(c.User)
	d := who.inspect(body)
	switch {
	case d.invalidCode != 0:
		msg := "Invalid Request"
		if d.invalidCode == codeParseError {
			msg = "Parse error"
		}
		return invalidRequest(d.invalidCode, msg), nil
	case d.hidden != nil:
		if c.Log != nil {
			c.Log.Info("capability filter refused a call of a hidden item", "method", d.hidden.method, "target", d.hidden.target(),
				"batch", d.batch, "requestId", c.RequestID)
		}
		env := mcpwire.Envelope{Batch: d.batch, Messages: make([]mcpwire.Message, len(d.msgs))}
		for j, m := range d.msgs {
			env.Messages[j] = mcpwire.Message{JSONRPC: "2.0", ID: m.id, Method: m.method}
		}
		return mcpwire.ErrorResponse(env, r.Header.Get("Accept"), CodeMethodNotFound, "Method not found", nil), nil
	case d.pend != nil:
		// The answer must arrive in a form the filter can read.
		r.Header.Del("Accept-Encoding")
		c.AddResponseHook((&filterer{who: who, pend: d.pend}).hook)
	}
	return nil, nil
}

// decision is what inspect made of a request body.
type decision struct {
	// invalidCode is set when the body cannot be read as the upstream will read it (-32700,
	// -32600): it is refused.
	invalidCode int
	msgs        []rpcMsg
	batch       bool
	// hidden is the first call of a hidden item: the whole body is refused.
	hidden *rpcMsg
	// pend are the list requests whose answers are filtered; nil for none.
	pend *pending
}

// inspect decides a request body for the caller.
func (c *caller) inspect(body []byte) decision {
	var d decision
	if len(bytes.TrimSpace(body)) == 0 {
		return d
	}
	// What cannot be read the way the upstream will read it is refused: the filter must see the
	// same method and name the upstream acts on.
	if !json.Valid(body) {
		d.invalidCode = codeParseError
		return d
	}
	if _, err := mcpwire.Peek(body); err != nil {
		d.invalidCode = codeInvalidRequest
		return d
	}
	var err error
	if d.msgs, d.batch, err = parseMessages(body); err != nil {
		d.invalidCode = codeInvalidRequest
		if errors.Is(err, errSyntax) {
			d.invalidCode = codeParseError
		}
		return d
	}
	for i := range d.msgs {
		m := &d.msgs[i]
		if k, ok := listKinds[m.method]; ok {
			if c.idx.lists[k] == nil {
				continue // that capability passes through
			}
			if d.pend == nil {
				d.pend = &pending{ids: map[string]kind{}}
			}
			if !d.batch {
				d.pend.single, d.pend.singleKind = true, k
			} else if key, ok := idKey(m.id); ok {
				d.pend.ids[key] = k
			}
			continue
		}
		if d.hidden == nil && !c.messageAllowed(m) {
			d.hidden = m
		}
	}
	if d.hidden != nil {
		d.pend = nil
	}
	return d
}

// messageAllowed decides one message that is not a list request.
func (c *caller) messageAllowed(m *rpcMsg) bool {
	lists := &c.idx.lists
	switch m.method {
	case "tools/call":
		return lists[kindTools] == nil || c.allowed(kindTools, m.param("NAME"))
	case "prompts/get":
		return lists[kindPrompts] == nil || c.allowed(kindPrompts, m.param("NAME"))
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		if lists[kindResources] == nil && lists[kindTemplates] == nil {
			return true
		}
		return c.readAllowed(m.param("URI"))
	case "completion/complete":
		if lists[kindPrompts] == nil && lists[kindResources] == nil && lists[kindTemplates] == nil {
			return true
		}
		ref, err := objectFields(m.params()["REF"])
		if err != nil {
			return false
		}
		switch str(ref["TYPE"]) {
		case "ref/prompt":
			return lists[kindPrompts] == nil || c.allowed(kindPrompts, str(ref["NAME"]))
		case "ref/resource":
			if lists[kindResources] == nil && lists[kindTemplates] == nil {
				return true
			}
			return c.completionResourceAllowed(str(ref["URI"]))
		}
	}
	return true
}

// rpcMsg is one JSON-RPC message as the upstream will read it, whether the upstream matches
// member names exactly or in any case (see objectFields).
type rpcMsg struct {
	id        json.RawMessage
	method    string
	rawParams json.RawMessage
	parsed    map[string]json.RawMessage
	paramsErr error
}

// params returns the params object's members (nil when it is missing or unreadable).
func (m *rpcMsg) params() map[string]json.RawMessage {
	if m.parsed == nil && m.paramsErr == nil {
		m.parsed, m.paramsErr = objectFields(m.rawParams)
	}
	return m.parsed
}

// target names what a call is of, for the log.
func (m *rpcMsg) target() string {
	if ref, err := objectFields(m.params()["REF"]); err == nil {
		return str(ref["NAME"]) + str(ref["URI"])
	}
	return m.param("NAME") + m.param("URI")
}

// param returns a string member of params by its folded name (see foldKey), or "" (which no
// list entry matches).
func (m *rpcMsg) param(name string) string { return str(m.params()[name]) }

func str(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

var (
	errSyntax    = errors.New("invalid JSON")
	errNotObject = errors.New("not a JSON object")
	errDuplicate = errors.New("duplicate member")
)

// parseMessages reads a message or a batch.
func parseMessages(body []byte) ([]rpcMsg, bool, error) {
	if !json.Valid(body) {
		return nil, false, errSyntax
	}
	t := bytes.TrimLeft(body, " \t\r\n")
	if len(t) > 0 && t[0] == '[' {
		var elems []json.RawMessage
		if err := json.Unmarshal(t, &elems); err != nil {
			return nil, true, err
		}
		msgs := make([]rpcMsg, len(elems))
		for i, e := range elems {
			m, err := parseMessage(e)
			if err != nil {
				return nil, true, err
			}
			msgs[i] = m
		}
		return msgs, true, nil
	}
	m, err := parseMessage(t)
	if err != nil {
		return nil, false, err
	}
	return []rpcMsg{m}, false, nil
}

func parseMessage(raw []byte) (rpcMsg, error) {
	f, err := objectFields(raw)
	if err != nil {
		return rpcMsg{}, err
	}
	m := rpcMsg{id: f["ID"], rawParams: f["PARAMS"]}
	if v, ok := f["METHOD"]; ok {
		if err := json.Unmarshal(v, &m.method); err != nil {
			return rpcMsg{}, errors.New("method is not a string")
		}
	}
	return m, nil
}

// objectFields reads a JSON object's members, keyed by their folded names (see foldKey). Two
// members whose names are equal but for case are refused: parsers disagree on which one counts
// (the last exact one, or, like encoding/json and so the Go SDK, the last in any case), so the
// filter could check one name while the upstream acts on the other.
func objectFields(raw []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, errSyntax
	}
	if tok != json.Delim('{') {
		return nil, errNotObject
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errSyntax
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errSyntax
		}
		k := foldKey(key)
		if _, dup := out[k]; dup {
			return nil, errDuplicate
		}
		out[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, errSyntax
	}
	return out, nil
}

// foldKey maps a member name to one spelling per case-insensitive class (each rune to the
// smallest of its Unicode simple-folding orbit: "name", "Name" and "NAME" are all "NAME", and
// so is "nAme"; "ſ" is "S"), as encoding/json matches names.
func foldKey(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || ('a' <= c && c <= 'z') {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < m {
				m = f
			}
		}
		b.WriteRune(m)
	}
	return b.String()
}

// idKey is a JSON-RPC id in a canonical form, so the answer's id matches the request's however
// either was written ("a" and "\u0061", 1 and 1.0).
func idKey(raw json.RawMessage) (string, bool) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return "", false
	}
	if t[0] == '"' {
		var s string
		if json.Unmarshal(t, &s) != nil {
			return "", false
		}
		return "s" + s, true
	}
	var n json.Number
	if json.Unmarshal(t, &n) != nil {
		return "", false
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return "n" + strconv.FormatInt(i, 10), true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return "", false
	}
	return "n" + strconv.FormatFloat(f, 'g', -1, 64), true
}

// readBody reads the request body, bounded by maxRequestBody. The gateway's body deadline bounds
// the time it takes.
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > maxRequestBody {
		return nil, tooLarge()
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	switch {
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		return nil, problem.New(http.StatusRequestTimeout, "The request body did not arrive in time.", err).
			WithReason(ReasonBodyTimeout).WithHeader("Connection", "close")
	case err != nil:
		return nil, problem.New(http.StatusBadRequest, "The request body could not be read.", err).WithReason(ReasonBodyUnread)
	case int64(len(buf)) > maxRequestBody:
		return nil, tooLarge()
	}
	return buf, nil
}

func tooLarge() *problem.Error {
	return problem.New(http.StatusRequestEntityTooLarge,
		"The request body is larger than the capability filter's limit of "+strconv.Itoa(maxRequestBody>>20)+" MiB.", nil).
		WithReason(ReasonTooLarge).WithHeader("Connection", "close")
}

// invalidRequest answers a body the filter cannot read as the upstream would (HTTP 400 with a
// JSON-RPC error, id null).
func invalidRequest(code int, msg string) *http.Response {
	body := []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":` + strconv.Itoa(code) + `,"message":` + strconv.Quote(msg) + `}}`)
	h := http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}, "Content-Length": {strconv.Itoa(len(body))}}
	return &http.Response{StatusCode: http.StatusBadRequest, Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
}
