package mcpwire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// CodeURLElicitationRequired is MCP 2025-11-25's URLElicitationRequiredError.
const CodeURLElicitationRequired = -32042

// CodeConnectRequired is used where -32042 is retired (2026-07-28) and the method cannot return
// an input_required result (e.g. initialize, tools/list). It is in the implementation range the
// 2026-07-28 error-code policy leaves to servers.
const CodeConnectRequired = -32001

// Connection states a connect-required answer can carry.
const (
	StateAuthenticating       = "authenticating"
	StateReconsentRequired    = "reconsent_required"
	StateAdminConnectRequired = "admin_connect_required"
)

// ConnectRequired is what the MCP client needs to send its user to connect an upstream.
type ConnectRequired struct {
	State            string `json:"state"`
	UpstreamServerID string `json:"upstreamServerId"`
	OperationID      string `json:"operationId"`
	// AuthURL is the gateway's connect page; empty for admin_connect_required.
	AuthURL       string `json:"authUrl,omitempty"`
	NextAction    string `json:"nextAction,omitempty"`
	AuthProfileID string `json:"authProfileId"`
	ElicitationID string `json:"-"`
	// Message is what a person reads, e.g. "Connect Linear to continue."
	Message string `json:"-"`
	// Scopes are the scopes the connection will ask for (informational).
	Scopes []string `json:"scopes,omitempty"`
}

// elicitation is a URL-mode elicitation (ElicitRequestURLParams).
type elicitation struct {
	Mode          string `json:"mode"`
	ElicitationID string `json:"elicitationId,omitempty"`
	URL           string `json:"url"`
	Message       string `json:"message"`
}

type errorData struct {
	Elicitations []elicitation `json:"elicitations"`
	ConnectRequired
	Nested ConnectRequired `json:"connectRequired"`
}

type rpcError struct {
	Code    int       `json:"code"`
	Message string    `json:"message"`
	Data    errorData `json:"data"`
}

type rpcErrorResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   rpcError        `json:"error"`
}

type inputRequest struct {
	Method string      `json:"method"`
	Params elicitation `json:"params"`
}

type inputRequiredResult struct {
	ResultType    string                  `json:"resultType"`
	InputRequests map[string]inputRequest `json:"inputRequests"`
	RequestState  string                  `json:"requestState,omitempty"`
	Meta          map[string]any          `json:"_meta,omitempty"`
}

type rpcResultResponse struct {
	JSONRPC string              `json:"jsonrpc"`
	ID      json.RawMessage     `json:"id"`
	Result  inputRequiredResult `json:"result"`
}

// inputRequiredMethods may return an InputRequiredResult under 2026-07-28.
var inputRequiredMethods = map[string]bool{"tools/call": true, "prompts/get": true, "resources/read": true}

// errorMessage is the JSON-RPC error message: the person-facing text, with the URL when there is
// one, so clients without URL elicitation still show where to go.
func (cr ConnectRequired) errorMessage() string {
	if cr.AuthURL == "" {
		return cr.Message
	}
	return strings.TrimSuffix(cr.Message, ".") + ": " + cr.AuthURL
}

func (cr ConnectRequired) elicitations() []elicitation {
	if cr.AuthURL == "" {
		return []elicitation{}
	}
	return []elicitation{{Mode: "url", ElicitationID: cr.ElicitationID, URL: cr.AuthURL, Message: cr.Message}}
}

// responseFor builds the JSON-RPC answer to one request.
func responseFor(m Message, protocolVersion string, cr ConnectRequired) any {
	if protocolVersion == Version20260728 {
		if inputRequiredMethods[m.Method] && cr.AuthURL != "" {
			el := cr.elicitations()[0]
			el.ElicitationID = "" // removed in 2026-07-28
			return rpcResultResponse{JSONRPC: "2.0", ID: m.ID, Result: inputRequiredResult{
				ResultType:    "input_required",
				InputRequests: map[string]inputRequest{"connect-" + cr.UpstreamServerID: {Method: "elicitation/create", Params: el}},
				Meta:          map[string]any{"connectRequired": cr},
			}}
		}
		return rpcErrorResponse{JSONRPC: "2.0", ID: m.ID, Error: rpcError{Code: CodeConnectRequired, Message: cr.errorMessage(),
			Data: errorData{Elicitations: cr.elicitations(), ConnectRequired: cr, Nested: cr}}}
	}
	return rpcErrorResponse{JSONRPC: "2.0", ID: m.ID, Error: rpcError{Code: CodeURLElicitationRequired, Message: cr.errorMessage(),
		Data: errorData{Elicitations: cr.elicitations(), ConnectRequired: cr, Nested: cr}}}
}

