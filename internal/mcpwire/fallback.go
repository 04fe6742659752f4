package mcpwire

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// Fallback answers for a client whose initialize did not declare URL elicitation, when the
// upstream refuses for want of a connection. Such a client would treat -32042 as a fatal error
// and never show the link (mcp-remote exits with UrlElicitationRequiredError); instead the gateway
// answers in terms every client shows its user:
//
//	initialize                → a result naming the upstream, with instructions carrying the link
//	notifications/*           → 202 Accepted
//	tools/list                → one tool, connect_<id>, whose description says what to do
//	tools/call                → a tool result (isError: true) whose text carries the link
//	prompts/list, resources/list, resources/templates/list → empty lists; ping → {}
//
// Any other method, and a batch, gets the usual connect-required answer.

// supportedVersions are the protocol versions the gateway's own initialize result may name.
var supportedVersions = map[string]bool{"2025-11-25": true, "2025-06-18": true, "2025-03-26": true, "2024-11-05": true}

// fallbackMethods are the methods Fallback answers.
var fallbackMethods = map[string]bool{"initialize": true, "tools/list": true, "tools/call": true, "prompts/list": true,
	"resources/list": true, "resources/templates/list": true, "ping": true}

// HasFallback reports whether Fallback answers env.
func HasFallback(env Envelope) bool {
	if env.Batch || len(env.Messages) != 1 {
		return false
	}
	m := env.Messages[0]
	return m.IsNotification() || (m.IsRequest() && fallbackMethods[m.Method])
}

var toolNameUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// ConnectToolName is the name of the one tool a client sees before the upstream is connected.
func ConnectToolName(upstreamID string) string {
	return "connect_" + toolNameUnsafe.ReplaceAllString(upstreamID, "_")
}

// instructions is the text a person reads: what to do, and the link.
func (cr ConnectRequired) instructions(displayName string) string {
	if cr.AuthURL == "" {
		return cr.Message + " Nothing can be done from here; try again once it is connected."
	}
	return cr.Message + " Open this link in your browser: " + cr.AuthURL + " — then come back and try again. The link works once, for 15 minutes; if it expires, any request here gives a new one. (If your MCP client still shows only the " +
		ConnectToolName(cr.UpstreamServerID) + " tool after connecting, reconnect this MCP server in the client to load " + displayName + "'s tools.)"
}

// Fallback answers env (a message HasFallback accepts) for a client without URL elicitation.
// serverName names the upstream in the initialize result; version is the gateway's. sessionID,
// when set, is sent as the Mcp-Session-Id of an initialize answer.
func Fallback(env Envelope, accept, displayName, version, sessionID string, info ClientInfo, cr ConnectRequired) *http.Response {
	m := env.Messages[0]
	if m.IsNotification() {
		return &http.Response{StatusCode: http.StatusAccepted, Header: http.Header{"Content-Length": {"0"}}, Body: http.NoBody}
	}
	text := cr.instructions(displayName)
	var result any
	switch m.Method {
	case "initialize":
		pv := info.ProtocolVersion
		if !supportedVersions[pv] {
			pv = Version20251125
		}
		result = map[string]any{
			"protocolVersion": pv,
			"capabilities":    map[string]any{"tools": map[string]any{}},
			"serverInfo":      map[string]any{"name": "mcpgate (" + displayName + " not connected)", "version": version},
			"instructions":    text,
		}
	case "tools/list":
		result = map[string]any{"tools": []any{map[string]any{
			"name":        ConnectToolName(cr.UpstreamServerID),
			"title":       "Connect " + displayName,
			"description": text,
			"inputSchema": map[string]any{"type": "object", "properties": map[string]any{}},
		}}}
	case "tools/call":
		result = map[string]any{"content": []any{map[string]any{"type": "text", "text": text}}, "isError": true}
	case "prompts/list":
		result = map[string]any{"prompts": []any{}}
	case "resources/list":
		result = map[string]any{"resources": []any{}}
	case "resources/templates/list":
		result = map[string]any{"resourceTemplates": []any{}}
	default: // ping
		result = map[string]any{}
	}
	body, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  any             `json:"result"`
	}{"2.0", m.ID, result})
	h := http.Header{"Cache-Control": {"no-store"}}
	if m.Method == "initialize" && sessionID != "" {
		h.Set(SessionHeader, sessionID)
	}
	if AcceptsOnlySSE(accept) || (strings.Contains(accept, "text/event-stream") && !strings.Contains(accept, "application/json")) {
		var b bytes.Buffer
		b.WriteString("event: message\ndata: ")
		b.Write(body)
		b.WriteString("\n\n")
		body = b.Bytes()
		h.Set("Content-Type", "text/event-stream")
	} else {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return &http.Response{StatusCode: http.StatusOK, Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
}
