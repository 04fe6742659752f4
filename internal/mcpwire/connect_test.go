package mcpwire

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
)

var linear = ConnectRequired{
	State: StateAuthenticating, UpstreamServerID: "linear", OperationID: "linear-mcp-server",
	AuthURL:    "https://gw.example/__mcpgate/auth/connections/linear/connect?browserTicket=t&operationId=linear-mcp-server",
	NextAction: "redirect", AuthProfileID: "linear:user-oauth", ElicitationID: "el-1", Message: "Connect Linear to continue.",
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return m
}

func TestConnectRequiredJSONShape(t *testing.T) {
	env, err := Peek([]byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp := ConnectRequiredResponse(env, "application/json, text/event-stream", Version20251125, "rid", linear)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	b, _ := io.ReadAll(resp.Body)
	m := decode(t, b)
	if m["id"] != float64(7) {
		t.Errorf("id %v", m["id"])
	}
	e := m["error"].(map[string]any)
	if e["code"] != float64(-32042) {
		t.Errorf("code %v", e["code"])
	}
	if msg := e["message"].(string); !strings.Contains(msg, linear.AuthURL) || !strings.HasPrefix(msg, "Connect Linear to continue") {
		t.Errorf("message %q must name the URL", msg)
	}
	d := e["data"].(map[string]any)
	els := d["elicitations"].([]any)
	el := els[0].(map[string]any)
	if len(els) != 1 || el["mode"] != "url" || el["url"] != linear.AuthURL || el["elicitationId"] != "el-1" || el["message"] != "Connect Linear to continue." {
		t.Errorf("elicitations %v", els)
	}
	for _, data := range []map[string]any{d, d["connectRequired"].(map[string]any)} {
		if data["state"] != "authenticating" || data["upstreamServerId"] != "linear" || data["operationId"] != "linear-mcp-server" ||
			data["authUrl"] != linear.AuthURL || data["nextAction"] != "redirect" || data["authProfileId"] != "linear:user-oauth" {
			t.Errorf("flat fields %v", data)
		}
	}
}

func TestConnectRequiredAsSSEWhenOnlySSEAccepted(t *testing.T) {
	env, _ := Peek([]byte(`{"jsonrpc":"2.0","id":"a","method":"tools/list"}`))
	resp := ConnectRequiredResponse(env, "text/event-stream", Version20251125, "rid", linear)
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Content-Type") != "text/event-stream" || !strings.HasPrefix(string(b), "event: message\ndata: {") || !strings.HasSuffix(string(b), "\n\n") {
		t.Fatalf("%s %q", resp.Header.Get("Content-Type"), b)
	}
	m := decode(t, []byte(strings.TrimSuffix(strings.TrimPrefix(string(b), "event: message\ndata: "), "\n\n")))
	if m["id"] != "a" {
		t.Errorf("id %v", m["id"])
	}
}

func TestAdminConnectRequiredHasNoURL(t *testing.T) {
	cr := ConnectRequired{State: StateAdminConnectRequired, UpstreamServerID: "linear", OperationID: "op", AuthProfileID: "linear:shared-oauth",
		Message: "An administrator must connect Linear before this service is available."}
	env, _ := Peek([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`))
	b, _ := io.ReadAll(ConnectRequiredResponse(env, "", Version20251125, "rid", cr).Body)
	d := decode(t, b)["error"].(map[string]any)["data"].(map[string]any)
	if els := d["elicitations"].([]any); len(els) != 0 {
		t.Errorf("elicitations %v", els)
	}
	if _, has := d["authUrl"]; has {
		t.Error("authUrl present")
	}
}

func TestNotificationGets428(t *testing.T) {
	env, _ := Peek([]byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	resp := ConnectRequiredResponse(env, "", Version20251125, "rid-9", linear)
	b, _ := io.ReadAll(resp.Body)
	m := decode(t, b)
	if resp.StatusCode != 428 || resp.Header.Get("Content-Type") != "application/problem+json" || m["connectRequired"] == nil {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if m["trace"].(map[string]any)["requestId"] != "rid-9" {
		t.Errorf("trace %v", m["trace"])
	}
}

func TestInputRequiredFor20260728(t *testing.T) {
	env, _ := Peek([]byte(`{"jsonrpc":"2.0","id":3,"method":"tools/call"}`))
	b, _ := io.ReadAll(ConnectRequiredResponse(env, "", Version20260728, "rid", linear).Body)
	m := decode(t, b)
	res := m["result"].(map[string]any)
	if res["resultType"] != "input_required" || m["error"] != nil {
		t.Fatalf("%s", b)
	}
	req := res["inputRequests"].(map[string]any)["connect-linear"].(map[string]any)
	params := req["params"].(map[string]any)
	if req["method"] != "elicitation/create" || params["mode"] != "url" || params["url"] != linear.AuthURL {
		t.Errorf("%v", req)
	}
	if _, has := params["elicitationId"]; has {
		t.Error("elicitationId is removed in 2026-07-28")
	}
	// Methods that cannot carry input_required get an error, never -32042.
	env, _ = Peek([]byte(`{"jsonrpc":"2.0","id":4,"method":"tools/list"}`))
	b, _ = io.ReadAll(ConnectRequiredResponse(env, "", Version20260728, "rid", linear).Body)
	if code := decode(t, b)["error"].(map[string]any)["code"]; code != float64(CodeConnectRequired) {
		t.Errorf("code %v", code)
	}
}

func TestBatchAnswersEveryRequest(t *testing.T) {
	env, err := Peek([]byte(`[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":2,"method":"tools/call"}]`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(ConnectRequiredResponse(env, "", Version20251125, "rid", linear).Body)
	var arr []map[string]any
	if err := json.Unmarshal(b, &arr); err != nil || len(arr) != 2 || arr[0]["id"] != float64(1) || arr[1]["id"] != float64(2) {
		t.Fatalf("%s %v", b, err)
	}
}

func TestPeekRejectsNonJSONRPC(t *testing.T) {
	for _, body := range []string{"", "hello", `{"id":1}`, `[]`} {
		if _, err := Peek([]byte(body)); err == nil {
			t.Errorf("%q accepted", body)
		}
	}
}

func FuzzPeek(f *testing.F) {
	for _, s := range []string{`{"jsonrpc":"2.0","id":1,"method":"a"}`, `[{"jsonrpc":"2.0","method":"b"}]`, `{`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Peek(b)
		if err == nil && len(env.Messages) == 0 {
			t.Fatal("no messages without error")
		}
	})
}

func TestAcceptsOnlySSE(t *testing.T) {
	for accept, want := range map[string]bool{
		"text/event-stream": true, "application/json, text/event-stream": false, "": false, "*/*": false,
		"text/event-stream;q=1": true, "application/json": false,
	} {
		if got := AcceptsOnlySSE(accept); got != want {
			t.Errorf("%q: %v", accept, got)
		}
	}
}
