package e2e

// The gateway's answers for clients without URL elicitation (docs/sign-in.md), met by the official
// SDK clients: the Go SDK (go-sdk v1.8.0, mcp.Client over StreamableClientTransport) and the
// TypeScript SDK (node/fallback-ts-client.mjs), each once declaring capabilities.elicitation.url
// and once not, against the quickstart's /mcp/demo-oauth (api-key-inbound + token exchange) with
// the demo API key, before the person connected the demo upstream.
//
//   - Declaring URL elicitation: the usual -32042 URLElicitationRequired, already on initialize
//     (the demo upstream refuses every request without a token), with the connect link.
//   - Not declaring: initialize succeeds with the link in its instructions, tools/list is the one
//     connect_demo tool, tools/call is an isError result with the link.
//   - The Mcp-Session-Id the gateway issues ("mcpgate1.…") carries the declaration; presented with
//     another consumer's API key it is refused with 404.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/testutil/nodeenv"
)

// fallbackTimeout bounds each client's run.
const fallbackTimeout = 60 * time.Second

// initRecorder is an MCP client's HTTP transport with a static API key that also records the
// capabilities of each initialize request it sends.
type initRecorder struct {
	key string

	mu       sync.Mutex
	declared []json.RawMessage
}

func (r *initRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+r.key)
	if req.Method == http.MethodPost && req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		var m struct {
			Method string `json:"method"`
			Params struct {
				Capabilities json.RawMessage `json:"capabilities"`
			} `json:"params"`
		}
		if json.Unmarshal(b, &m) == nil && m.Method == "initialize" {
			r.mu.Lock()
			r.declared = append(r.declared, m.Params.Capabilities)
			r.mu.Unlock()
		}
	}
	return http.DefaultTransport.RoundTrip(req)
}

// lastDeclared is the capabilities object of the last initialize.
func (r *initRecorder) lastDeclared(t *testing.T) map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.declared) == 0 {
		t.Fatal("the client sent no initialize")
	}
	var caps map[string]any
	if err := json.Unmarshal(r.declared[len(r.declared)-1], &caps); err != nil {
		t.Fatalf("initialize capabilities %s: %v", r.declared[len(r.declared)-1], err)
	}
	return caps
}

// declaresURLElicitation reports whether capabilities carry elicitation.url.
func declaresURLElicitation(caps map[string]any) bool {
	e, ok := caps["elicitation"].(map[string]any)
	if !ok {
		return false
	}
	_, ok = e["url"]
	return ok
}

// checkDemoConnectRequired asserts the -32042 answer of the quickstart's OAuth route before
// connecting and returns the link.
func checkDemoConnectRequired(t *testing.T, q *demoQuickstart, what string, cr *connectRequired) string {
	t.Helper()
	d := cr.Data
	link := connectLinkRe(q).FindString(d.AuthURL)
	if cr.Code != mcp.CodeURLElicitationRequired || link == "" || link != d.AuthURL {
		t.Fatalf("%s: code %d message %q authUrl %q, want -32042 with the gateway's connect link", what, cr.Code, cr.Message, d.AuthURL)
	}
	if len(d.Elicitations) != 1 || d.Elicitations[0].Mode != "url" || d.Elicitations[0].URL != link || d.Elicitations[0].ElicitationID == "" {
		t.Errorf("%s: elicitations %+v, want one url elicitation with the link", what, d.Elicitations)
	}
	if d.State != "authenticating" || d.UpstreamServerID != "demo" || d.OperationID != "demo-oauth-mcp-server" {
		t.Errorf("%s: state %q upstream %q operation %q", what, d.State, d.UpstreamServerID, d.OperationID)
	}
	if !strings.Contains(cr.Message, link) {
		t.Errorf("%s: message %q does not carry the link", what, cr.Message)
	}
	return link
}

