//go:build !race

package bench_test

import (
	"slices"
	"testing"
)

// TestIdleStreamStack keeps an open stream's goroutine stack as small as the bare ReverseProxy's.
// Go grows a stack by doubling and shrinks a parked one only while less than a quarter of it is
// in use, so a handler whose deepest moment (the stream's headers being written) passes the 8 KiB
// stack keeps 16 KiB for the stream's life: 8 KiB more per idle stream than the bare proxy. The
// gateway keeps the frames under ReverseProxy small and writes a stream's headers from
// ReverseProxy's own frame (docs/architecture.md#proxy-rules); a change that deepens that path
// fails here. Without -race (which enlarges every frame); scripts/test runs it with the
// allocation guards.
func TestIdleStreamStack(t *testing.T) {
	const n, runs = 300, 3
	ps := newIdleStreamProxies(t, n)
	ps.measure(t, n) // warm-up: connection pools, buffer pools, the first stacks
	var mcpgate, bare []float64
	for range runs {
		m := ps.measure(t, n)
		mcpgate, bare = append(mcpgate, m["mcpgate"].stack), append(bare, m["bare"].stack)
		t.Logf("per idle stream: mcpgate stack %.0f B, heap %.0f B; bare ReverseProxy stack %.0f B, heap %.0f B",
			m["mcpgate"].stack, m["mcpgate"].heap, m["bare"].stack, m["bare"].heap)
	}
	slices.Sort(mcpgate)
	slices.Sort(bare)
	// A doubled handler stack adds 8 KiB per stream; the measurement's own spread is about 2 KiB.
	if got, base := mcpgate[runs/2], bare[runs/2]; got > base+4<<10 {
		t.Fatalf("an idle stream through mcpgate holds %.0f bytes of goroutine stack (median of %d runs), the bare ReverseProxy %.0f: the handler's stack grew past 8 KiB", got, runs, base)
	}
}
