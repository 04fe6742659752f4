package capfilter

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/mcpgate/mcpgate/internal/jsonspan"
	"github.com/mcpgate/mcpgate/internal/policy"
)

func compiled(t testing.TB, options string) *index {
	t.Helper()
	var p Policy
	if err := json.Unmarshal([]byte(options), &p); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := p.Provision(t.Context(), &policy.Env{}); err != nil {
		t.Fatal(err)
	}
	return p.idx
}

// TestSSEFilterChunking feeds the same stream through the filter in every read pattern (the
// upstream's writes split anywhere, CR, LF and CRLF line endings, tiny client reads) and wants
// the same output.
func TestSSEFilterChunking(t *testing.T) {
	idx := compiled(t, `{"tools":["echo"]}`)
	const answer = `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"delete_all"}],"nextCursor":"c"}}`
	const filtered = `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"}],"nextCursor":"c"}}`
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		in := strings.NewReplacer("\n", eol).Replace(": c\n\nevent: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n") +
			"id: 2" + eol + "data: " + answer + eol + eol +
			"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}" + eol + eol
		// Events before and after the answer are byte-identical; the answer's lines end in \n.
		want := strings.NewReplacer("\n", eol).Replace(": c\n\nevent: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n") +
			"id: 2\ndata: " + filtered + "\n\n" +
			"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}" + eol + eol
		for name, src := range map[string]func() io.Reader{
			"whole":    func() io.Reader { return strings.NewReader(in) },
			"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(in)) },
			"half":     func() io.Reader { return iotest.HalfReader(strings.NewReader(in)) },
		} {
			f := &filterer{who: idx.caller(nil), pend: &pending{single: true, singleKind: kindTools}}
			r := newSSEFilter(io.NopCloser(src()), f)
			got, err := io.ReadAll(iotest.OneByteReader(r))
			if err != nil {
				t.Fatalf("%q %s: %v", eol, name, err)
			}
			if string(got) != want {
				t.Errorf("eol %q, %s reads:\n got %q\nwant %q", eol, name, got, want)
			}
		}
	}
}

func TestSSEFilterUnterminatedAnswerAtEOFIsFiltered(t *testing.T) {
	idx := compiled(t, `{"tools":[]}`)
	f := &filterer{who: idx.caller(nil), pend: &pending{single: true, singleKind: kindTools}}
	r := newSSEFilter(io.NopCloser(strings.NewReader(`data: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"x"}]}}`)), f)
	got, _ := io.ReadAll(r)
	if strings.Contains(string(got), `"x"`) {
		t.Errorf("an answer cut off at the end of the stream passed unfiltered: %q", got)
	}
}

func TestEventLen(t *testing.T) {
	for _, tc := range []struct {
		in   string
		eof  bool
		want int
	}{
		{"data: x\n\nrest", false, 9},
		{"data: x\r\n\r\n", false, 11},
		{"data: x\r\r", false, 0}, // the last CR may start a CRLF
		{"data: x\r\rz", false, 9},
		{"data: x\r\r", true, 9},
		{"data: x\n", false, 0},
		{"data: x\n", true, 8},
		{"\n", false, 1},
		{"", true, 0},
	} {
		if got := eventLen([]byte(tc.in), tc.eof); got != tc.want {
			t.Errorf("eventLen(%q, eof %v) = %d, want %d", tc.in, tc.eof, got, tc.want)
		}
	}
}

func TestTemplates(t *testing.T) {
	for _, tc := range []struct {
		tmpl, uri     string
		strict, loose bool
	}{
		{"file:///docs/{name}", "file:///docs/a.txt", true, true},
		{"file:///docs/{name}", "file:///docs/a/b.txt", false, true},
		{"file:///docs/{+path}", "file:///docs/a/b.txt", true, true},
		{"file:///docs/{name}", "file:///other/a.txt", false, false},
		{"db://{table}/{id}{?fields}", "db://users/7?fields=a,b", true, true},
		{"db://{table}/{id}{?fields}", "db://users/7", true, true},
		{"repo{/segments*}", "repo/a/b", true, true},
		{"a.b{.ext}", "a.b.json", true, true},
		{"literal(.*)", "literalX", false, false}, // regexp metacharacters are literal
	} {
		strict, err := compileTemplate(tc.tmpl, false)
		if err != nil {
			t.Fatal(err)
		}
		loose, _ := compileTemplate(tc.tmpl, true)
		if strict.MatchString(tc.uri) != tc.strict || loose.MatchString(tc.uri) != tc.loose {
			t.Errorf("%s ~ %s: strict %v loose %v, want %v %v", tc.tmpl, tc.uri, strict.MatchString(tc.uri), loose.MatchString(tc.uri), tc.strict, tc.loose)
		}
	}
	for _, bad := range []string{"a{b", "a}b", "a{}b", "a{{b}}"} {
		if _, err := compileTemplate(bad, false); err == nil {
			t.Errorf("%q compiled", bad)
		}
	}
}

