package requestid

import (
	"context"
	"strings"
	"testing"
)

func TestNewIsUniqueAndShaped(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		id := New()
		if seen[id] || len(id) != 33 || !strings.HasPrefix(id, prefixHex+"-") {
			t.Fatalf("id %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
}

func TestNewInSharesTheBuffer(t *testing.T) {
	var b Buffer
	id := NewIn(&b)
	if len(id) != Len || !strings.HasPrefix(id, prefixHex+"-") || id != string(b[:]) {
		t.Fatalf("id %q, buffer %q", id, b[:])
	}
	if next := New(); next == id {
		t.Fatalf("New repeated NewIn's id %q", id)
	}
	if n := testing.AllocsPerRun(100, func() { _ = NewIn(&b) }); n != 0 {
		t.Errorf("NewIn: %.0f allocations, want 0", n)
	}
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = New()
	}
}

// A Context carries its id, passes the parent's values through and is cancelled with its parent.
func TestContext(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(t.Context(), key{}, "v"))
	var c Context
	c.Init(parent, "rid-1")
	if From(&c) != "rid-1" || c.Value(key{}) != "v" || From(parent) != "" {
		t.Fatalf("From %q, parent value %v", From(&c), c.Value(key{}))
	}
	child, stop := context.WithCancel(&c)
	defer stop()
	cancel()
	<-child.Done() // would block forever if cancellation did not reach through c
	if From(child) != "rid-1" {
		t.Errorf("a child context lost the id")
	}
}
