package apikey_test

import (
	"net/http"
	"testing"

	"github.com/mcpgate/mcpgate/internal/policy/apikey"
	"github.com/mcpgate/mcpgate/internal/testutil/authtest"
)

// BenchmarkRequest measures a whole gateway request with a valid key: cached (the hot path:
// no database round trip) and uncached (one SQLite lookup per request).
func BenchmarkRequest(b *testing.B) {
	for _, tc := range []struct{ name, opts string }{{"cached", `{}`}, {"uncached", `{"cacheTtlSeconds":0}`}} {
		b.Run(tc.name, func(b *testing.B) {
			g := authtest.New(b, authtest.Options{Export: apikey.Export, Options: tc.opts})
			key, _ := createKey(b, g.Store, "bench", nil)
			b.ResetTimer()
			for b.Loop() {
				if resp := g.Post(b, "/mcp/test", "Authorization", "Bearer "+key); resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