func TestReadDecisions(t *testing.T) {
	// resources omitted, one template listed for admins: reads pass through except URIs the
	// hidden template may have produced.
	idx := compiled(t, `{"accessControl":"rolesAndGroups","resourceTemplates":[{"uriTemplate":"file:///private/{name}","roles":["admin"]}]}`)
	anon, admin := idx.caller(nil), idx.caller(&policy.User{Data: map[string]any{"roles": []any{"admin"}}})
	for _, tc := range []struct {
		uri         string
		anon, admin bool
	}{
		{"file:///public.txt", true, true},
		{"file:///private/x", false, true},
		{"file:///private/a/b", false, true}, // not an expansion of {name}, but the hidden template is matched loosely
	} {
		if anon.readAllowed(tc.uri) != tc.anon || admin.readAllowed(tc.uri) != tc.admin {
			t.Errorf("%s: anonymous %v, admin %v", tc.uri, anon.readAllowed(tc.uri), admin.readAllowed(tc.uri))
		}
	}
	// resources listed: an allow-list; a visible template's expansions are allowed too.
	idx = compiled(t, `{"resources":["file:///a"],"resourceTemplates":["file:///docs/{name}"]}`)
	c := idx.caller(nil)
	for uri, want := range map[string]bool{"file:///a": true, "file:///b": false, "file:///docs/x": true, "file:///docs/x/y": false} {
		if c.readAllowed(uri) != want {
			t.Errorf("%s: %v", uri, !want)
		}
	}
}

func TestClaimValues(t *testing.T) {
	data := map[string]any{
		"roles":        []any{"a", 3, "b"},
		"single":       "solo",
		"typed":        []string{"x"},
		"realm_access": map[string]any{"roles": []any{"kc"}},
		"dotted.key":   []any{"exact"},
	}
	for claim, want := range map[string]string{
		"roles": "a,b", "single": "solo", "typed": "x", "realm_access.roles": "kc", "dotted.key": "exact", "missing": "", "realm_access.none": "",
	} {
		if got := strings.Join(claimValues(data, claim), ","); got != want {
			t.Errorf("%s = %q, want %q", claim, got, want)
		}
	}
}

func TestIDKey(t *testing.T) {
	same := [][]string{{`1`, `1.0`, `1e0`, ` 1 `}, {`"a"`, `"\u0061"`}}
	for _, group := range same {
		k0, _ := idKey(json.RawMessage(group[0]))
		for _, id := range group[1:] {
			if k, ok := idKey(json.RawMessage(id)); !ok || k != k0 {
				t.Errorf("idKey(%s) = %q, want %q", id, k, k0)
			}
		}
	}
	if a, _ := idKey(json.RawMessage(`1`)); a == "s1" {
		t.Error("number 1 and string \"1\" must differ")
	}
	if _, ok := idKey(json.RawMessage(`null`)); ok {
		t.Error("null is not an id")
	}
}

