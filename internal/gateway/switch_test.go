package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
)

// generationServer is a Server whose module records its Cleanup in log, with two endpoints:
// GET /which answers name; GET /stream answers name, then holds the request until release is
// closed (an open stream), telling entered when it started.
func generationServer(t *testing.T, name string, log *lifecycleLog, entered chan<- struct{}, release <-chan struct{}) *Server {
	t.Helper()
	p := &config.Project{Routes: []*config.Route{mcpRoute("/mcp/a", name)},
		Policies: map[string]*config.Policy{name: pol(name, &staged{name: name, log: log})}}
	s, err := New(context.Background(), p, Settings{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.Handle("GET /which", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) }))
	s.Handle("GET /stream", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, name)
		entered <- struct{}{}
		<-release
	}))
	return s
}

func which(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Body.String()
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestSwitchRequestKeepsItsGeneration: a stream that started on generation 1 finishes on it after
// a swap, while new requests go to generation 2; generation 1's modules are cleaned up only when
// that stream ends, and generation 2's only when the switch is closed.
func TestSwitchRequestKeepsItsGeneration(t *testing.T) {
	log := &lifecycleLog{}
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	sw := NewSwitch(generationServer(t, "one", log, entered, release), nil)
	sw.SetReady(true)

	streamed := make(chan string)
	go func() { streamed <- which(t, sw, "/stream") }()
	<-entered

	n, drained := sw.Swap(generationServer(t, "two", log, entered, release))
	if n != 2 {
		t.Fatalf("generation = %d, want 2", n)
	}
	if got := which(t, sw, "/which"); got != "two" {
		t.Fatalf("after the swap: %q, want two", got)
	}
	if got := which(t, sw, "/readyz"); got != "ready\n" {
		t.Fatalf("/readyz after the swap: %q", got)
	}
	if isClosed(drained) || slices.Contains(log.calls, "cleanup one") {
		t.Fatal("generation one closed with a stream still open")
	}
	close(release)
	if got := <-streamed; got != "one" {
		t.Fatalf("the stream was served by %q, want one", got)
	}
	<-drained
	log.mu.Lock()
	calls := slices.Clone(log.calls)
	log.mu.Unlock()
	if !slices.Contains(calls, "cleanup one") || slices.Contains(calls, "cleanup two") {
		t.Fatalf("after the stream ended: %v", calls)
	}
	<-sw.Close()
	if !slices.Contains(log.calls, "cleanup two") {
		t.Fatalf("after Close: %v", log.calls)
	}
	sw.Close() // twice is harmless
	if got := which(t, sw, "/which"); got != "two" {
		t.Fatalf("after Close: %q, want two (served uncounted)", got)
	}
}

// TestSwitchIdleGenerationClosesAtOnce: a generation with nothing in flight is closed by the swap
// that replaces it.
func TestSwitchIdleGenerationClosesAtOnce(t *testing.T) {
	log := &lifecycleLog{}
	sw := NewSwitch(generationServer(t, "one", log, nil, nil), nil)
	_, drained := sw.Swap(generationServer(t, "two", log, nil, nil))
	if !isClosed(drained) {
		t.Fatal("an idle generation was not closed by the swap")
	}
	if sw.SetReady(false); which(t, sw, "/readyz") != "not ready\n" {
		t.Fatal("SetReady(false) not reported")
	}
	<-sw.Close()
	_, drained = sw.Swap(generationServer(t, "three", log, nil, nil))
	if !isClosed(drained) || !slices.Contains(log.calls, "cleanup three") {
		t.Fatalf("a swap into a closed switch must close the new server: %v", log.calls)
	}
}

// TestSwitchConcurrentSwaps: requests racing 50 swaps are each served by one generation, and every
// replaced generation is closed exactly once, after its last request (run with -race).
func TestSwitchConcurrentSwaps(t *testing.T) {
	log := &lifecycleLog{}
	sw := NewSwitch(generationServer(t, "g1", log, nil, nil), nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got := which(t, sw, "/which"); len(got) < 2 || got[0] != 'g' {
					t.Errorf("answer %q", got)
					return
				}
			}
		}()
	}
	var drains []<-chan struct{}
	for i := 2; i <= 50; i++ {
		_, d := sw.Swap(generationServer(t, "g"+strconv.Itoa(i), log, nil, nil))
		drains = append(drains, d)
	}
	close(stop)
	wg.Wait()
	for _, d := range drains {
		<-d
	}
	<-sw.Close()
	log.mu.Lock()
	defer log.mu.Unlock()
	for i := 1; i <= 50; i++ {
		name := "cleanup g" + strconv.Itoa(i)
		if c := countOf(log.calls, name); c != 1 {
			t.Errorf("%s ran %d times", name, c)
		}
	}
}

func countOf(calls []string, s string) int {
	n := 0
	for _, c := range calls {
		if c == s {
			n++
		}
	}
	return n
}
