package mcpwire

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// SessionHeader is the Streamable HTTP session header.
const SessionHeader = "Mcp-Session-Id"

// LastEventIDHeader is the header of a GET that resumes a stream (SSE's Last-Event-ID): the id of
// the last event the client received.
const LastEventIDHeader = "Last-Event-ID"

// IsResumption reports whether r resumes an SSE stream: a GET with Last-Event-ID.
func IsResumption(method string, h http.Header) bool {
	return method == http.MethodGet && h.Get(LastEventIDHeader) != ""
}

// SessionPrefix starts every session id the gateway issues.
const SessionPrefix = "mcpgate1."

// ClientInfo is what an MCP client declared in its initialize request.
type ClientInfo struct {
	// URLElicitation is true when capabilities.elicitation.url was present: the client can open
	// a connect link itself (-32042). Clients that did not declare it get the gateway's own
	// answers instead (Fallback).
	URLElicitation  bool   `json:"e,omitempty"`
	Name            string `json:"n,omitempty"`
	Version         string `json:"v,omitempty"`
	ProtocolVersion string `json:"p,omitempty"`
}

// sessionPayload is what a gateway session id carries.
type sessionPayload struct {
	ClientInfo
	// Upstream is the upstream's own session id ("" when it issued none, or never saw the client).
	Upstream string `json:"u,omitempty"`
}

// ErrSession is a gateway session id that is malformed or was issued to another caller.
var ErrSession = errors.New("mcpwire: session id not issued to this caller")

// macLen is the truncated HMAC-SHA256 length of a session id.
const macLen = 16

// WrapSession returns a gateway session id carrying info and the upstream's session id, bound by
// an HMAC under key to subject: presented by anyone else it does not open. No state is kept: every
// replica that shares key reads it.
func WrapSession(key []byte, subject string, info ClientInfo, upstreamSession string) string {
	b, _ := json.Marshal(sessionPayload{ClientInfo: info, Upstream: upstreamSession})
	payload := base64.RawURLEncoding.EncodeToString(b)
	return SessionPrefix + payload + "." + base64.RawURLEncoding.EncodeToString(sessionMAC(key, subject, payload))
}

// UnwrapSession opens a gateway session id presented by subject.
func UnwrapSession(key []byte, subject, id string) (ClientInfo, string, error) {
	rest, ok := strings.CutPrefix(id, SessionPrefix)
	if !ok || !canonical(rest) {
		return ClientInfo{}, "", ErrSession
	}
	payload, mac, ok := strings.Cut(rest, ".")
	if !ok {
		return ClientInfo{}, "", ErrSession
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(mac)
	if err != nil || !hmac.Equal(got, sessionMAC(key, subject, payload)) {
		return ClientInfo{}, "", ErrSession
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return ClientInfo{}, "", ErrSession
	}
	var p sessionPayload
	if json.Unmarshal(raw, &p) != nil {
		return ClientInfo{}, "", ErrSession
	}
	return p.ClientInfo, p.Upstream, nil
}

// OpenSession opens the gateway session id in h, presented by subject, and puts the upstream's own
// session id in its place (or removes the header when the upstream issued none). present is false
// when h carries no session id. An id without SessionPrefix was never issued by the gateway — it
// may be another caller's upstream session id, readable inside their wrapped id or leaked from a
// log — and is refused with ErrSession, as one issued to another subject is.
func OpenSession(key []byte, subject string, h http.Header) (info ClientInfo, upstream string, present bool, err error) {
	raw := h.Get(SessionHeader)
	if raw == "" {
		return ClientInfo{}, "", false, nil
	}
	info, upstream, err = UnwrapSession(key, subject, raw)
	if err != nil {
		return ClientInfo{}, "", true, err
	}
	if upstream == "" {
		h.Del(SessionHeader)
	} else {
		h.Set(SessionHeader, upstream)
	}
	return info, upstream, true, nil
}

// canonical reports whether s holds only unpadded base64url characters and dots. The base64 decoder
// skips '\r' and '\n' even in strict mode, so without this check an id with a line break inserted
// would open like the id it was made from (found by FuzzUnwrapSession): one session, many ids.
func canonical(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func sessionMAC(key []byte, subject, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("mcpgate/session/v1\x00"))
	m.Write([]byte(subject))
	m.Write([]byte{0})
	m.Write([]byte(payload))
	return m.Sum(nil)[:macLen]
}

// InitializeInfo reads what an initialize request declares; ok is false when body is not a single
// initialize request.
func InitializeInfo(body []byte) (ClientInfo, bool) {
	if !bytes.Contains(body, []byte(`"initialize"`)) {
		return ClientInfo{}, false
	}
	var req struct {
		Method string `json:"method"`
		Params struct {
			ProtocolVersion string `json:"protocolVersion"`
			Capabilities    struct {
				Elicitation *struct {
					URL json.RawMessage `json:"url"`
				} `json:"elicitation"`
			} `json:"capabilities"`
			ClientInfo struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"clientInfo"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &req) != nil || req.Method != "initialize" {
		return ClientInfo{}, false
	}
	p := req.Params
	info := ClientInfo{Name: p.ClientInfo.Name, Version: p.ClientInfo.Version, ProtocolVersion: p.ProtocolVersion}
	if e := p.Capabilities.Elicitation; e != nil && len(e.URL) > 0 && string(e.URL) != "null" {
		info.URLElicitation = true
	}
	return info, true
}
