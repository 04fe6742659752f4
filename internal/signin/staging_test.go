package signin

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/testutil/storetest"
)

// TestStagingCommit: a staged configuration's sign-in routes are invisible until Commit, which
// replaces the server's routes: a route dropped by the new configuration is gone, and a route
// moved to another sign-in policy is not "protected by two policies".
func TestStagingCommit(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db.sqlite"), sqlstore.Options{Ring: storetest.Ring(t, "k1")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s, err := New(Deps{Store: st, Ring: storetest.Ring(t, "k1"), URLs: &publicurl.URLs{BasePath: "/__mcpgate"}})
	if err != nil {
		t.Fatal(err)
	}
	spec := func(name string, paths ...string) policy.SignInSpec {
		sp := policy.SignInSpec{Name: name, DevLogin: true}
		for _, p := range paths {
			sp.Routes = append(sp.Routes, &policy.RouteInfo{Path: p, OperationID: p[1:]})
		}
		return sp
	}
	if _, err := s.Attach(spec("first", "/a", "/b")); err != nil {
		t.Fatal(err)
	}

	next := s.Stage()
	if _, err := next.Attach(spec("second", "/a")); err != nil {
		t.Fatalf("a route moved to another policy by a reload: %v", err)
	}
	if _, err := next.Attach(spec("third", "/a")); err == nil {
		t.Fatal("two policies of one configuration on one route were accepted")
	}
	if rt := s.routeByPath("/a"); rt == nil || rt.spec.Name != "first" || s.routeByPath("/b") == nil {
		t.Fatal("a staged configuration changed the server before Commit")
	}
	next.Commit()
	if rt := s.routeByPath("/a"); rt == nil || rt.spec.Name != "second" {
		t.Fatalf("after Commit /a is %v", rt)
	}
	if s.routeByPath("/b") != nil || s.onlyRoute() == nil {
		t.Fatal("the dropped route /b is still served")
	}
}
