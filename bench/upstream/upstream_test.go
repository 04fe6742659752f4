package upstream

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func call(t *testing.T, method, body string, sse bool) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "/mcp", strings.NewReader(body))
	if sse {
		req.Header.Set(StreamHeader, "sse")
	}
	rec := httptest.NewRecorder()
	(&Handler{SSEDelay: -1}).ServeHTTP(rec, req)
	return rec
}

func TestJSONAnswerIsAJSONRPCResultForTheRequestID(t *testing.T) {
	for _, tt := range []struct{ name, body, wantID string }{
		{"number id", ToolsCall, "42"},
		{"string id", `{"jsonrpc":"2.0","id": "a-1","method":"tools/call","params":{"name":"echo"}}`, `"a-1"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := call(t, http.MethodPost, tt.body, false)
			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
			}
			var msg struct {
				JSONRPC string          `json:"jsonrpc"`
				ID      json.RawMessage `json:"id"`
				Result  struct {
					Content []struct{ Type, Text string }
				}
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &msg); err != nil {
				t.Fatalf("answer is not JSON: %v\n%s", err, rec.Body)
			}
			if msg.JSONRPC != "2.0" || string(msg.ID) != tt.wantID || len(msg.Result.Content) != 1 || len(msg.Result.Content[0].Text) != ResultTextSize {
				t.Fatalf("unexpected answer %s", rec.Body)
			}
		})
	}
}

func TestSSEAnswerIsAProgressEventThenTheResult(t *testing.T) {
	rec := call(t, http.MethodPost, ToolsCall, true)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	events := strings.Split(strings.TrimSuffix(rec.Body.String(), "\n\n"), "\n\n")
	if len(events) != 2 {
		t.Fatalf("want 2 events, got %d:\n%s", len(events), rec.Body)
	}
	for i, want := range []string{`"method":"notifications/progress"`, `"id":42,"result":`} {
		data, ok := strings.CutPrefix(events[i], "event: message\ndata: ")
		if !ok || !strings.Contains(data, want) || !json.Valid([]byte(data)) {
			t.Fatalf("event %d = %q, want JSON data with %s", i, events[i], want)
		}
	}
}

func TestRefusesWhatIsNotAToolsCall(t *testing.T) {
	if rec := call(t, http.MethodGet, "", false); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", rec.Code)
	}
	if rec := call(t, http.MethodPost, `{"jsonrpc":"2.0","method":"tools/call"}`, false); rec.Code != http.StatusBadRequest {
		t.Errorf("no id: status %d", rec.Code)
	}
	if rec := call(t, http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, false); rec.Code != http.StatusBadRequest {
		t.Errorf("tools/list: status %d", rec.Code)
	}
}