// rawMCP posts one JSON-RPC message as a client of session sid (none when empty) with key and
// returns the status and the body.
func rawMCP(t *testing.T, url, key, sid, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Mcp-Protocol-Version", connectProtocol)
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// fallbackTSReport is what node/fallback-ts-client.mjs prints.
type fallbackTSReport struct {
	Declared     map[string]any `json:"declared"`
	ConnectError *struct {
		Class   string          `json:"class"`
		Code    int64           `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"connectError"`
	ServerInfo struct {
		Name string `json:"name"`
	} `json:"serverInfo"`
	Instructions string `json:"instructions"`
	SessionID    string `json:"sessionId"`
	Tools        []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"tools"`
	Call struct {
		IsError bool   `json:"isError"`
		Text    string `json:"text"`
	} `json:"call"`
	Ping  bool   `json:"ping"`
	Error string `json:"error"`
}

func runFallbackTSClient(t *testing.T, url, key, mode string) fallbackTSReport {
	t.Helper()
	env := nodeenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), fallbackTimeout)
	defer cancel()
	stdout, stderr, err := env.Run(ctx, nil, "fallback-ts-client.mjs", url, key, mode)
	var rep fallbackTSReport
	if jerr := json.Unmarshal(stdout, &rep); jerr != nil || err != nil || rep.Error != "" {
		t.Fatalf("fallback-ts-client.mjs %s: %v (%v)\nstdout:\n%s\nstderr:\n%s", mode, err, jerr, stdout, stderr)
	}
	return rep
}

// TestFallbackSDKClients runs the SDK clients against /mcp/demo-oauth before connecting.
func TestFallbackSDKClients(t *testing.T) {
	q := startDemoQuickstart(t, "other-user")
	endpoint := q.gw.URL("/mcp/demo-oauth")
	linkRe := connectLinkRe(q)

	goConnect := func(t *testing.T, ctx context.Context, opts *mcp.ClientOptions) (*mcp.ClientSession, *initRecorder, error) {
		rec := &initRecorder{key: q.key}
		client := mcp.NewClient(&mcp.Implementation{Name: "mcpgate-e2e-fallback-go-client", Version: "1.0.0"}, opts)
		session, err := client.Connect(ctx, &mcp.StreamableClientTransport{
			Endpoint:   endpoint,
			HTTPClient: &http.Client{Transport: rec, Timeout: 30 * time.Second},
		}, &mcp.ClientSessionOptions{ProtocolVersion: connectProtocol})
		if err == nil {
			t.Cleanup(func() { _ = session.Close() })
		}
		return session, rec, err
	}

	// checkGoFallback walks a connected Go SDK session that declared no URL elicitation.
	checkGoFallback := func(t *testing.T, ctx context.Context, session *mcp.ClientSession) {
		t.Helper()
		ir := session.InitializeResult()
		if ir.ServerInfo == nil || ir.ServerInfo.Name != "mcpgate (Demo upstream not connected)" || linkRe.FindString(ir.Instructions) == "" {
			t.Errorf("initialize result: serverInfo %+v instructions %q, want the gateway's answer with the link", ir.ServerInfo, ir.Instructions)
		}
		if sid := session.ID(); !strings.HasPrefix(sid, "mcpgate1.") {
			t.Errorf("Mcp-Session-Id %q, want the gateway's mcpgate1.…", sid)
		}
		tools, err := session.ListTools(ctx, nil)
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		if len(tools.Tools) != 1 || tools.Tools[0].Name != "connect_demo" || linkRe.FindString(tools.Tools[0].Description) == "" {
			t.Errorf("tools/list: %+v, want connect_demo with the link", tools.Tools)
		}
		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
		if err != nil {
			t.Fatalf("tools/call whoami: %v", err)
		}
		var text string
		if len(res.Content) == 1 {
			if tc, ok := res.Content[0].(*mcp.TextContent); ok {
				text = tc.Text
			}
		}
		if !res.IsError || linkRe.FindString(text) == "" {
			t.Errorf("tools/call whoami: isError %v text %q, want an error result with the link", res.IsError, text)
		}
		if err := session.Ping(ctx, nil); err != nil {
			t.Errorf("ping: %v", err)
		}
	}

	t.Run("GoSDK/DeclaresURLElicitation", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), fallbackTimeout)
		defer cancel()
		_, rec, err := goConnect(t, ctx, &mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{
			Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}},
		}})
		if !declaresURLElicitation(rec.lastDeclared(t)) {
			t.Fatalf("the Go SDK's initialize declared %v, want elicitation.url", rec.lastDeclared(t))
		}
		if err == nil {
			t.Fatal("initialize succeeded before connecting, want -32042")
		}
		checkDemoConnectRequired(t, q, "Go SDK initialize", asConnectRequired(t, "Go SDK initialize", err))

		// A tools/call the gateway holds no declaration for (no session) keeps -32042 as well.
		status, body := rawMCP(t, endpoint, q.key, "", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`)
		var msg struct {
			Error struct {
				Code    int64           `json:"code"`
				Message string          `json:"message"`
				Data    json.RawMessage `json:"data"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(sseData(body)), &msg); err != nil || status != http.StatusOK {
			t.Fatalf("tools/call without a session: HTTP %d %s", status, body)
		}
		cr := &connectRequired{Code: msg.Error.Code, Message: msg.Error.Message}
		if err := json.Unmarshal(msg.Error.Data, &cr.Data); err != nil {
			t.Fatalf("tools/call without a session: %s", body)
		}
		checkDemoConnectRequired(t, q, "tools/call without a session", cr)
	})

	t.Run("GoSDK/FormElicitationOnly", func(t *testing.T) {
		// go-sdk v1.8.0 infers {"elicitation":{"form":{}}} from an ElicitationHandler: no URL mode.
		ctx, cancel := context.WithTimeout(context.Background(), fallbackTimeout)
		defer cancel()
		session, rec, err := goConnect(t, ctx, &mcp.ClientOptions{
			ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
				return &mcp.ElicitResult{Action: "decline"}, nil
			},
		})
		caps := rec.lastDeclared(t)
		if caps["elicitation"] == nil || declaresURLElicitation(caps) {
			t.Fatalf("the Go SDK's initialize declared %v, want form elicitation only", caps)
		}
		if err != nil {
			t.Fatalf("initialize: %v, want the gateway's answer for clients without URL elicitation", err)
		}
		checkGoFallback(t, ctx, session)
	})

	t.Run("GoSDK/NoElicitation", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), fallbackTimeout)
		defer cancel()
		session, rec, err := goConnect(t, ctx, nil)
		if caps := rec.lastDeclared(t); caps["elicitation"] != nil {
			t.Fatalf("the Go SDK's default initialize declared %v", caps)
		}
		if err != nil {
			t.Fatalf("initialize: %v, want the gateway's answer for clients without URL elicitation", err)
		}
		checkGoFallback(t, ctx, session)

		// The session id is bound to the caller: the same id with the same key answers, with
		// another consumer's key it is unknown.
		sid := session.ID()
		list := `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`
		if status, body := rawMCP(t, endpoint, q.key, sid, list); status != http.StatusOK || !strings.Contains(body, `"connect_demo"`) {
			t.Errorf("tools/list with the session id and its own key: HTTP %d %s", status, body)
		}
		status, body := rawMCP(t, endpoint, q.keys["other-user"], sid, list)
		if status != http.StatusNotFound {
			t.Errorf("tools/list with demo-user's session id and other-user's key: HTTP %d %s, want 404", status, body)
		}
		if strings.Contains(body, "connect_demo") || strings.Contains(body, "browserTicket") {
			t.Errorf("the refused request got an answer: %s", body)
		}
		// Tampered: the last character of the MAC changed.
		tampered := sid[:len(sid)-1] + map[bool]string{true: "A", false: "B"}[!strings.HasSuffix(sid, "A")]
		if status, body := rawMCP(t, endpoint, q.key, tampered, list); status != http.StatusNotFound {
			t.Errorf("tools/list with a tampered session id: HTTP %d %s, want 404", status, body)
		}
	})

	t.Run("TypeScriptSDK/DeclaresURLElicitation", func(t *testing.T) {
		rep := runFallbackTSClient(t, endpoint, q.key, "url")
		if !declaresURLElicitation(rep.Declared) {
			t.Fatalf("the TypeScript SDK's initialize declared %v, want elicitation.url", rep.Declared)
		}
		if rep.ConnectError == nil {
			t.Fatalf("connect succeeded before connecting the upstream, want -32042: %+v", rep)
		}
		var data struct {
			Elicitations []struct {
				Mode string `json:"mode"`
				URL  string `json:"url"`
			} `json:"elicitations"`
		}
		_ = json.Unmarshal(rep.ConnectError.Data, &data)
		if rep.ConnectError.Code != mcp.CodeURLElicitationRequired || rep.ConnectError.Class != "UrlElicitationRequiredError" ||
			len(data.Elicitations) != 1 || data.Elicitations[0].Mode != "url" || linkRe.FindString(data.Elicitations[0].URL) != data.Elicitations[0].URL ||
			!strings.Contains(rep.ConnectError.Message, data.Elicitations[0].URL) {
			t.Errorf("the TypeScript SDK's connect error: %s %d %q (data %s), want UrlElicitationRequiredError -32042 with the link",
				rep.ConnectError.Class, rep.ConnectError.Code, rep.ConnectError.Message, rep.ConnectError.Data)
		}
	})

	t.Run("TypeScriptSDK/NoElicitation", func(t *testing.T) {
		rep := runFallbackTSClient(t, endpoint, q.key, "none")
		if rep.Declared == nil || rep.Declared["elicitation"] != nil {
			t.Fatalf("the TypeScript SDK's initialize declared %v, want no elicitation", rep.Declared)
		}
		if rep.ConnectError != nil {
			t.Fatalf("connect: %+v, want the gateway's answer for clients without URL elicitation", rep.ConnectError)
		}
		if rep.ServerInfo.Name != "mcpgate (Demo upstream not connected)" || linkRe.FindString(rep.Instructions) == "" {
			t.Errorf("initialize: serverInfo %q instructions %q", rep.ServerInfo.Name, rep.Instructions)
		}
		if !strings.HasPrefix(rep.SessionID, "mcpgate1.") {
			t.Errorf("Mcp-Session-Id %q, want the gateway's mcpgate1.…", rep.SessionID)
		}
		if len(rep.Tools) != 1 || rep.Tools[0].Name != "connect_demo" || linkRe.FindString(rep.Tools[0].Description) == "" {
			t.Errorf("tools/list: %+v, want connect_demo with the link", rep.Tools)
		}
		if !rep.Call.IsError || linkRe.FindString(rep.Call.Text) == "" {
			t.Errorf("tools/call whoami: %+v, want an error result with the link", rep.Call)
		}
		if !rep.Ping {
			t.Error("ping failed")
		}
		if status, body := rawMCP(t, endpoint, q.keys["other-user"], rep.SessionID, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`); status != http.StatusNotFound {
			t.Errorf("tools/list with the TypeScript client's session id and other-user's key: HTTP %d %s, want 404", status, body)
		}
	})
}

// sseData is the data of the first SSE event in body, or body when it is not an event stream.
func sseData(body string) string {
	for _, line := range strings.Split(body, "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			return d
		}
	}
	return body
}