func TestMergePatch(t *testing.T) {
	patch := map[string]any{"a": nil, "b": map[string]any{"c": 2.0, "d": nil}, "e": "x"}
	got, err := mergePatch(json.RawMessage(`{"a":1,"b":{"d":1,"keep":true},"big":12345678901234567890}`), patch)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"b":{"c":2,"keep":true},"big":12345678901234567890,"e":"x"}`; string(got) != want {
		t.Errorf("mergePatch = %s, want %s", got, want)
	}
	// The shared patch is untouched and a missing target starts empty.
	got, _ = mergePatch(nil, patch)
	if string(got) != `{"b":{"c":2},"e":"x"}` || len(patch["b"].(map[string]any)) != 2 {
		t.Errorf("mergePatch onto nothing = %s; patch now %v", got, patch)
	}
}

// toolsAnswer is a tools/list answer of n tools shaped like the Go SDK server's.
func toolsAnswer(n int) []byte {
	type tool struct {
		Name        string         `json:"name"`
		Description string         `json:"description"`
		InputSchema map[string]any `json:"inputSchema"`
		Annotations map[string]any `json:"annotations"`
	}
	var tools []tool
	for i := range n {
		tools = append(tools, tool{Name: "tool_" + strings.Repeat("0", 3-len(itoa(i))) + itoa(i), Description: "upstream description of tool " + itoa(i),
			InputSchema: map[string]any{"type": "object", "properties": map[string]any{"text": map[string]any{"type": "string"}}, "additionalProperties": false},
			Annotations: map[string]any{"title": "Tool " + itoa(i), "idempotentHint": true, "readOnlyHint": false}})
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "result": map[string]any{"tools": tools, "nextCursor": "abc"}})
	return b
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func benchIndex(b *testing.B) *index {
	var items []string
	for i := 0; i < 100; i += 2 {
		name := "tool_" + strings.Repeat("0", 3-len(itoa(i))) + itoa(i)
		if i%20 == 0 {
			items = append(items, `{"name":"`+name+`","description":"curated"}`)
		} else {
			items = append(items, `"`+name+`"`)
		}
	}
	var p Policy
	if err := json.Unmarshal([]byte(`{"tools":[`+strings.Join(items, ",")+`]}`), &p); err != nil {
		b.Fatal(err)
	}
	if err := p.Provision(b.Context(), &policy.Env{}); err != nil {
		b.Fatal(err)
	}
	return p.idx
}

// BenchmarkFilterJSON100 is the filter alone on a 100-tool JSON answer (50 kept, 5 projected).
func BenchmarkFilterJSON100(b *testing.B) {
	idx, answer := benchIndex(b), toolsAnswer(100)
	b.SetBytes(int64(len(answer)))
	b.ReportAllocs()
	for b.Loop() {
		f := &filterer{who: idx.caller(nil), pend: &pending{single: true, singleKind: kindTools}}
		if _, changed := f.payload(answer); !changed {
			b.Fatal("unchanged")
		}
	}
}

// BenchmarkFilterSSE100 is the SSE reader alone on the same answer as one event after a
// progress notification.
func BenchmarkFilterSSE100(b *testing.B) {
	idx, answer := benchIndex(b), toolsAnswer(100)
	stream := []byte("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\nevent: message\ndata: " + string(answer) + "\n\n")
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	buf := make([]byte, 32<<10)
	for b.Loop() {
		f := &filterer{who: idx.caller(nil), pend: &pending{single: true, singleKind: kindTools}}
		r := newSSEFilter(io.NopCloser(bytes.NewReader(stream)), f)
		for {
			if _, err := r.Read(buf); err != nil {
				break
			}
		}
	}
}

// FuzzScan checks the scanner against encoding/json: on valid JSON it finds the same members and
// elements; on anything it does not panic.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `{"a":1,"b":[1,{"c":"}"}],"d":"\"\\"}`, `[1, "two" ,{"x":null},[true,false]]`,
		`{"a\u0062":"x","ab":"y"}`, `{"a":1,"a":2}`, ` { "k" : -1.5e3 } `, `{"a":"\\\\"}`, `{"a":`, `[1,]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, merr := jsonspan.Members(b, nil)
		els, eerr := jsonspan.Elements(b, nil)
		if !json.Valid(b) {
			return
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(b, &obj) == nil {
			if merr != nil {
				t.Fatalf("jsonspan.Members(%q): %v", b, merr)
			}
			last := map[string]string{}
			for _, m := range ms {
				key, ok := jsonspan.StringValue([]byte(`"` + string(m.Key) + `"`))
				if !ok {
					t.Fatalf("key %q does not decode", m.Key)
				}
				last[key] = string(b[m.VS:m.VE])
			}
			if len(last) != len(obj) {
				t.Fatalf("%q: %d distinct members, encoding/json %d", b, len(last), len(obj))
			}
			for k, v := range obj {
				if last[k] != string(v) {
					t.Fatalf("%q: member %q = %q, encoding/json %q", b, k, last[k], v)
				}
			}
		}
		var arr []json.RawMessage
		if json.Unmarshal(b, &arr) == nil {
			if eerr != nil || len(els) != len(arr) {
				t.Fatalf("jsonspan.Elements(%q) = %d, %v; encoding/json %d", b, len(els), eerr, len(arr))
			}
			for i, e := range els {
				if string(b[e[0]:e[1]]) != string(arr[i]) {
					t.Fatalf("%q: element %d = %q, encoding/json %q", b, i, b[e[0]:e[1]], arr[i])
				}
			}
		}
	})
}

