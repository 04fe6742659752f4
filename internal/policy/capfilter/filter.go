package capfilter

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/textproto"
	"sort"
	"strconv"
	"strings"

	"github.com/mcpgate/mcpgate/internal/jsonspan"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
)

// maxAnswerBytes bounds a list answer the filter reads: a JSON body, or one SSE event (the Go
// SDK's own limit of an event).
const maxAnswerBytes = 16 << 20

// pending are the list requests of one request body whose answers must be filtered.
type pending struct {
	// single: the body was one request, so the one response in the answer is its answer,
	// whatever id it carries. Otherwise ids maps each list request's id to its kind.
	single     bool
	singleKind kind
	answered   bool
	ids        map[string]kind
	// resume: the request was a stream resumption (GET with Last-Event-ID), which carries no
	// request: any answer the resumed stream replays may be a list answer, so every result is
	// filtered by what it holds (the list arrays of every kind), and the filter never finishes.
	resume bool
}

// take claims the answer with this id, once.
func (p *pending) take(id json.RawMessage) (kind, bool) {
	if p.single {
		if p.answered {
			return 0, false
		}
		p.answered = true
		return p.singleKind, true
	}
	key, ok := idKey(id)
	if !ok {
		return 0, false
	}
	k, ok := p.ids[key]
	if ok {
		delete(p.ids, key)
	}
	return k, ok
}

// done reports whether every list answer has been seen.
func (p *pending) done() bool {
	if p.resume {
		return false
	}
	if p.single {
		return p.answered
	}
	return len(p.ids) == 0
}

// filterer filters the list answers of one request for one caller.
type filterer struct {
	who  *caller
	pend *pending
	// scratch space of the scanner, reused from answer to answer
	top, item []jsonspan.Member
	els       [][2]int
}

// hook is the response hook: it filters a JSON answer at once and an SSE answer as it streams.
// Anything but a 2xx answer with a body passes untouched.
func (f *filterer) hook(_ *policy.Context, _ *http.Request, resp *http.Response) (*http.Response, error) {
	if resp == nil || resp.Body == nil || resp.Body == http.NoBody || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, nil
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return nil, problem.New(http.StatusBadGateway, "The upstream answered in an encoding the capability filter cannot read ("+enc+").", nil).
			WithReason(ReasonUnfilterable)
	}
	out := *resp
	out.Header = resp.Header.Clone()
	out.Header.Del("Content-Length")
	out.TransferEncoding = nil
	if isEventStream(resp.Header) {
		out.Body = newSSEFilter(resp.Body, f)
		out.ContentLength = -1
		return &out, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	_ = resp.Body.Close()
	if err != nil {
		return nil, problem.New(http.StatusBadGateway, "The upstream's answer could not be read.", err).WithReason(ReasonUnfilterable)
	}
	if len(body) > maxAnswerBytes {
		return nil, problem.New(http.StatusBadGateway, "The upstream's list answer is larger than the capability filter's limit of "+
			strconv.Itoa(maxAnswerBytes>>20)+" MiB.", nil).WithReason(ReasonUnfilterable)
	}
	if filtered, changed := f.payload(body); changed {
		body = filtered
	}
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return &out, nil
}

// isEventStream reports whether the Content-Type is text/event-stream.
func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(textproto.TrimString(ct), "text/event-stream")
}

// payload filters a JSON-RPC payload (a message or a batch); changed is false when it is
// returned as it came.
func (f *filterer) payload(data []byte) ([]byte, bool) {
	i := jsonspan.SkipSpace(data, 0)
	if i >= len(data) {
		return data, false
	}
	switch data[i] {
	case '{':
		return f.message(data)
	case '[':
		els, err := jsonspan.Elements(data, nil)
		if err != nil {
			return data, false
		}
		var out []byte
		last := 0
		for _, e := range els {
			if filtered, changed := f.message(data[e[0]:e[1]]); changed {
				out = append(out, data[last:e[0]]...)
				out = append(out, filtered...)
				last = e[1]
			}
		}
		if out == nil {
			return data, false
		}
		return append(out, data[last:]...), true
	}
	return data, false
}

// message filters one JSON-RPC message if it is the answer to a pending list request.
func (f *filterer) message(raw []byte) ([]byte, bool) {
	ms, err := jsonspan.Members(raw, f.top[:0])
	f.top = ms
	if err != nil {
		return raw, false
	}
	// Member names are matched as the strictest client reads them where that lets more through
	// ("method" exactly: only then is it a request for every client) and as the most lenient
	// (encoding/json folds case) where that filters more (every "result" is filtered).
	var id json.RawMessage
	hasResult := false
	for _, m := range ms {
		switch {
		case m.Is("method"):
			return raw, false // a notification or a request of the server: not an answer
		case m.Folds("result"):
			hasResult = true
		case m.Is("id"):
			id = raw[m.VS:m.VE]
		}
	}
	if !hasResult {
		return raw, false // an error answer has nothing to filter
	}
	var k kind
	if !f.pend.resume {
		var ok bool
		if k, ok = f.pend.take(id); !ok {
			return raw, false
		}
	}
	// Every "result" member is filtered (a parser keeps one of duplicates; which one varies).
	out := make([]byte, 0, len(raw))
	last := 0
	for _, m := range ms {
		if !m.Folds("result") {
			continue
		}
		var filtered []byte
		var err error
		if f.pend.resume {
			filtered, err = f.anyResult(raw[m.VS:m.VE])
		} else {
			filtered, err = f.result(raw[m.VS:m.VE], k)
		}
		if err != nil {
			// Fail closed: an answer the filter cannot read is not passed on.
			if len(id) == 0 {
				id = json.RawMessage("null")
			}
			what := kinds[k].listMethod + " answer"
			if f.pend.resume {
				what = "answer on a resumed stream"
			}
			return []byte(`{"jsonrpc":"2.0","id":` + string(id) + `,"error":{"code":` + strconv.Itoa(codeInternalError) +
				`,"message":"The gateway could not filter the upstream's ` + what + `."}}`), true
		}
		out = append(out, raw[last:m.VS]...)
		out = append(out, filtered...)
		last = m.VE
	}
	return append(out, raw[last:]...), true
}

