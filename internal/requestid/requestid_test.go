package requestid

import (
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

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = New()
	}
}
