package capfilter_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests put a raw upstream (an httptest handler writing exact bytes, not an MCP SDK) behind
// the gateway, for what the SDK server does not produce: SSE streams interleaving other events
// with the answer and held open, exact event bytes, batch answers, encodings, broken answers.

// rawUpstream answers every POST with answer(w, r) and records the request headers.
type rawUpstream struct {
	*httptest.Server
	headers chan http.Header
}

func newRawUpstream(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *rawUpstream {
	t.Helper()
	u := &rawUpstream{headers: make(chan http.Header, 16)}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case u.headers <- r.Header.Clone():
		default:
		}
		answer(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

const toolsPage = `{"jsonrpc":"2.0","id":7,"result":{"tools":[` +
	`{"name":"echo","description":"e","inputSchema":{"type":"object"}},` +
	`{"name":"delete_all","description":"d","inputSchema":{"type":"object"}},` +
	`{"name":"search","description":"s","inputSchema":{"type":"object"}}],"nextCursor":"opaque-cursor==","_meta":{"k":"v"}}}`

const listBody = `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}`

func names(t *testing.T, answer string) (got []string, cursor string) {
	t.Helper()
	var m struct {
		Result struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
			NextCursor string `json:"nextCursor"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(answer), &m); err != nil {
		t.Fatalf("answer %s: %v", answer, err)
	}
	for _, tl := range m.Result.Tools {
		got = append(got, tl.Name)
	}
	return got, m.Result.NextCursor
}

func TestSSEStreamingPreservedAndOtherEventsUntouched(t *testing.T) {
	release := make(chan struct{})
	// Other events, byte for byte: a comment, a progress notification with an id and an event
	// name and CRLF line endings, a server request, a retry field.
	const before = ": keep-alive\n\n" +
		"event: message\r\nid: ev-1\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"p\",\"progress\":1}}\r\n\r\n" +
		"data: {\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"ping\"}\n\n" +
		"retry: 1000\n\n"
	up := newRawUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, before)
		w.(http.Flusher).Flush()
		<-release
		// The answer, its JSON split over two data lines (between two members), with an id and an
		// event name.
		half := strings.Index(toolsPage, `{"name":"search"`)
		_, _ = io.WriteString(w, "event: message\nid: ev-2\ndata: "+toolsPage[:half]+"\ndata: "+toolsPage[half:]+"\n\n")
		_, _ = io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"after\"}}\n\n")
	})
	gw := gatewayFor(t, up.URL, `{"tools":["echo","search"]}`)

	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/mcp/filtered", strings.NewReader(listBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" || resp.Header.Get("Content-Length") != "" {
		t.Fatalf("Content-Type %q, Content-Length %q", ct, resp.Header.Get("Content-Length"))
	}
	// Everything before the answer arrives while the upstream still holds the stream open.
	got := make([]byte, len(before))
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(resp.Body, got); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the events before the answer were not streamed while the upstream held the stream open")
	}
	if string(got) != before {
		t.Errorf("events before the answer changed:\n got %q\nwant %q", got, before)
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	events := strings.Split(strings.TrimSuffix(string(rest), "\n\n"), "\n\n")
	if len(events) != 2 {
		t.Fatalf("events after release = %q", rest)
	}
	lines := strings.Split(events[0], "\n")
	if len(lines) != 3 || lines[0] != "event: message" || lines[1] != "id: ev-2" || !strings.HasPrefix(lines[2], "data: ") {
		t.Fatalf("rewritten answer event = %q: want its event and id fields kept, one data line", events[0])
	}
	toolNames, cursor := names(t, strings.TrimPrefix(lines[2], "data: "))
	if strings.Join(toolNames, ",") != "echo,search" || cursor != "opaque-cursor==" {
		t.Errorf("filtered answer: tools %v, nextCursor %q", toolNames, cursor)
	}
	if want := "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"after\"}}"; events[1] != want {
		t.Errorf("event after the answer = %q", events[1])
	}
}

func TestSSEOnlyAnswerOfListRequestRewritten(t *testing.T) {
	// A tools/call answer in SSE is not a list answer: untouched even if its result had a "tools"
	// member.
	const ev = "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"delete_all\"}],\"content\":[]}}\n\n"
	up := newRawUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, ev)
	})
	gw := gatewayFor(t, up.URL, `{"tools":["echo"]}`)
	_, body := post(t, gw.URL+"/mcp/filtered", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`, user{}, "")
	if body != ev {
		t.Errorf("tools/call answer = %q, want it untouched", body)
	}
}

func TestJSONAnswerContentLengthRecomputed(t *testing.T) {
	up := newRawUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(toolsPage)))
		_, _ = io.WriteString(w, toolsPage)
	})
	gw := gatewayFor(t, up.URL, `{"tools":[{"name":"echo","description":"curated echo"}]}`)
	resp, body := post(t, gw.URL+"/mcp/filtered", listBody, user{}, "")
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) || resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %q (%d) for a body of %d bytes", cl, resp.ContentLength, len(body))
	}
	toolNames, cursor := names(t, body)
	if strings.Join(toolNames, ",") != "echo" || cursor != "opaque-cursor==" || !strings.Contains(body, `"description":"curated echo"`) ||
		!strings.Contains(body, `"_meta":{"k":"v"}`) {
		t.Errorf("filtered JSON answer = %s", body)
	}
	// Unfiltered route: the upstream's bytes and length as they were.
	resp, body = post(t, gw.URL+"/mcp/plain", listBody, user{}, "")
	if body != toolsPage || resp.Header.Get("Content-Length") != strconv.Itoa(len(toolsPage)) {
		t.Errorf("unfiltered answer changed: %q (%s)", body, resp.Header.Get("Content-Length"))
	}
}

