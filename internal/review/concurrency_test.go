package review_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// Fifty concurrent calls whose stored token the upstream suddenly refuses: one refresh at the
// token endpoint, every call replayed with the new token and answered, no call asked to
// reconnect (run with -race: the hook, replay and manager share state across requests).
func TestConcurrent401sRefreshOnce_Review(t *testing.T) {
	e := newEnv(t, "")
	e.connect("/mcp/alpha", "alice")
	e.up.setAnswer(func(w http.ResponseWriter, r *http.Request, token string) bool {
		if token == "at-1" {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}
		return false
	})
	const n = 50
	var wg sync.WaitGroup
	bodies := make([]string, n)
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			resp, body := e.toolsCall(e.gw, "/mcp/alpha", "alice", nil)
			codes[i], bodies[i] = resp.StatusCode, body
		})
	}
	wg.Wait()
	for i := range n {
		if codes[i] != 200 || !strings.Contains(bodies[i], `"result"`) {
			t.Errorf("call %d: HTTP %d %s", i, codes[i], bodies[i])
		}
	}
	e.up.mu.Lock()
	tokens := e.up.n
	e.up.mu.Unlock()
	if tokens != 2 {
		t.Errorf("token endpoint called %d times, want 2 (the code exchange and one refresh)", tokens)
	}
}