// FuzzFilterAnswer filters arbitrary answers, whole and as an SSE stream read a byte at a time:
// no panic, valid JSON stays valid, and a hidden tool's name never survives in a filtered tools
// answer.
func FuzzFilterAnswer(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"hidden_tool"}]}}`,
		`[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"hidden_tool","name":"echo"}]}}]`,
		`{"jsonrpc":"2.0","id":1,"result":{"tools":null,"nextCursor":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"hidden_tool"}}`,
		`{"jsonrpc":"2.0","id":1,"RESULT":{"toolſ":[{"name":"echo","NAME":"hidden_tool"}]}}`,
	} {
		f.Add([]byte(s))
	}
	idx := compiled(f, `{"tools":[{"name":"echo","description":"d","annotations":{"readOnlyHint":true}}]}`)
	f.Fuzz(func(t *testing.T, b []byte) {
		fl := &filterer{who: idx.caller(nil), pend: &pending{single: true, singleKind: kindTools}}
		out, changed := fl.payload(b)
		if changed && json.Valid(b) && !json.Valid(out) {
			t.Fatalf("valid %q filtered into invalid %q", b, out)
		}
		var m struct {
			Result struct {
				Tools []struct {
					Name string `json:"name"`
				} `json:"tools"`
			} `json:"result"`
		}
		if changed && json.Unmarshal(out, &m) == nil {
			for _, tl := range m.Result.Tools {
				if tl.Name != "echo" {
					t.Fatalf("%q filtered into %q: tool %q survived", b, out, tl.Name)
				}
			}
		}
		stream := append(append([]byte("data: "), bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r"), nil), []byte("\n"), nil)...), "\n\n"...)
		fl = &filterer{who: idx.caller(nil), pend: &pending{single: true, singleKind: kindTools}}
		if _, err := io.ReadAll(iotest.OneByteReader(newSSEFilter(io.NopCloser(bytes.NewReader(stream)), fl))); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzInspect checks the request side against two readings of the body an upstream may make:
// encoding/json's (case-insensitive member names, the last of duplicates: the Go SDK) and an
// exact one (case-sensitive, the last of duplicates: JavaScript). Whatever the filter lets
// through must not be, under either reading, a call of a hidden item.
func FuzzInspect(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","NAME":"delete_all"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","METHOD":"tools/call","params":{"name":"delete_all"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"greet"}},{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a"}}]`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ech\u006f"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"nam\u0065":"delete_all","name":"echo"}}`,
	} {
		f.Add([]byte(s))
	}
	idx := compiled(f, `{"tools":["echo"],"prompts":["greet"],"resources":["file:///a"]}`)
	allowed := map[string]string{"tools/call": "echo", "prompts/get": "greet", "resources/read": "file:///a"}
	f.Fuzz(func(t *testing.T, body []byte) {
		d := idx.caller(nil).inspect(body)
		if d.invalidCode != 0 || d.hidden != nil {
			return
		}
		var raws []json.RawMessage
		if json.Unmarshal(body, &raws) != nil {
			raws = []json.RawMessage{body}
		}
		for _, raw := range raws {
			// The Go SDK's reading.
			var g struct {
				Method string
				Params struct {
					Name string
					URI  string
				}
			}
			if json.Unmarshal(raw, &g) == nil {
				target := g.Params.Name
				if g.Method == "resources/read" {
					target = g.Params.URI
				}
				if want, checked := allowed[g.Method]; checked && target != want && target != "" {
					t.Fatalf("let through %s, which encoding/json reads as %s %q", raw, g.Method, target)
				}
			}
			// An exact reading.
			var m map[string]json.RawMessage
			if json.Unmarshal(raw, &m) != nil {
				continue
			}
			var method string
			if json.Unmarshal(m["method"], &method) != nil {
				continue
			}
			var params map[string]json.RawMessage
			_ = json.Unmarshal(m["params"], &params)
			var target string
			key := "name"
			if method == "resources/read" {
				key = "uri"
			}
			_ = json.Unmarshal(params[key], &target)
			// No target at all ("pArAms" is not "params" to this reader) calls nothing.
			if want, checked := allowed[method]; checked && target != want && target != "" {
				t.Fatalf("let through %s, which an exact reader reads as %s %q", raw, method, target)
			}
		}
	})
}
