package mcpwire

import (
	"strings"
	"testing"
)

// TestSessionBoundToSubject: a gateway session id opens only for the subject it was issued to
// and carries the client's declaration and the upstream's session id.
func TestSessionBoundToSubject(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	info := ClientInfo{URLElicitation: false, Name: "mcp-remote", ProtocolVersion: "2025-06-18"}
	id := WrapSession(key, "apikey|alice", info, "upstream-session-1")
	if !strings.HasPrefix(id, SessionPrefix) {
		t.Fatalf("id %q", id)
	}
	got, ups, err := UnwrapSession(key, "apikey|alice", id)
	if err != nil || got != info || ups != "upstream-session-1" {
		t.Fatalf("unwrap: %v %+v %q", err, got, ups)
	}
	// The gateway sends a presented id back unchanged while the upstream keeps its session
	// (connect's wrapSession): that is sound only because wrapping what an id opens to makes
	// that very id again.
	if again := WrapSession(key, "apikey|alice", got, ups); again != id {
		t.Fatalf("wrapping what %q opens to gave %q", id, again)
	}
	if _, _, err := UnwrapSession(key, "apikey|bob", id); err != ErrSession {
		t.Fatalf("bob opened alice's session: %v", err)
	}
	if _, _, err := UnwrapSession([]byte("another key of 32 bytes, really"), "apikey|alice", id); err != ErrSession {
		t.Fatalf("another gateway's key opened it: %v", err)
	}
}

// TestInitializeInfo reads what an initialize declares.
func TestInitializeInfo(t *testing.T) {
	cases := []struct {
		name string
		body string
		url  bool
		ok   bool
	}{
		{"url elicitation", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"url":{}}},"clientInfo":{"name":"c","version":"1"}}}`, true, true},
		{"form only", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"c"}}}`, false, true},
		{"none", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}`, false, true},
		{"not initialize", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"note":"initialize"}}`, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info, ok := InitializeInfo([]byte(tc.body))
			if ok != tc.ok || info.URLElicitation != tc.url {
				t.Fatalf("got %+v %v", info, ok)
			}
		})
	}
}

// FuzzUnwrapSession: a session id the gateway did not issue for this subject never opens.
func FuzzUnwrapSession(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	good := WrapSession(key, "s", ClientInfo{Name: "n"}, "u")
	f.Add(good)
	f.Add(SessionPrefix + "e30.AAAA")
	f.Add(SessionPrefix)
	f.Fuzz(func(t *testing.T, id string) {
		info, ups, err := UnwrapSession(key, "s", id)
		if err != nil {
			return
		}
		if id != good || info.Name != "n" || ups != "u" {
			t.Fatalf("forged session opened: %q → %+v %q", id, info, ups)
		}
	})
}

// FuzzInitializeInfo never panics and reports initialize only for an initialize request.
func FuzzInitializeInfo(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{"elicitation":{"url":{}}}}}`))
	f.Add([]byte(`[{"method":"initialize"}]`))
	f.Add([]byte(`{"method":"initialize","params":{"capabilities":{"elicitation":{"url":null}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, ok := InitializeInfo(body); ok && !strings.Contains(string(body), "initialize") {
			t.Fatalf("initialize reported for %q", body)
		}
	})
}
