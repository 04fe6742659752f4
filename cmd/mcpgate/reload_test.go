package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// genUpstream is an MCP-shaped upstream that tells which configuration generation a request came
// through: every answer carries the X-Gen header the route's set-headers-inbound policy set. A
// tools/call of "hold" is answered with an SSE stream: one event at once, then nothing until
// release is closed, then its final event.
type genUpstream struct {
	release chan struct{}
	held    atomic.Int64
}

func (u *genUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	gen := r.Header.Get("X-Gen")
	if msg.Params.Name != "hold" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":%q}]}}`, msg.ID, gen)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":%q}}\n\n", gen)
	w.(http.Flusher).Flush()
	u.held.Add(1)
	select {
	case <-u.release:
	case <-r.Context().Done():
		return
	}
	fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"final\"}]}}\n\n", msg.ID)
}

// genProject writes (or rewrites) the project in dir: the route /mcp/a and extra routes, all
// through the policy "gen", which sets X-Gen: gen. With invalid, the policy has two options the
// set-headers policy does not know, so config.Load refuses it.
func genProject(t *testing.T, dir, upstreamURL, gen string, extra []string, invalid bool) {
	t.Helper()
	route := func(path, op string) string {
		return fmt.Sprintf(`%q:{"post":{"operationId":%q,"x-zuplo-route":{"corsPolicy":"none",
			"handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":%q}},
			"policies":{"inbound":["gen"]}}}}`, path, op, upstreamURL+"/mcp")
	}
	routes := []string{route("/mcp/a", "a")}
	for _, p := range extra {
		routes = append(routes, route(p, strings.ReplaceAll(strings.Trim(p, "/"), "/", "-")))
	}
	options := fmt.Sprintf(`{"headers":[{"name":"X-Gen","value":%q}]}`, gen)
	if invalid {
		options = fmt.Sprintf(`{"headers":[{"name":"X-Gen","value":%q}],"bogus":true,"alsoBogus":1}`, gen)
	}
	files := map[string]string{
		"zuplo.jsonc":            `{"version":1,"compatibilityDate":"2026-03-01"}`,
		"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{` + strings.Join(routes, ",") + `}}`,
		"config/policies.json": `{"policies":[{"name":"gen","policyType":"set-headers-inbound",
			"handler":{"module":"$import(@zuplo/runtime)","export":"SetHeadersInboundPolicy","options":` + options + `}}]}`,
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		// Written beside and renamed, as editors and ConfigMaps do: a reader never sees half a file.
		if err := os.WriteFile(p+".tmp", []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
	}
}

// records returns every log record with msg.
func (s *served) records(msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, m := range s.logs {
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// waitLogs waits until at least n records with msg were logged and returns them.
func (s *served) waitLogs(t *testing.T, msg string, n int) []map[string]any {
	t.Helper()
	gatewaytest.Eventually(t, 30*time.Second, fmt.Sprintf("%d× %q", n, msg), func() bool {
		select {
		case <-s.done:
			t.Fatalf("serve exited:\n%s", s.output())
		default:
		}
		return len(s.records(msg)) >= n
	})
	return s.records(msg)
}

// raiseOpenFiles lifts this process's open-file limit to its hard limit (serve, started after it,
// inherits it): every stream is a client and an upstream connection in each process.
func raiseOpenFiles(t *testing.T, need uint64) {
	t.Helper()
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			t.Fatal(err)
		}
	}
	if l.Cur < need {
		t.Skipf("open-file limit %d, the test needs %d", l.Cur, need)
	}
}

func toolsCallBody(name string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + name + `","arguments":{}}}`
}

func mcpPost(c *http.Client, url, tool string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(toolsCallBody(tool)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	return c.Do(req)
}

// callGen makes one JSON tools/call and returns the generation that served it (its X-Gen).
func callGen(c *http.Client, url string) (string, error) {
	resp, err := mcpPost(c, url, "echo")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var out struct {
		Result struct {
			Content []struct{ Text string } `json:"content"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &out); err != nil || len(out.Result.Content) != 1 {
		return "", fmt.Errorf("answer %s: %v", b, err)
	}
	return out.Result.Content[0].Text, nil
}

// stream is one open SSE answer through the gateway.
type stream struct {
	resp *http.Response
	r    *bufio.Reader
}

// next returns the data of the stream's next event.
func (s *stream) next() (string, error) {
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if d, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "data: "); ok {
			return d, nil
		}
	}
}

// testReloadUnderLoad opens streams idle SSE streams through a real `mcpgate serve`, runs a
// steady JSON tools/call load and polls /readyz, and reloads 10 times by SIGHUP, alternating a
// valid changed configuration and an invalid one. No JSON request and no /readyz poll may fail,
// every request must be served by the configuration current when it was sent, and every stream
// must outlive the reloads on the configuration it started with and deliver its final event.
func testReloadUnderLoad(t *testing.T, streams int) {
	raiseOpenFiles(t, uint64(4*streams+256))
	up := &genUpstream{release: make(chan struct{})}
	upstream := httptest.NewServer(up)
	defer upstream.Close()
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(up.release) }) }
	defer release()

	dir := t.TempDir()
	project := filepath.Join(dir, "project")
	genProject(t, project, upstream.URL, "g1", nil, false)
	s := startServe(t, dir, nil, "--config", project, "--listen", "127.0.0.1:0")
	addr, _ := s.log("mcpgate listening")["address"].(string)
	base := "http://" + addr
	routeA := base + "/mcp/a"

	// The streams, each on its own connection.
	streamClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1, DisableCompression: true}}
	open := make([]*stream, streams)
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range open {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := mcpPost(streamClient, routeA, "hold")
			if err != nil {
				errs <- err
				return
			}
			st := &stream{resp: resp, r: bufio.NewReader(resp.Body)}
			first, err := st.next()
			if err != nil || !strings.Contains(first, `"data":"g1"`) {
				errs <- fmt.Errorf("stream %d: first event %q, %v", i, first, err)
				resp.Body.Close()
				return
			}
			open[i] = st
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := up.held.Load(); n != int64(streams) {
		t.Fatalf("the upstream holds %d streams, want %d", n, streams)
	}

	// The steady load: 4 JSON callers and a /readyz poller until the reloads are done. A caller
	// never sees an older generation after a newer one.
	loadClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}
	stop := make(chan struct{})
	var requests, failures, readyPolls, readyFailures atomic.Int64
	var failMu sync.Mutex
	var failed []string
	fail := func(format string, args ...any) {
		failures.Add(1)
		failMu.Lock()
		defer failMu.Unlock()
		if len(failed) < 10 {
			failed = append(failed, fmt.Sprintf(format, args...))
		}
	}
	var load sync.WaitGroup
	for range 4 {
		load.Add(1)
		go func() {
			defer load.Done()
			last := 1
			for {
				select {
				case <-stop:
					return
				default:
				}
				gen, err := callGen(loadClient, routeA)
				requests.Add(1)
				if err != nil {
					fail("tools/call: %v", err)
					continue
				}
				var n int
				if _, err := fmt.Sscanf(gen, "g%d", &n); err != nil || n < last {
					fail("served by %q after g%d", gen, last)
					continue
				}
				last = n
			}
		}()
	}
	load.Add(1)
	go func() {
		defer load.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := loadClient.Get(base + "/readyz")
			readyPolls.Add(1)
			if err != nil {
				readyFailures.Add(1)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				readyFailures.Add(1)
			}
			time.Sleep(10 * time.Millisecond) // a poll, not a second load
		}
	}()

	// 10 reloads: valid ones make g2…g6 (each with one more route), invalid ones are refused.
	gen, applied, refused := 1, 0, 0
	var extra []string
	for i := 1; i <= 10; i++ {
		// Each reload lands in the middle of the load: at least 20 requests since the last one.
		from := requests.Load()
		gatewaytest.Eventually(t, 30*time.Second, "load running", func() bool { return requests.Load() >= from+20 })
		valid := i%2 == 1
		if valid {
			gen++
			extra = append(extra, fmt.Sprintf("/mcp/r%d", gen))
			genProject(t, project, upstream.URL, fmt.Sprintf("g%d", gen), extra, false)
		} else {
			genProject(t, project, upstream.URL, "never", extra, true)
		}
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if valid {
			applied++
			line := s.waitLogs(t, "configuration reloaded", applied)[applied-1]
			if line["generation"] != float64(gen) || line["routes"] != float64(1+len(extra)) || line["trigger"] != "SIGHUP" {
				t.Fatalf("reload %d: %v", i, line)
			}
		} else {
			refused++
			line := s.waitLogs(t, "configuration reload refused: the running configuration keeps serving", refused)[refused-1]
			if line["generation"] != float64(gen) || line["level"] != "ERROR" {
				t.Fatalf("reload %d: %v", i, line)
			}
			if probs := s.records("configuration problem"); len(probs) != 2*refused || line["problems"] != float64(2) {
				t.Fatalf("reload %d: %d problem lines, refusal %v:\n%s", i, len(probs), line, s.output())
			}
		}
		// The next request, sent after the reload's log line, is served by the configuration
		// current now: the new one after a valid reload, the previous one after an invalid one.
		if got, err := callGen(loadClient, routeA); err != nil || got != fmt.Sprintf("g%d", gen) {
			t.Fatalf("after reload %d: served by %q (%v), want g%d", i, got, err, gen)
		}
		if valid {
			if got, err := callGen(loadClient, base+extra[len(extra)-1]); err != nil || got != fmt.Sprintf("g%d", gen) {
				t.Fatalf("after reload %d: the new route %s: %q, %v", i, extra[len(extra)-1], got, err)
			}
		}
	}
	close(stop)
	load.Wait()
	t.Logf("%d streams open across %d reloads (%d applied, %d refused); %d JSON requests, %d failed; %d /readyz polls, %d failed",
		streams, applied+refused, applied, refused, requests.Load(), failures.Load(), readyPolls.Load(), readyFailures.Load())
	if failures.Load() != 0 {
		t.Errorf("%d of %d JSON requests failed, e.g. %v", failures.Load(), requests.Load(), failed)
	}
	if readyFailures.Load() != 0 {
		t.Errorf("/readyz was not 200 on %d of %d polls", readyFailures.Load(), readyPolls.Load())
	}
	if status, body := get(t, base+"/metrics"); status != 200 || !strings.Contains(body, `mcpgate_config_reloads_total{outcome="applied"} 5`) ||
		!strings.Contains(body, `mcpgate_config_reloads_total{outcome="refused"} 5`) || !strings.Contains(body, "mcpgate_config_generation 6") {
		t.Errorf("/metrics after the reloads: %d", status)
	}
	// Generations 2 to 5 served only finished requests: they are closed. Generation 1 still
	// serves every stream.
	closed := s.waitLogs(t, "previous configuration closed: its last request ended", 4)
	for _, l := range closed {
		if l["generation"] == float64(1) {
			t.Fatal("generation 1 closed with its streams open")
		}
	}

	// Every stream is still open and delivers its final event, on the generation it started with.
	release()
	cut := 0
	for i, st := range open {
		data, err := st.next()
		if err != nil || !strings.Contains(data, `"text":"final"`) {
			cut++
			if cut <= 5 {
				t.Errorf("stream %d: %q, %v", i, data, err)
			}
		}
		st.resp.Body.Close()
	}
	if cut != 0 {
		t.Fatalf("%d of %d streams were cut", cut, streams)
	}
	s.waitLogs(t, "previous configuration closed: its last request ended", 5)
}

// TestReloadUnderLoad: 1,000 open streams, 10 reloads (about 7 s under the race detector).
func TestReloadUnderLoad(t *testing.T) { testReloadUnderLoad(t, 1000) }

// TestReloadWatch: with --watch a saved change is applied without a signal, an invalid one is
// refused (and the running configuration keeps serving), and fixing it applies it.
func TestReloadWatch(t *testing.T) {
	upstream := httptest.NewServer(&genUpstream{release: make(chan struct{})})
	defer upstream.Close()
	dir := t.TempDir()
	project := filepath.Join(dir, "project")
	genProject(t, project, upstream.URL, "g1", nil, false)
	s := startServe(t, dir, []string{"MCPGATE_WATCH=true"}, "--config", project, "--listen", "127.0.0.1:0")
	if s.log("watching the configuration for changes") == nil {
		t.Fatalf("no watch line:\n%s", s.output())
	}
	addr, _ := s.log("mcpgate listening")["address"].(string)
	routeA := "http://" + addr + "/mcp/a"
	c := &http.Client{Timeout: 10 * time.Second}

	genProject(t, project, upstream.URL, "g2", nil, false)
	if l := s.waitLogs(t, "configuration reloaded", 1)[0]; l["trigger"] != "watch" || l["generation"] != float64(2) {
		t.Fatalf("reload line %v", l)
	}
	if got, err := callGen(c, routeA); err != nil || got != "g2" {
		t.Fatalf("after the change: %q, %v", got, err)
	}
	genProject(t, project, upstream.URL, "never", nil, true)
	if l := s.waitLogs(t, "configuration reload refused: the running configuration keeps serving", 1)[0]; l["trigger"] != "watch" {
		t.Fatalf("refusal line %v", l)
	}
	if got, err := callGen(c, routeA); err != nil || got != "g2" {
		t.Fatalf("after the invalid change: %q, %v", got, err)
	}
	genProject(t, project, upstream.URL, "g3", []string{"/mcp/b"}, false)
	if l := s.waitLogs(t, "configuration reloaded", 2)[1]; l["generation"] != float64(3) || l["routes"] != float64(2) {
		t.Fatalf("reload line %v", l)
	}
	if got, err := callGen(c, "http://"+addr+"/mcp/b"); err != nil || got != "g3" {
		t.Fatalf("the new route: %q, %v", got, err)
	}
	// The gateway's own endpoints are the new generation's: the MCP registry lists the new route.
	if status, body := get(t, "http://"+addr+"/__mcpgate/registry/v0.1/servers"); status != 200 || !strings.Contains(body, "/mcp/b") {
		t.Fatalf("the registry after the reload: %d\n%s", status, body)
	}
	if n := len(s.records("configuration reloaded")) + len(s.records("configuration reload refused: the running configuration keeps serving")); n != 3 {
		t.Fatalf("%d reloads for 3 changes:\n%s", n, s.output())
	}
}