func TestBatchAnswersFilteredByID(t *testing.T) {
	const answer = `[{"jsonrpc":"2.0","id":"p","result":{"prompts":[{"name":"greet"},{"name":"internal_prompt"}]}},` +
		`{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"echo"},{"name":"delete_all"}]}},` +
		`{"jsonrpc":"2.0","id":3,"result":{}}]`
	up := newRawUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	})
	gw := gatewayFor(t, up.URL, `{"tools":["echo"],"prompts":["greet"]}`)
	batch := `[{"jsonrpc":"2.0","id":7.0,"method":"tools/list"},{"jsonrpc":"2.0","id":"\u0070","method":"prompts/list"},{"jsonrpc":"2.0","id":3,"method":"ping"}]`
	_, body := post(t, gw.URL+"/mcp/filtered", batch, user{}, "")
	var got []map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != 3 {
		t.Fatalf("batch answer %s: %v", body, err)
	}
	if b, _ := json.Marshal(got[0]["result"]); string(b) != `{"prompts":[{"name":"greet"}]}` {
		t.Errorf("prompts answer = %s", b)
	}
	if b, _ := json.Marshal(got[1]["result"]); string(b) != `{"tools":[{"name":"echo"}]}` {
		t.Errorf("tools answer = %s", b)
	}
	if b, _ := json.Marshal(got[2]); string(b) != `{"id":3,"jsonrpc":"2.0","result":{}}` {
		t.Errorf("ping answer = %s", b)
	}
}

func TestEncodedAnswerRefused(t *testing.T) {
	up := newRawUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = io.WriteString(zw, toolsPage)
		_ = zw.Close()
	})
	gw := gatewayFor(t, up.URL, `{"tools":["echo"]}`)
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/mcp/filtered", strings.NewReader(listBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if h := <-up.headers; h.Get("Accept-Encoding") != "" {
		t.Errorf("the list request reached the upstream with Accept-Encoding %q", h.Get("Accept-Encoding"))
	}
	if resp.StatusCode != http.StatusBadGateway || bytes.Contains(b, []byte("delete_all")) {
		t.Errorf("an encoded list answer: HTTP %d %s, want 502 without the upstream's tools", resp.StatusCode, b)
	}
}

func TestUnreadableListAnswerFailsClosed(t *testing.T) {
	for _, tc := range []struct{ name, ct, answer string }{
		{"json", "application/json", `{"jsonrpc":"2.0","id":7,"result":{"tools":{"name":"delete_all"}}}`},
		{"sse", "text/event-stream", "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":{\"name\":\"delete_all\"}}}\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newRawUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", tc.ct)
				_, _ = io.WriteString(w, tc.answer)
			})
			gw := gatewayFor(t, up.URL, `{"tools":["echo"]}`)
			_, body := post(t, gw.URL+"/mcp/filtered", listBody, user{}, "")
			if strings.Contains(body, "delete_all") || !strings.Contains(body, `"code":-32603`) || !strings.Contains(body, `"id":7`) {
				t.Errorf("answer = %q: want a -32603 error for id 7, nothing of the upstream's", body)
			}
		})
	}
}

