package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Key rotation under load, as docs/operations.md walks through it: replicas on ring "old" serve
// users whose upstream tokens live 2 s (so every replica keeps reading, refreshing and re-sealing
// connections in the shared SQLite database); a replica with "new,old" joins and the old one
// leaves; `mcpgate rekey` re-seals everything with "new" while the load runs; a replica with "new"
// alone replaces the last one. Calls run through every step without one failure, and the last
// replica, which cannot read "old", serves (and refreshes) every user, also those idle since before
// the rotation, whose rows only rekey re-sealed.
func TestKeyRotationUnderLoad(t *testing.T) {
	const users = 6
	up := gatewaytest.NewFakeUpstream(t)
	var issued atomic.Int64
	// Short-lived tokens: each is accepted until it was replaced twice over, so a call made with a
	// token the gateway is just replacing still succeeds.
	up.SetTokenAnswer(func(w http.ResponseWriter, r *http.Request) bool {
		n := issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"access_token":"short-%d","token_type":"Bearer","refresh_token":"rt-short-%d","expires_in":2}`, n, n)
		return true
	})
	up.SetAnswer(func(w http.ResponseWriter, r *http.Request, token string) bool {
		if !strings.HasPrefix(token, "short-") {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}`)
		return true
	})
	dir := gatewaytest.FakeUpstreamProject(t, up)
	path := filepath.Join(t.TempDir(), "mcpgate.db")
	ring := func(lines ...string) *vault.Ring {
		r, err := vault.ParseRing(strings.Join(lines, ","))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	replica := func(r *vault.Ring) *gatewaytest.Gateway {
		return gatewaytest.New(t, gatewaytest.Options{Dir: dir, Store: gatewaytest.Store(t, path, r), Ring: r, Logs: io.Discard})
	}
	oldRing := ring(testRingLine("old"))
	a := replica(oldRing)
	env := &gatewaytest.FakeUpstreamEnv{T: t, Up: up, Dir: dir, Gateway: a, Browser: gatewaytest.NewBrowserJar(t)}
	for i := range users {
		env.Connect("/mcp/alpha", fmt.Sprint("user-", i))
	}
	// Idle users are connected now and called only at the end, by the replica without "old": their
	// rows are read back only if rekey re-sealed them (the load's users are re-sealed by their
	// refreshes anyway).
	const idle = 3
	for i := range idle {
		env.Connect("/mcp/alpha", fmt.Sprint("idle-", i))
	}

	// The load: workers call through the current replicas in turn until stop.
	var (
		mu       sync.Mutex
		replicas = []*gatewaytest.Gateway{a}
		ok, bad  atomic.Int64
		failures []string
		served   = map[*gatewaytest.Gateway]int{}
	)
	setReplicas := func(rs ...*gatewaytest.Gateway) { mu.Lock(); replicas = rs; mu.Unlock() }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				gw := replicas[i%len(replicas)]
				mu.Unlock()
				status, body, err := toolsCall(gw, fmt.Sprint("user-", i%users))
				mu.Lock()
				if err != nil || status != http.StatusOK || !strings.Contains(body, `"ok"`) {
					bad.Add(1)
					if len(failures) < 5 {
						failures = append(failures, fmt.Sprintf("HTTP %d %v %.200s", status, err, body))
					}
				} else {
					ok.Add(1)
					served[gw]++
				}
				mu.Unlock()
			}
		}()
	}
	var stopOnce sync.Once
	stopLoad := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	defer stopLoad() // also when a step fails the test
	// waitServed waits until gw has served n more calls and the upstream issued a token since (a
	// refresh happened while gw served).
	waitServed := func(gw *gatewaytest.Gateway, n int, what string) {
		t.Helper()
		mu.Lock()
		from, tokens := served[gw], issued.Load()
		mu.Unlock()
		gatewaytest.Eventually(t, 30*time.Second, what, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return served[gw] >= from+n && issued.Load() > tokens+users
		})
	}
	waitServed(a, 50, "the old replica serving under load")

	// 1. A replica with the new key first joins; the old one leaves.
	b := replica(ring(testRingLine("new"), testRingLine("old")))
	setReplicas(a, b)
	waitServed(b, 50, "the old and the new-first replica serving together")
	setReplicas(b)

	// 2. rekey while the load runs.
	r := runCLI(t, t.TempDir(), []string{"MCPGATE_ENCRYPTION_KEYS=" + testRingLine("new") + "," + testRingLine("old"),
		"MCPGATE_DATABASE_URL=sqlite:" + path}, "rekey")
	if r.code != 0 || strings.Contains(r.stderr, "old=") {
		t.Fatalf("rekey under load: exit %d\n%s", r.code, r.stderr)
	}
	waitServed(b, 50, "serving after rekey")

	// 3. The old key leaves the ring: a replica with "new" alone replaces the last one.
	c := replica(ring(testRingLine("new")))
	setReplicas(b, c)
	waitServed(c, 50, "the new-only replica joining")
	setReplicas(c)
	waitServed(c, 100, "the new-only replica alone")

	stopLoad()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d calls failed during the rotation; first: %q", bad.Load(), ok.Load()+bad.Load(), failures)
	}
	for i := range idle {
		if status, body, err := toolsCall(c, fmt.Sprint("idle-", i)); err != nil || status != http.StatusOK || !strings.Contains(body, `"ok"`) {
			t.Errorf("idle user %d through the replica without the old key: HTTP %d %v %.300s", i, status, err, body)
		}
	}
	t.Logf("%d calls, 0 failed; %d upstream tokens issued (refreshes) during the rotation", ok.Load(), issued.Load())
}

// toolsCall posts a tools/call to /mcp/alpha through gw as user.
func toolsCall(gw *gatewaytest.Gateway, user string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, gw.URL+"/mcp/alpha", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}`))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set(gatewaytest.UserHeader, user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
