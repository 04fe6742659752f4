package signin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/testutil/storetest"
)

// BenchmarkValidateAccessToken is the sign-in policy's whole request step in the steady state:
// read the bearer, open the sealed token, check expiry and audience, find the grant's state in
// the cache (no database round trip), set the user, remove the header. The store-read variant
// measures the first request of a grant on a replica (and one request per grant every
// RevocationCheck).
func BenchmarkValidateAccessToken(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "db.sqlite"), sqlstore.Options{Ring: storetest.Ring(b, "k1")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	ring := storetest.Ring(b, "k1")
	s, err := New(Deps{Store: st, Ring: ring, URLs: &publicurl.URLs{BasePath: "/__mcpgate"}})
	if err != nil {
		b.Fatal(err)
	}
	ri := &policy.RouteInfo{Path: "/mcp/demo", OperationID: "demo-mcp"}
	in, err := s.Attach(policy.SignInSpec{Name: "signin", Routes: []*policy.RouteInfo{ri}, DevLogin: true,
		AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: 30 * 24 * time.Hour, StateTTL: 15 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	g := &store.OAuthGrant{ID: "grant_bench", Subject: "dev|dev-browser-user", ClientID: "dcr:bench", Resource: "http://gw.test/mcp/demo",
		OperationID: "demo-mcp", Scopes: []string{Scope}, UserData: []byte(`{"roles":["dev"]}`), RefreshHash: store.HashToken("rt"),
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateOAuthGrant(ctx, g); err != nil {
		b.Fatal(err)
	}
	resp, err := s.issue(g, s.routeByPath("/mcp/demo"), "")
	if err != nil {
		b.Fatal(err)
	}
	bearer := "Bearer " + resp.AccessToken
	req := httptest.NewRequest(http.MethodPost, "http://gw.test/mcp/demo", nil)
	run := func(b *testing.B, before func()) {
		b.ReportAllocs()
		for b.Loop() {
			if before != nil {
				before()
			}
			req.Header.Set("Authorization", bearer)
			c := &policy.Context{Route: ri}
			if _, err := in.HandleRequest(c, req); err != nil || c.User == nil {
				b.Fatalf("refused: %v", err)
			}
		}
	}
	b.Run("steady", func(b *testing.B) { run(b, nil) })
	b.Run("store-read", func(b *testing.B) { run(b, func() { s.forgetGrant(g.ID) }) })
}