func TestRequestsTheFilterCannotReadAreRefused(t *testing.T) {
	up := newUpstream(t, jsonStateless, nil, 0)
	gw := gatewayFor(t, up.URL, `{"tools":["echo"],"prompts":["greet"],"resources":["file:///public.txt"]}`)
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		// Parsers disagree on duplicate members: refused, never guessed (a duplicate in params
		// makes the target unreadable: refused as a hidden call).
		{"duplicate name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"delete_all"}}`, 200, "-32601"},
		{"duplicate method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"delete_all"}}`, 400, "-32600"},
		// The Go SDK server (encoding/json) reads "Name" as "name" and keeps the last of
		// several: names equal but for case are ambiguous (refused as hidden), a lone case
		// variant is checked.
		{"case variant after name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","NAME":"delete_all"}}`, 200, "-32601"},
		{"case variant before name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"delete_all","name":"echo"}}`, 200, "-32601"},
		{"folded variant of method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","METHOD":"tools/call","params":{"name":"delete_all"}}`, 400, "-32600"},
		{"case variant only", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"delete_all"}}`, 200, "-32601"},
		{"method in another case", `{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"delete_all"}}`, 200, "-32601"},
		{"name not a string", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["echo"]}}`, 200, "-32601"},
		{"not JSON", `{"jsonrpc":"2.0",`, 400, "-32700"},
		{"not JSON-RPC", `{"hello":"world"}`, 400, "-32600"},
		{"batch of non-objects", `[1,2]`, 400, "-32600"},
		{"hidden prompt completion", `{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"internal_prompt"},"argument":{"name":"a","value":""}}}`, 200, "-32601"},
		{"hidden resource subscription", `{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"file:///secret.txt"}}`, 200, "-32601"},
		{"unlisted resource read", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///docs/x"}}`, 200, "-32601"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, gw.URL+"/mcp/filtered", tc.body, user{}, "")
			if resp.StatusCode != tc.status || !strings.Contains(body, `"code":`+tc.code) {
				t.Errorf("HTTP %d %s, want %d with code %s", resp.StatusCode, body, tc.status, tc.code)
			}
		})
	}
	if up.received("tools/call delete_all") || up.received("tools/call echo") {
		t.Error("a refused request reached the upstream")
	}

	// Only-SSE clients get the refusal as one event.
	resp, body := post(t, gw.URL+"/mcp/filtered", `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"secret"}}`, user{}, "text/event-stream")
	if resp.Header.Get("Content-Type") != "text/event-stream" || !strings.HasPrefix(body, "event: message\ndata: ") || !strings.Contains(body, "-32601") {
		t.Errorf("SSE refusal: %s %q", resp.Header.Get("Content-Type"), body)
	}

	// A body over the limit cannot be inspected: 413.
	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("x", 4<<20) + `"}}}`
	if resp, _ := post(t, gw.URL+"/mcp/filtered", big, user{}, ""); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over 4 MiB: HTTP %d, want 413", resp.StatusCode)
	}

	// A visible call still works, with its body intact for the upstream.
	_, body = post(t, gw.URL+"/mcp/filtered", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"intact"}}}`, user{}, "")
	if !strings.Contains(body, "echo:intact") {
		t.Errorf("visible call = %s", body)
	}
}

func TestRawSSEAnswersFromSDKServer(t *testing.T) {
	// The Go SDK server, stateless, answering in SSE: the filter's rewritten event is what an SSE
	// client parses.
	up := newUpstream(t, sseStateless, nil, 0)
	gw := gatewayFor(t, up.URL, `{"tools":["echo"]}`)
	resp, body := post(t, gw.URL+"/mcp/filtered", listBody, user{}, "")
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	var data []string
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = append(data, v)
		}
	}
	if len(data) != 1 {
		t.Fatalf("events %q", body)
	}
	if got, _ := names(t, data[0]); strings.Join(got, ",") != "echo" {
		t.Errorf("tools = %v", got)
	}
}