// result filters the list of a list result and applies projections; everything else in the
// result (nextCursor, _meta) is kept byte for byte.
func (f *filterer) result(res []byte, k kind) ([]byte, error) {
	ms, err := jsonspan.Members(res, nil)
	if err != nil {
		return nil, err
	}
	key := kinds[k].listKey
	out := make([]byte, 0, len(res))
	last := 0
	for _, m := range ms {
		if !m.Folds(key) {
			continue
		}
		v := res[m.VS:m.VE]
		if string(v) == "null" {
			continue
		}
		filtered, err := f.list(v, k)
		if err != nil {
			return nil, err
		}
		out = append(out, res[last:m.VS]...)
		out = append(out, filtered...)
		last = m.VE
	}
	return append(out, res[last:]...), nil
}

// anyResult filters a result whose request the filter did not see (a resumed stream): the list
// array of every kind it holds is filtered. A result that is not an object holds no list.
func (f *filterer) anyResult(res []byte) ([]byte, error) {
	if i := jsonspan.SkipSpace(res, 0); i >= len(res) || res[i] != '{' {
		return res, nil
	}
	for k := range numKinds {
		var err error
		if res, err = f.result(res, k); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// list keeps the visible items of a list, projected.
func (f *filterer) list(arr []byte, k kind) ([]byte, error) {
	els, err := jsonspan.Elements(arr, f.els[:0])
	f.els = els
	if err != nil {
		return nil, err
	}
	l := f.who.idx.lists[k]
	out := make([]byte, 0, len(arr))
	out = append(out, '[')
	n := 0
	for _, e := range els {
		it := arr[e[0]:e[1]]
		entry := f.lookup(l, it, k)
		if entry == nil || !f.who.visible(entry) {
			continue
		}
		if entry.projects() {
			if it, err = project(it, entry); err != nil {
				return nil, err
			}
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, it...)
		n++
	}
	return append(out, ']'), nil
}

// lookup finds the list entry of a listed item by its identity: a tool's or prompt's name, a
// resource's uri, a template's uriTemplate. Parsers differ on which member that is when there are
// several (the last exact one, or the last one with the name in any case), so every candidate
// must be a visible entry; the entry returned is the last exact one's.
func (f *filterer) lookup(l *list, it []byte, k kind) *item {
	ms, err := jsonspan.Members(it, f.item[:0])
	f.item = ms
	if err != nil {
		return nil
	}
	field := kinds[k].keyField
	var found *item
	for _, m := range ms {
		if !m.Folds(field) {
			continue
		}
		e := f.entry(l, it[m.VS:m.VE])
		if e == nil || !f.who.visible(e) {
			return nil
		}
		if found == nil || m.Is(field) {
			found = e
		}
	}
	return found
}

// entry looks up a string value among the list's entries.
func (f *filterer) entry(l *list, v []byte) *item {
	if len(v) < 2 || v[0] != '"' {
		return nil
	}
	if inner := v[1 : len(v)-1]; jsonspan.PlainString(inner) {
		return l.byKey[string(inner)]
	}
	s, ok := jsonspan.StringValue(v)
	if !ok {
		return nil
	}
	return l.byKey[s]
}

// project applies an entry's projection to a listed item: replaced fields take the configured
// value, annotations and _meta are merged with the configured JSON merge patch (RFC 7396).
func project(it json.RawMessage, e *item) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(it, &m); err != nil {
		return nil, err
	}
	for k, v := range e.replace {
		m[k] = v
	}
	for k, patch := range e.patch {
		merged, err := mergePatch(m[k], patch)
		if err != nil {
			return nil, err
		}
		m[k] = merged
	}
	return encodeObject(m), nil
}

// mergePatch applies an RFC 7396 merge patch (an object) to target; a target that is not an
// object is replaced.
func mergePatch(target json.RawMessage, patch map[string]any) (json.RawMessage, error) {
	var t map[string]any
	if len(target) > 0 {
		dec := json.NewDecoder(bytes.NewReader(target))
		dec.UseNumber()
		if dec.Decode(&t) != nil {
			t = nil
		}
	}
	if t == nil {
		t = map[string]any{}
	}
	applyPatch(t, patch)
	return json.Marshal(t)
}

// applyPatch merges patch into t; patch (shared by every request) is never modified.
func applyPatch(t, patch map[string]any) {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(t, k)
		case map[string]any:
			tv, _ := t[k].(map[string]any)
			if tv == nil {
				tv = map[string]any{}
			}
			applyPatch(tv, pv)
			t[k] = tv
		default:
			t[k] = v
		}
	}
}

// encodeObject writes an object of already encoded members, keys sorted.
func encodeObject(m map[string]json.RawMessage) []byte {
	keys := make([]string, 0, len(m))
	n := 2
	for k, v := range m {
		keys = append(keys, k)
		n += len(k) + len(v) + 4
	}
	sort.Strings(keys)
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKey(b, k)
		b = append(b, ':')
		b = append(b, m[k]...)
	}
	return append(b, '}')
}

// appendKey appends k as a JSON string.
func appendKey(b []byte, k string) []byte {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			q, _ := json.Marshal(k)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, k...)
	return append(b, '"')
}