// ConnectRequiredResponse answers env with connect-required: HTTP 200 with the JSON-RPC answer
// (one per request of a batch) as JSON, or as one SSE event when the client accepts only
// text/event-stream. A body with no request (notifications only) gets 428 problem+json carrying
// the same data. requestID goes into the problem's trace.
func ConnectRequiredResponse(env Envelope, accept, protocolVersion, requestID string, cr ConnectRequired) *http.Response {
	reqs := env.Requests()
	if len(reqs) == 0 {
		return notificationResponse(requestID, cr)
	}
	var payload any
	if env.Batch {
		all := make([]any, len(reqs))
		for i, m := range reqs {
			all[i] = responseFor(m, protocolVersion, cr)
		}
		payload = all
	} else {
		payload = responseFor(reqs[0], protocolVersion, cr)
	}
	body, _ := json.Marshal(payload)
	h := http.Header{"Cache-Control": {"no-store"}}
	if AcceptsOnlySSE(accept) {
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

func notificationResponse(requestID string, cr ConnectRequired) *http.Response {
	doc := map[string]any{
		"type":            "https://httpproblems.com/http-status/428",
		"title":           "Precondition Required",
		"status":          http.StatusPreconditionRequired,
		"detail":          cr.errorMessage(),
		"reasonCode":      "connect_required",
		"elicitations":    cr.elicitations(),
		"connectRequired": cr,
		"trace":           map[string]string{"requestId": requestID},
	}
	body, err := json.Marshal(doc)
	if err != nil {
		body = []byte(fmt.Sprintf(`{"status":428,"detail":%q}`, cr.Message))
	}
	h := http.Header{"Content-Type": {"application/problem+json"}, "Cache-Control": {"no-store"}, "Content-Length": {strconv.Itoa(len(body))}}
	return &http.Response{StatusCode: http.StatusPreconditionRequired, Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
}

// ErrorResponse answers every request in env with a plain JSON-RPC error (no URL), e.g. when
// step-up authorizations were exhausted. Notifications only → 428 is not right here, so they get a
// 403 problem with the message.
func ErrorResponse(env Envelope, accept string, code int, message string, data any) *http.Response {
	reqs := env.Requests()
	type errResp struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Data    any    `json:"data,omitempty"`
		} `json:"error"`
	}
	mk := func(m Message) errResp {
		var r errResp
		r.JSONRPC, r.ID = "2.0", m.ID
		r.Error.Code, r.Error.Message, r.Error.Data = code, message, data
		return r
	}
	var payload any
	switch {
	case len(reqs) == 0:
		body, _ := json.Marshal(map[string]any{"type": "https://httpproblems.com/http-status/403", "title": "Forbidden", "status": 403, "detail": message})
		return &http.Response{StatusCode: http.StatusForbidden, Header: http.Header{"Content-Type": {"application/problem+json"}}, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
	case env.Batch:
		all := make([]errResp, len(reqs))
		for i, m := range reqs {
			all[i] = mk(m)
		}
		payload = all
	default:
		payload = mk(reqs[0])
	}
	body, _ := json.Marshal(payload)
	h := http.Header{"Cache-Control": {"no-store"}, "Content-Type": {"application/json"}}
	if AcceptsOnlySSE(accept) {
		body = append(append([]byte("event: message\ndata: "), body...), "\n\n"...)
		h.Set("Content-Type", "text/event-stream")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return &http.Response{StatusCode: http.StatusOK, Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
}
