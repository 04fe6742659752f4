package jwtauth_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

// BenchmarkRequest measures a whole gateway request with a valid token (RS256 or ES256, JWKS
// cached): header parse, signature check, claims, the route handler.
func BenchmarkRequest(b *testing.B) {
	keys(b)
	for _, tc := range []struct {
		name string
		alg  jwa.SignatureAlgorithm
		key  any
		kid  string
	}{{"RS256", jwa.RS256(), rsaKey, "k1"}, {"ES256", jwa.ES256(), ecKey, "k-ec"}} {
		b.Run(tc.name, func(b *testing.B) {
			j := newTestJWKS(b)
			j.publish(b, rsaKey, "k1")
			j.publish(b, ecKey, "k-ec")
			g, now := jwksGateway(b, j, "")
			tok := "Bearer " + sign(b, tc.alg, tc.key, tc.kid, claimsAt(*now, func(c map[string]any) { c["exp"] = time.Now().Add(time.Hour).Unix() }))
			b.ResetTimer()
			for b.Loop() {
				if resp := g.Post(b, "/mcp/test", "Authorization", tok); resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
