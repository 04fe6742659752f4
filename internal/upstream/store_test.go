package upstream

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mcpgate/mcpgate/internal/store/sqlite"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/store/storetest"
)

// TestStoreRegistrations_SQLite caches DCR registrations in the real SQLite store: a second engine
// (another instance, or a restart) reuses the registration, secret included, and Invalidate drops it.
func TestStoreRegistrations_SQLite(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db.sqlite"), sqlstore.Options{Ring: storetest.Ring(t, "k1")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	f := newFakeEnv(t)
	f.standard()
	var mu sync.Mutex
	var bodies []map[string]any
	n := 0
	f.mux.HandleFunc("/register", hydraLikeDCR(t, &bodies, &mu, &n))
	up := f.upstream()
	up.Registration.Mode = ModeDCR

	e1 := f.engine(func(o *Options) { o.Registrations = StoreRegistrations(st) })
	d := discover(t, e1, up, "")
	c1, err := e1.Client(ctx, up, d, httpsEndpoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	e2 := f.engine(func(o *Options) { o.Registrations = StoreRegistrations(st) })
	c2, err := e2.Client(ctx, up, d, httpsEndpoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *c1 != *c2 || c2.ClientSecret.Reveal() != "dcr-secret" || f.hit("/register") != 1 {
		t.Fatalf("second instance: %+v vs %+v, %d registrations", c1, c2, f.hit("/register"))
	}
	if err := e2.Invalidate(ctx, up.ID); err != nil {
		t.Fatal(err)
	}
	c3, err := e1.Client(ctx, up, d, httpsEndpoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c3.ClientID != "client-2" || f.hit("/register") != 2 {
		t.Errorf("after Invalidate: %+v, %d registrations", c3, f.hit("/register"))
	}
}
