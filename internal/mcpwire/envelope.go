// Package mcpwire knows the few parts of MCP's JSON-RPC wire format the gateway must read or write:
// the request envelope (without parsing params), protocol versions, and the connect-required answers.
package mcpwire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Protocol versions the gateway distinguishes.
const (
	Version20251125 = "2025-11-25"
	// Version20260728 retires -32042; connect-required becomes an input_required result.
	Version20260728 = "2026-07-28"
)

// ProtocolVersionHeader is the MCP-Protocol-Version request header.
const ProtocolVersionHeader = "Mcp-Protocol-Version"

// MaxEnvelopeBytes bounds how much of a body Peek looks at.
const MaxEnvelopeBytes = 4 << 20

// Message is the envelope of one JSON-RPC message: params and result are not parsed.
type Message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
}

// IsRequest reports whether m expects a response (it has an id and a method).
func (m Message) IsRequest() bool {
	return len(m.ID) > 0 && !bytes.Equal(m.ID, []byte("null")) && m.Method != ""
}

// IsNotification reports whether m is a notification (a method and no id).
func (m Message) IsNotification() bool { return m.Method != "" && len(m.ID) == 0 }

// Envelope is what Peek learned about a POST body: one message, or a batch.
type Envelope struct {
	Messages []Message
	Batch    bool
}

// Requests returns the messages that expect a response.
func (e Envelope) Requests() []Message {
	var out []Message
	for _, m := range e.Messages {
		if m.IsRequest() {
			out = append(out, m)
		}
	}
	return out
}

// Method returns the method of a single message, or "" for a batch.
func (e Envelope) Method() string {
	if e.Batch || len(e.Messages) != 1 {
		return ""
	}
	return e.Messages[0].Method
}

// ErrNotJSONRPC is returned for bodies that are not a JSON-RPC message or batch.
var ErrNotJSONRPC = errors.New("body is not a JSON-RPC 2.0 message")

// Peek reads the envelope of body: jsonrpc, id and method of each message. It does not
// allocate for params.
func Peek(body []byte) (Envelope, error) {
	if len(body) > MaxEnvelopeBytes {
		return Envelope{}, fmt.Errorf("peeking JSON-RPC envelope: body of %d bytes is over the %d-byte limit", len(body), MaxEnvelopeBytes)
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return Envelope{}, ErrNotJSONRPC
	}
	if trimmed[0] == '[' {
		var msgs []Message
		if err := json.Unmarshal(trimmed, &msgs); err != nil || len(msgs) == 0 {
			return Envelope{}, ErrNotJSONRPC
		}
		return Envelope{Messages: msgs, Batch: true}, nil
	}
	var m Message
	if err := json.Unmarshal(trimmed, &m); err != nil || m.JSONRPC != "2.0" {
		return Envelope{}, ErrNotJSONRPC
	}
	return Envelope{Messages: []Message{m}}, nil
}

// AcceptsOnlySSE reports whether an Accept header admits text/event-stream but not JSON, so a
// single JSON-RPC answer must be sent as one SSE event.
func AcceptsOnlySSE(accept string) bool {
	if accept == "" {
		return false
	}
	json, sse := false, false
	for _, part := range strings.Split(accept, ",") {
		mt := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
		switch mt {
		case "application/json", "application/*", "*/*":
			json = true
		case "text/event-stream":
			sse = true
		}
	}
	return sse && !json
}
