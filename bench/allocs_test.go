//go:build !race

package bench_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/bench/upstream"
)

// maxPipelineAllocs is the allocations per JSON request of the pipeline with no policies
// (BenchmarkGateway/pipeline-json), in-memory upstream included (6 of them are the upstream's).
// A change that adds one fails TestPipelineAllocations: say why in the change, or find it a home
// in an existing allocation.
const maxPipelineAllocs = 30

func TestPipelineAllocations(t *testing.T) {
	want := upstreamAnswer(t, false)
	gw := newGateway(t, "http://127.0.0.1:9/mcp", &cannedUpstream{body: want})
	body := strings.NewReader(upstream.ToolsCall)
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", body)
	req.Header.Set("Content-Type", "application/json")
	w := &discardWriter{h: http.Header{}}
	got := testing.AllocsPerRun(200, func() {
		body.Reset(upstream.ToolsCall)
		clear(w.h)
		w.status, w.n = 0, 0
		gw.ServeHTTP(w, req)
	})
	if w.status != http.StatusOK || w.n != len(want) {
		t.Fatalf("status %d, %d bytes", w.status, w.n)
	}
	if got > maxPipelineAllocs {
		t.Errorf("%.0f allocations per request, more than %d", got, maxPipelineAllocs)
	}
}
