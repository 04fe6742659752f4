package capfilter_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A resumed stream (GET with Last-Event-ID) replays answers to requests the filter never saw on
// this request: a tools/list answer cut off mid-stream and replayed on resumption must be
// filtered like the POST's own. The upstream is an in-process fake: a real server replays a list
// answer only after a connection broke between its events, which a test cannot arrange.
func TestResumedStreamFiltered_FakeUpstreamReplaysList(t *testing.T) {
	const replay = `{"jsonrpc":"2.0","id":7,"result":{"tools":[` +
		`{"name":"echo","inputSchema":{"type":"object"}},{"name":"secret","inputSchema":{"type":"object"}}],"nextCursor":"c2"}}`
	var gotLastEventID string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "only resumptions here", http.StatusMethodNotAllowed)
			return
		}
		gotLastEventID = r.Header.Get("Last-Event-ID")
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "id: s1_1\nevent: message\ndata: "+replay+"\n\n")
	}))
	t.Cleanup(up.Close)
	gw := gatewayFor(t, up.URL+"/mcp", `{"tools":["echo"]}`)

	for _, path := range []string{"/mcp/filtered", "/mcp/plain"} {
		req, _ := http.NewRequest(http.MethodGet, gw.URL+path, nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Last-Event-ID", "s1_0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || gotLastEventID != "s1_0" {
			t.Fatalf("%s: resumption answered %d (upstream saw Last-Event-ID %q): %s", path, resp.StatusCode, gotLastEventID, body)
		}
		hasSecret := strings.Contains(string(body), `"secret"`)
		switch path {
		case "/mcp/filtered":
			if hasSecret || !strings.Contains(string(body), `"echo"`) || !strings.Contains(string(body), `"nextCursor":"c2"`) {
				t.Errorf("the filtered route's resumed stream: %s\nwant echo alone, the cursor kept", body)
			}
			if !strings.Contains(string(body), "id: s1_1") {
				t.Errorf("the event id did not reach the client: %s", body)
			}
		case "/mcp/plain":
			if !hasSecret {
				t.Errorf("the unfiltered route's resumed stream lost a tool: %s", body)
			}
		}
	}
	// A bare GET is still Zuplo's 405, on a route declared for POST alone too.
	req, _ := http.NewRequest(http.MethodGet, gw.URL+"/mcp/filtered", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("bare GET: %d Allow %q, want 405 Allow POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
}
