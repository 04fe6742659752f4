// Package storetest is the conformance suite every store backend runs: the same behaviour is
// asserted against SQLite and PostgreSQL, so the two cannot drift apart.
//
// A backend test package calls RunHelperIfRequested first thing in TestMain (the lease test re-execs
// the test binary as a lease holder it then kills with SIGKILL), and Run from a test.
package storetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
	"github.com/mcpgate/mcpgate/internal/subject"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Backend is what a backend gives the suite.
type Backend struct {
	// NewDSN returns the address of a new, empty store private to the test.
	NewDSN func(t testing.TB) string
	// Open opens an independent handle (its own connections) on dsn and migrates it.
	Open func(ctx context.Context, dsn string, o sqlstore.Options) (store.Store, error)
	// Dump returns everything the database holds on disk or in a dump, for plaintext greps.
	Dump func(t testing.TB, dsn string) []byte
}

// Ring builds a deterministic test ring from key ids, newest first.
func Ring(t testing.TB, ids ...string) *vault.Ring {
	t.Helper()
	var parts []string
	for _, id := range ids {
		k := sha256.Sum256([]byte("storetest key " + id)) // the same id is the same key in every ring
		parts = append(parts, id+":"+base64.StdEncoding.EncodeToString(k[:]))
	}
	r, err := vault.ParseRing(strings.Join(parts, ","))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Clock is a settable clock shared by store handles in a test.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is one test's store.
type env struct {
	t     *testing.T
	b     Backend
	dsn   string
	clock *Clock
	ring  *vault.Ring
	s     store.Store
}

func (b Backend) setup(t *testing.T, ringIDs ...string) *env {
	t.Helper()
	if len(ringIDs) == 0 {
		ringIDs = []string{"k1"}
	}
	e := &env{t: t, b: b, dsn: b.NewDSN(t), clock: NewClock(), ring: Ring(t, ringIDs...)}
	e.s = e.open(e.ring)
	return e
}

// open opens another independent handle on the same database.
func (e *env) open(ring *vault.Ring) store.Store {
	e.t.Helper()
	s, err := e.b.Open(context.Background(), e.dsn, sqlstore.Options{Ring: ring, Now: e.clock.Now})
	if err != nil {
		e.t.Fatalf("opening store: %v", err)
	}
	e.t.Cleanup(func() { _ = s.Close() })
	return s
}

// raw is the writer pool, for queries the store API does not offer (tampering, proofs).
func raw(t *testing.T, s store.Store) *sql.DB {
	t.Helper()
	w, ok := s.(interface{ Writer() *sql.DB })
	if !ok {
		t.Fatalf("%T has no Writer()", s)
	}
	return w.Writer()
}

func ctx(t *testing.T) context.Context { return t.Context() }

// Run runs the whole suite.
func Run(t *testing.T, b Backend) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"Migrate", testMigrate},
		{"ConcurrentMigrationsOfReplicas", testConcurrentMigrate},
		{"ConnectionsCRUD", testConnectionsCRUD},
		{"ConnectionsCASConflict", testConnectionsCAS},
		{"ConnectionsConcurrentUpdatesNoLostUpdate", testConcurrentUpdates},
		{"CiphertextMovedToAnotherRowFails", testAAD},
		{"LostKeyOnlyBreaksItsRecords", testLostKey},
		{"NoPlaintextAtRest", testNoPlaintext},
		{"ClientRegistrations", testRegistrations},
		{"DynamicRegistrationsBounded", testRegistrationsBounded},
		{"PendingAuthorizations", testPending},
		{"PendingConcurrentConsumersOneWins", testPendingRace},
		{"TicketUses", testTickets},
		{"SweepExpired", testSweep},
		{"Audit", testAudit},
		{"APIKeys", testAPIKeys},
		{"LeaseExclusiveAcrossHandles", testLeases},
		{"LeaseOfKilledProcessExpires", testLeaseKill9},
		{"OAuthClients", testOAuthClients},
		{"SignInRequests", testSignInRequests},
		{"SignInConcurrentConsumersOneWins", testSignInRace},
		{"OAuthGrants", testOAuthGrants},
		{"OAuthGrantConcurrentRotationsOneWins", testOAuthGrantRotationRace},
		{"ClientConsents", testClientConsents},
		{"SweepExpiredSignIn", testSweepSignIn},
		{"SignInNoPlaintextAtRest", testSignInNoPlaintext},
		{"SignInCiphertextMovedToAnotherRowFails", testSignInAAD},
		{"RekeyResumesAfterCrash", testRekey},
		{"RekeyDoesNotClobberConcurrentWrites", testRekeyConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

func key(subject string) store.ConnectionKey {
	return store.ConnectionKey{UpstreamID: "linear", Mode: store.ModeUser, Subject: subject}
}

func newConn(subject string) *store.Connection {
	return &store.Connection{
		ConnectionKey: key(subject),
		Status:        store.StatusActive,
		AccessToken:   vault.Secret("at-" + subject),
		RefreshToken:  vault.Secret("rt-" + subject),
		Expiry:        time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC),
		Scopes:        []string{"read", "write"},
		Issuer:        "https://auth.example",
		TokenEndpoint: "https://auth.example/token",
		ClientID:      "client-1",
		AuthMethod:    "none",
		Resource:      "https://mcp.example/mcp",
		ConnectedBy:   subject,
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

func testMigrate(t *testing.T, b Backend) {
	e := b.setup(t)
	// Open already migrated; migrating again (a second replica, a rerun of `db migrate`) is a no-op.
	must(t, e.s.Migrate(ctx(t)))
	var n int
	must(t, raw(t, e.s).QueryRowContext(ctx(t), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n))
	if n < 1 {
		t.Fatalf("schema_migrations has %d rows", n)
	}
	must(t, e.s.Ping(ctx(t)))
}

func testConcurrentMigrate(t *testing.T, b Backend) {
	dsn := b.NewDSN(t)
	const replicas = 4
	errs := make(chan error, replicas)
	stores := make(chan store.Store, replicas)
	for range replicas {
		go func() {
			s, err := b.Open(ctx(t), dsn, sqlstore.Options{Ring: Ring(t, "k1")})
			errs <- err
			stores <- s
		}()
	}
	for range replicas {
		if err := <-errs; err != nil {
			t.Errorf("replica start: %v", err)
		}
		if s := <-stores; s != nil {
			t.Cleanup(func() { _ = s.Close() })
		}
	}
	s, err := b.Open(ctx(t), dsn, sqlstore.Options{Ring: Ring(t, "k1")})
	must(t, err)
	t.Cleanup(func() { _ = s.Close() })
	must(t, s.PutConnection(ctx(t), newConn("u")))
}

func testConnectionsCRUD(t *testing.T, b Backend) {
	e := b.setup(t)
	s := e.s
	_, err := s.GetConnection(ctx(t), key("apikey|alice"))
	wantErr(t, err, store.ErrNotFound)

	c := newConn("apikey|alice")
	c.LastError = &store.LastError{Code: "invalid_grant", Message: "expired", At: e.clock.Now()}
	must(t, s.PutConnection(ctx(t), c))
	if c.Version != 1 {
		t.Fatalf("version after create = %d, want 1", c.Version)
	}
	got, err := s.GetConnection(ctx(t), key("apikey|alice"))
	must(t, err)
	if got.AccessToken.Reveal() != "at-apikey|alice" || got.RefreshToken.Reveal() != "rt-apikey|alice" {
		t.Fatalf("tokens did not round-trip")
	}
	if !got.Expiry.Equal(c.Expiry) || strings.Join(got.Scopes, " ") != "read write" || got.Issuer != c.Issuer ||
		got.TokenEndpoint != c.TokenEndpoint || got.ClientID != c.ClientID || got.AuthMethod != "none" ||
		got.Resource != c.Resource || got.Status != store.StatusActive || got.ConnectedBy != "apikey|alice" ||
		got.LastError == nil || got.LastError.Code != "invalid_grant" || !got.CreatedAt.Equal(e.clock.Now()) ||
		!got.HasAccessToken || !got.HasRefreshToken || got.Version != 1 {
		t.Fatalf("round trip mismatch: %+v", got)
	}

	// Same key, different namespace or mode: a different connection.
	must(t, s.PutConnection(ctx(t), newConn("jwt:https://idp|alice")))
	shared := newConn(subject.Shared.String())
	shared.Mode = store.ModeShared
	must(t, s.PutConnection(ctx(t), shared))

	e.clock.Advance(time.Minute)
	got.Status = store.StatusReconsentRequired
	got.AccessToken, got.RefreshToken = "", ""
	got.LastError = nil
	must(t, s.PutConnection(ctx(t), got))
	if got.Version != 2 {
		t.Fatalf("version after update = %d", got.Version)
	}
	again, err := s.GetConnection(ctx(t), key("apikey|alice"))
	must(t, err)
	if again.Status != store.StatusReconsentRequired || again.HasAccessToken || again.AccessToken != "" ||
		again.LastError != nil || !again.UpdatedAt.Equal(e.clock.Now()) || !again.CreatedAt.Equal(c.CreatedAt) {
		t.Fatalf("update not stored: %+v", again)
	}

	list, err := s.ListConnections(ctx(t), store.ConnectionFilter{UpstreamID: "linear"})
	must(t, err)
	if len(list) != 3 {
		t.Fatalf("list = %d rows, want 3", len(list))
	}
	for _, l := range list {
		if l.AccessToken != "" || l.RefreshToken != "" {
			t.Fatal("ListConnections returned tokens")
		}
	}
	list, err = s.ListConnections(ctx(t), store.ConnectionFilter{Subject: "jwt:https://idp|alice", Status: store.StatusActive})
	must(t, err)
	if len(list) != 1 || list[0].Subject != "jwt:https://idp|alice" || !list[0].HasRefreshToken {
		t.Fatalf("filtered list = %+v", list)
	}

	wantErr(t, s.DeleteConnection(ctx(t), key("apikey|alice"), 1), store.ErrConflict)
	must(t, s.DeleteConnection(ctx(t), key("apikey|alice"), 2))
	wantErr(t, s.DeleteConnection(ctx(t), key("apikey|alice"), 2), store.ErrNotFound)
	_, err = s.GetConnection(ctx(t), key("apikey|alice"))
	wantErr(t, err, store.ErrNotFound)
}

func testConnectionsCAS(t *testing.T, b Backend) {
	e := b.setup(t)
	s := e.s
	must(t, s.PutConnection(ctx(t), newConn("u")))
	wantErr(t, s.PutConnection(ctx(t), newConn("u")), store.ErrConflict) // create over an existing row

	a, err := s.GetConnection(ctx(t), key("u"))
	must(t, err)
	bb, err := s.GetConnection(ctx(t), key("u"))
	must(t, err)
	a.AccessToken = "from-a"
	must(t, s.PutConnection(ctx(t), a))
	bb.AccessToken = "from-b"
	wantErr(t, s.PutConnection(ctx(t), bb), store.ErrConflict)
	got, err := s.GetConnection(ctx(t), key("u"))
	must(t, err)
	if got.AccessToken.Reveal() != "from-a" {
		t.Fatal("losing writer overwrote the winner")
	}
	missing := newConn("nobody")
	missing.Version = 3
	wantErr(t, s.PutConnection(ctx(t), missing), store.ErrNotFound)
}

func testConcurrentUpdates(t *testing.T, b Backend) {
	e := b.setup(t)
	c := newConn("u")
	c.Scopes = nil
	must(t, e.s.PutConnection(ctx(t), c))
	const writers = 100
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			_, err := store.Update(ctx(t), e.s, key("u"), func(c *store.Connection) error {
				c.Scopes = append(c.Scopes, fmt.Sprint(i))
				c.AccessToken = vault.Secret(fmt.Sprintf("token-%d", i))
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	got, err := e.s.GetConnection(ctx(t), key("u"))
	must(t, err)
	seen := map[string]bool{}
	for _, s := range got.Scopes {
		seen[s] = true
	}
	if len(got.Scopes) != writers || len(seen) != writers || got.Version != writers+1 {
		t.Fatalf("after %d updates: %d scopes (%d distinct), version %d: an update was lost", writers, len(got.Scopes), len(seen), got.Version)
	}
}

func testAAD(t *testing.T, b Backend) {
	e := b.setup(t)
	must(t, e.s.PutConnection(ctx(t), newConn("apikey|alice")))
	must(t, e.s.PutConnection(ctx(t), newConn("apikey|bob")))
	var aliceCT string
	db := raw(t, e.s)
	must(t, db.QueryRowContext(ctx(t), `SELECT access_token FROM connections WHERE subject = 'apikey|alice'`).Scan(&aliceCT))
	if _, err := db.ExecContext(ctx(t), `UPDATE connections SET access_token = '`+aliceCT+`' WHERE subject = 'apikey|bob'`); err != nil {
		t.Fatal(err)
	}
	_, err := e.s.GetConnection(ctx(t), key("apikey|bob"))
	wantErr(t, err, vault.ErrDecrypt)
	msg := err.Error()
	if !strings.Contains(msg, `connection|linear|user|apikey\|bob|access`) {
		t.Errorf("error %q does not name the record", msg)
	}
	if strings.Contains(msg, "at-apikey") || strings.Contains(msg, aliceCT[8:]) {
		t.Errorf("error %q carries a secret or the ciphertext", msg)
	}
	// Alice's own row still opens.
	got, err := e.s.GetConnection(ctx(t), key("apikey|alice"))
	must(t, err)
	if got.AccessToken.Reveal() != "at-apikey|alice" {
		t.Fatal("alice's token changed")
	}
}

func testLostKey(t *testing.T, b Backend) {
	e := b.setup(t, "lost")
	must(t, e.s.PutConnection(ctx(t), newConn("u")))
	must(t, e.s.CreateAPIKey(ctx(t), &store.APIKey{ID: "key_1", Consumer: "c", Hash: store.HashAPIKey("k")}))
	s2 := e.open(Ring(t, "fresh"))
	_, err := s2.GetConnection(ctx(t), key("u"))
	wantErr(t, err, vault.ErrUnknownKey)
	if errors.Is(err, store.ErrNotFound) {
		t.Fatal("a lost key must not look like 'not connected'")
	}
	// Everything that is not sealed keeps working.
	list, err := s2.ListConnections(ctx(t), store.ConnectionFilter{})
	must(t, err)
	if len(list) != 1 {
		t.Fatalf("list = %d", len(list))
	}
	_, err = s2.LookupAPIKey(ctx(t), store.HashAPIKey("k"))
	must(t, err)
	// Reconnecting replaces the unreadable row.
	c := newConn("u")
	c.Version = list[0].Version
	must(t, s2.PutConnection(ctx(t), c))
	_, err = s2.GetConnection(ctx(t), key("u"))
	must(t, err)
}

// Secrets stored by testNoPlaintext; none may appear in the database.
var knownSecrets = []string{"PLAINTEXT-ACCESS-4f1c", "PLAINTEXT-REFRESH-9a2b", "PLAINTEXT-CLIENT-SECRET-77d0", "PLAINTEXT-VERIFIER-c3e8"}

func testNoPlaintext(t *testing.T, b Backend) {
	e := b.setup(t)
	c := newConn("u")
	c.AccessToken, c.RefreshToken = vault.Secret(knownSecrets[0]), vault.Secret(knownSecrets[1])
	must(t, e.s.PutConnection(ctx(t), c))
	must(t, e.s.PutClientRegistration(ctx(t), &store.ClientRegistration{
		ClientRegistrationKey: store.ClientRegistrationKey{Issuer: "https://as", UpstreamID: "linear", RedirectURI: "https://gw/cb"},
		Method:                "manual", ClientID: "cid", ClientSecret: vault.Secret(knownSecrets[2]), AuthMethod: "client_secret_basic",
	}))
	must(t, e.s.CreatePending(ctx(t), "the-state-value", &store.PendingAuthorization{
		UpstreamID: "linear", Mode: store.ModeUser, Subject: "u", Verifier: vault.Secret(knownSecrets[3]),
	}))
	dump := b.Dump(t, e.dsn)
	if !bytes.Contains(dump, []byte("cid")) {
		t.Fatal("dump does not contain the stored rows: the check would prove nothing")
	}
	for _, s := range append(knownSecrets, "the-state-value") {
		if bytes.Contains(dump, []byte(s)) {
			t.Errorf("plaintext %q found at rest", s)
		}
	}
	// And they still read back.
	got, err := e.s.GetConnection(ctx(t), key("u"))
	must(t, err)
	if got.RefreshToken.Reveal() != knownSecrets[1] {
		t.Fatal("refresh token did not round-trip")
	}
}

func testRegistrations(t *testing.T, b Backend) {
	e := b.setup(t)
	s := e.s
	k := store.ClientRegistrationKey{Issuer: "https://as", UpstreamID: "linear", RedirectURI: "https://gw/cb"}
	_, err := s.GetClientRegistration(ctx(t), k)
	wantErr(t, err, store.ErrNotFound)
	r := &store.ClientRegistration{ClientRegistrationKey: k, Method: "dcr", ClientID: "c1", ClientSecret: "s1", AuthMethod: "client_secret_post",
		ExpiresAt: e.clock.Now().Add(time.Hour)}
	must(t, s.PutClientRegistration(ctx(t), r))
	got, err := s.GetClientRegistration(ctx(t), k)
	must(t, err)
	if got.ClientID != "c1" || got.ClientSecret.Reveal() != "s1" || got.Method != "dcr" || got.AuthMethod != "client_secret_post" ||
		!got.RegisteredAt.Equal(e.clock.Now()) || !got.ExpiresAt.Equal(r.ExpiresAt) {
		t.Fatalf("round trip: %+v", got)
	}
	r.ClientID, r.ClientSecret = "c2", ""
	must(t, s.PutClientRegistration(ctx(t), r))
	got, err = s.GetClientRegistration(ctx(t), k)
	must(t, err)
	if got.ClientID != "c2" || !got.ClientSecret.IsZero() {
		t.Fatalf("replace: %+v", got)
	}
	other := k
	other.RedirectURI = "https://gw2/cb"
	must(t, s.PutClientRegistration(ctx(t), &store.ClientRegistration{ClientRegistrationKey: other, ClientID: "c3"}))
	e.clock.Advance(2 * time.Hour)
	_, err = s.GetClientRegistration(ctx(t), k)
	wantErr(t, err, store.ErrNotFound) // expired
	n, err := s.DeleteClientRegistrations(ctx(t), "linear")
	must(t, err)
	if n != 2 {
		t.Fatalf("deleted %d, want 2", n)
	}
	_, err = s.GetClientRegistration(ctx(t), other)
	wantErr(t, err, store.ErrNotFound)
}

// An upstream keeps at most store.MaxDynamicRegistrations DCR registrations (one per redirect
// URI a request-derived public URL produced, say): the oldest goes first; a manual client and
// other upstreams' registrations are untouched.
func testRegistrationsBounded(t *testing.T, b Backend) {
	e := b.setup(t)
	s := e.s
	manual := store.ClientRegistrationKey{Issuer: "https://as", UpstreamID: "linear", RedirectURI: "https://manual/cb"}
	must(t, s.PutClientRegistration(ctx(t), &store.ClientRegistration{ClientRegistrationKey: manual, Method: "manual", ClientID: "m"}))
	otherUpstream := store.ClientRegistrationKey{Issuer: "https://as", UpstreamID: "github", RedirectURI: "https://gw/cb"}
	must(t, s.PutClientRegistration(ctx(t), &store.ClientRegistration{ClientRegistrationKey: otherUpstream, Method: "dcr", ClientID: "g"}))
	key := func(i int) store.ClientRegistrationKey {
		return store.ClientRegistrationKey{Issuer: "https://as", UpstreamID: "linear", RedirectURI: fmt.Sprintf("https://host-%d/cb", i)}
	}
	total := store.MaxDynamicRegistrations + 5
	for i := range total {
		e.clock.Advance(time.Second)
		must(t, s.PutClientRegistration(ctx(t), &store.ClientRegistration{ClientRegistrationKey: key(i), Method: "dcr", ClientID: fmt.Sprint(i)}))
	}
	kept := 0
	for i := range total {
		_, err := s.GetClientRegistration(ctx(t), key(i))
		switch {
		case err == nil:
			kept++
			if i < total-store.MaxDynamicRegistrations {
				t.Errorf("registration %d of %d is kept, but it is among the oldest", i, total)
			}
		case errors.Is(err, store.ErrNotFound):
			if i >= total-store.MaxDynamicRegistrations {
				t.Errorf("registration %d of %d is gone, but it is among the newest %d", i, total, store.MaxDynamicRegistrations)
			}
		default:
			t.Fatal(err)
		}
	}
	if kept != store.MaxDynamicRegistrations {
		t.Errorf("kept %d dynamic registrations, want %d", kept, store.MaxDynamicRegistrations)
	}
	for _, k := range []store.ClientRegistrationKey{manual, otherUpstream} {
		if _, err := s.GetClientRegistration(ctx(t), k); err != nil {
			t.Errorf("%s/%s: %v (untouched by the bound)", k.UpstreamID, k.RedirectURI, err)
		}
	}
}

func testPending(t *testing.T, b Backend) {
	e := b.setup(t)
	s := e.s
	p := &store.PendingAuthorization{
		UpstreamID: "linear", Mode: store.ModeUser, Subject: "apikey|alice", Verifier: "verifier-1",
		Scopes: []string{"a", "b"}, ElicitationID: "el-1", BrowserNonceHash: []byte{1, 2, 3}, RedirectURI: "https://gw/cb",
		Resource: "https://mcp", Issuer: "https://as", OperationID: "op",
	}
	must(t, s.CreatePending(ctx(t), "state-1", p))
	if !p.ExpiresAt.Equal(e.clock.Now().Add(store.PendingTTL)) {
		t.Fatalf("default expiry %v", p.ExpiresAt)
	}
	wantErr(t, s.CreatePending(ctx(t), "state-1", p), store.ErrConflict)
	_, err := s.ConsumePending(ctx(t), "other-state")
	wantErr(t, err, store.ErrNotFound)
	got, err := s.ConsumePending(ctx(t), "state-1")
	must(t, err)
	if got.Verifier.Reveal() != "verifier-1" || got.Subject != "apikey|alice" || strings.Join(got.Scopes, ",") != "a,b" ||
		got.ElicitationID != "el-1" || !bytes.Equal(got.BrowserNonceHash, []byte{1, 2, 3}) || got.RedirectURI != p.RedirectURI ||
		got.Resource != p.Resource || got.Issuer != p.Issuer || got.OperationID != "op" || got.Mode != store.ModeUser ||
		!got.ExpiresAt.Equal(p.ExpiresAt) {
		t.Fatalf("round trip: %+v", got)
	}
	_, err = s.ConsumePending(ctx(t), "state-1")
	wantErr(t, err, store.ErrNotFound) // single use

	must(t, s.CreatePending(ctx(t), "state-2", &store.PendingAuthorization{UpstreamID: "linear", Mode: store.ModeUser, Subject: "u"}))
	e.clock.Advance(store.PendingTTL)
	_, err = s.ConsumePending(ctx(t), "state-2")
	wantErr(t, err, store.ErrNotFound) // expired
}

func testPendingRace(t *testing.T, b Backend) {
	e := b.setup(t)
	s2 := e.open(e.ring) // the second consumer uses its own handle, as a second replica would
	for round := range 20 {
		state := fmt.Sprintf("race-%d", round)
		must(t, e.s.CreatePending(ctx(t), state, &store.PendingAuthorization{UpstreamID: "linear", Mode: store.ModeUser, Subject: "u", Verifier: "v"}))
		var wins, misses atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, s := range []store.Store{e.s, s2} {
			wg.Go(func() {
				<-start
				p, err := s.ConsumePending(ctx(t), state)
				switch {
				case err == nil && p.Verifier == "v":
					wins.Add(1)
				case errors.Is(err, store.ErrNotFound):
					misses.Add(1)
				default:
					t.Errorf("consume: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || misses.Load() != 1 {
			t.Fatalf("round %d: %d winners, %d losers; want exactly one winner", round, wins.Load(), misses.Load())
		}
	}
}

func testTickets(t *testing.T, b Backend) {
	e := b.setup(t)
	exp := e.clock.Now().Add(15 * time.Minute)
	must(t, e.s.UseTicket(ctx(t), "t1", exp))
	wantErr(t, e.s.UseTicket(ctx(t), "t1", exp), store.ErrAlreadyUsed)
	s2 := e.open(e.ring)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		s := e.s
		if i%2 == 1 {
			s = s2
		}
		wg.Go(func() {
			err := s.UseTicket(ctx(t), "t2", exp)
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, store.ErrAlreadyUsed) {
				t.Errorf("use: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d uses of one ticket succeeded", wins.Load())
	}
}

func testSweep(t *testing.T, b Backend) {
	e := b.setup(t)
	s := e.s
	now := e.clock.Now()
	must(t, s.CreatePending(ctx(t), "old", &store.PendingAuthorization{UpstreamID: "l", Mode: store.ModeUser, Subject: "u", ExpiresAt: now.Add(time.Minute)}))
	must(t, s.CreatePending(ctx(t), "new", &store.PendingAuthorization{UpstreamID: "l", Mode: store.ModeUser, Subject: "u", ExpiresAt: now.Add(time.Hour)}))
	must(t, s.UseTicket(ctx(t), "t-old", now.Add(time.Minute)))
	must(t, s.UseTicket(ctx(t), "t-new", now.Add(time.Hour)))
	must(t, s.TryAcquireLease(ctx(t), "l-old", "h", time.Minute))
	e.clock.Advance(2 * time.Minute)
	n, err := s.Sweep(ctx(t))
	must(t, err)
	if n != 3 {
		t.Fatalf("swept %d rows, want 3 (pending, ticket use, lease)", n)
	}
	db := raw(t, s)
	for table, want := range map[string]int{"pending_authorizations": 1, "ticket_uses": 1, "leases": 0} {
		var got int
		must(t, db.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM "+table).Scan(&got))
		if got != want {
			t.Errorf("%s has %d rows after sweep, want %d", table, got, want)
		}
	}
	_, err = s.ConsumePending(ctx(t), "new")
	must(t, err)
}

func testAudit(t *testing.T, b Backend) {
	e := b.setup(t)
	s := e.s
	t0 := e.clock.Now()
	events := []store.AuditEvent{
		{Event: "connection.created", Outcome: "success", UpstreamID: "linear", Subject: "alice", Actor: "alice", RequestID: "r1", Details: json.RawMessage(`{"scopes":["a"]}`)},
		{Event: "token.refreshed", Outcome: "success", UpstreamID: "linear", Subject: "alice"},
		{Event: "token.refreshed", Outcome: "failure", ReasonCode: "invalid_grant", UpstreamID: "github", Subject: "alice"},
		{Event: "connection.created", Outcome: "success", UpstreamID: "linear", Subject: "bob", OperationID: "op"},
		{Event: "connection.revoked", Outcome: "success", UpstreamID: "github", Subject: "bob", Actor: "admin"},
	}
	for i := range events {
		must(t, s.AppendAudit(ctx(t), &events[i]))
		if events[i].ID == 0 || !events[i].Time.Equal(e.clock.Now()) {
			t.Fatalf("event %d: id %d time %v", i, events[i].ID, events[i].Time)
		}
		e.clock.Advance(time.Minute)
	}
	ids := func(es []store.AuditEvent) string {
		var v []string
		for _, e := range es {
			for i, x := range events {
				if x.ID == e.ID {
					v = append(v, fmt.Sprint(i))
				}
			}
		}
		return strings.Join(v, ",")
	}
	for _, tc := range []struct {
		name string
		q    store.AuditQuery
		want string
	}{
		{"all newest first", store.AuditQuery{}, "4,3,2,1,0"},
		{"by subject", store.AuditQuery{Subject: "alice"}, "2,1,0"},
		{"by upstream", store.AuditQuery{UpstreamID: "github"}, "4,2"},
		{"by subject and upstream", store.AuditQuery{Subject: "alice", UpstreamID: "linear"}, "1,0"},
		{"by event and outcome", store.AuditQuery{Event: "token.refreshed", Outcome: "failure"}, "2"},
		{"time range", store.AuditQuery{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, "2,1"},
		{"page 1", store.AuditQuery{Limit: 2}, "4,3"},
		{"page 2", store.AuditQuery{Limit: 2, BeforeID: events[3].ID}, "2,1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.QueryAudit(ctx(t), tc.q)
			must(t, err)
			if ids(got) != tc.want {
				t.Fatalf("got events %q, want %q", ids(got), tc.want)
			}
		})
	}
	got, err := s.QueryAudit(ctx(t), store.AuditQuery{Subject: "alice", Event: "connection.created"})
	must(t, err)
	if len(got) != 1 || string(got[0].Details) != `{"scopes":["a"]}` || got[0].Actor != "alice" || got[0].RequestID != "r1" {
		t.Fatalf("fields: %+v", got)
	}
	n, err := s.DeleteAuditBefore(ctx(t), t0.Add(2*time.Minute))
	must(t, err)
	if n != 2 {
		t.Fatalf("retention deleted %d, want 2", n)
	}
}

func testAPIKeys(t *testing.T, b Backend) {
	e := b.setup(t)
	s := e.s
	id, k, hash, err := store.NewAPIKey()
	must(t, err)
	if len(k) < 32 || strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
		t.Fatalf("key %q: want ≥32 characters of letters, digits, _ and -", k)
	}
	rec := &store.APIKey{ID: id, Consumer: "ci-bot", Hash: hash, Metadata: json.RawMessage(`{"team":"x"}`), Admin: true,
		ExpiresAt: e.clock.Now().Add(24 * time.Hour)}
	must(t, s.CreateAPIKey(ctx(t), rec))
	wantErr(t, s.CreateAPIKey(ctx(t), rec), store.ErrConflict)
	got, err := s.LookupAPIKey(ctx(t), store.HashAPIKey(k))
	must(t, err)
	if got.ID != id || got.Consumer != "ci-bot" || !got.Admin || string(got.Metadata) != `{"team":"x"}` ||
		!got.ExpiresAt.Equal(rec.ExpiresAt) || !got.RevokedAt.IsZero() || !got.CreatedAt.Equal(e.clock.Now()) {
		t.Fatalf("round trip: %+v", got)
	}
	_, err = s.LookupAPIKey(ctx(t), store.HashAPIKey(k+"x"))
	wantErr(t, err, store.ErrNotFound)
	e.clock.Advance(time.Second)
	must(t, s.CreateAPIKey(ctx(t), &store.APIKey{ID: "key_2", Consumer: "other", Hash: store.HashAPIKey("other")}))
	list, err := s.ListAPIKeys(ctx(t))
	must(t, err)
	if len(list) != 2 || list[0].ID != id || list[1].Admin {
		t.Fatalf("list: %+v", list)
	}
	must(t, s.RevokeAPIKey(ctx(t), id))
	must(t, s.RevokeAPIKey(ctx(t), id))
	wantErr(t, s.RevokeAPIKey(ctx(t), "key_missing"), store.ErrNotFound)
	got, err = s.LookupAPIKey(ctx(t), hash)
	must(t, err)
	if got.RevokedAt.IsZero() {
		t.Fatal("revocation not stored")
	}
}

func testLeases(t *testing.T, b Backend) {
	e := b.setup(t)
	a, bb := e.s, e.open(e.ring) // two independent handles: two pools, as two replicas
	const ttl = 30 * time.Second
	must(t, a.TryAcquireLease(ctx(t), "refresh:linear:u", "A", ttl))
	wantErr(t, bb.TryAcquireLease(ctx(t), "refresh:linear:u", "B", ttl), store.ErrLeaseHeld)
	must(t, a.TryAcquireLease(ctx(t), "refresh:linear:u", "A", ttl))  // re-entrant for the holder
	must(t, bb.TryAcquireLease(ctx(t), "refresh:github:u", "B", ttl)) // other names are independent
	e.clock.Advance(20 * time.Second)
	must(t, a.RenewLease(ctx(t), "refresh:linear:u", "A", ttl))
	wantErr(t, bb.RenewLease(ctx(t), "refresh:linear:u", "B", ttl), store.ErrLeaseHeld)
	e.clock.Advance(20 * time.Second) // renewed: still held
	wantErr(t, bb.TryAcquireLease(ctx(t), "refresh:linear:u", "B", ttl), store.ErrLeaseHeld)
	must(t, bb.ReleaseLease(ctx(t), "refresh:linear:u", "B")) // not the holder: no-op
	wantErr(t, bb.TryAcquireLease(ctx(t), "refresh:linear:u", "B", ttl), store.ErrLeaseHeld)
	must(t, a.ReleaseLease(ctx(t), "refresh:linear:u", "A"))
	must(t, bb.TryAcquireLease(ctx(t), "refresh:linear:u", "B", ttl))
	// Expiry: B stops renewing; after the TTL, A takes over and B's renewal fails.
	e.clock.Advance(ttl)
	must(t, a.TryAcquireLease(ctx(t), "refresh:linear:u", "A", ttl))
	wantErr(t, bb.RenewLease(ctx(t), "refresh:linear:u", "B", ttl), store.ErrLeaseHeld)

	// Contention: of many concurrent acquirers on two handles, exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		s := a
		if i%2 == 1 {
			s = bb
		}
		wg.Go(func() {
			err := s.TryAcquireLease(ctx(t), "contended", fmt.Sprint("h", i), ttl)
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, store.ErrLeaseHeld) {
				t.Errorf("acquire: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d holders acquired one lease", wins.Load())
	}
}

// Helper process protocol for testLeaseKill9.
const (
	helperEnv    = "MCPGATE_STORETEST_LEASE_HELPER"
	helperDSNEnv = "MCPGATE_STORETEST_LEASE_DSN"
	helperTTL    = 2 * time.Second
)

// RunHelperIfRequested turns the process into a lease holder when the suite re-executed the test
// binary for the kill -9 test: it takes the lease, prints "acquired" and waits to be killed. Call it
// first thing in TestMain; it returns at once in a normal test run.
func RunHelperIfRequested(open func(ctx context.Context, dsn string, o sqlstore.Options) (store.Store, error)) {
	name := os.Getenv(helperEnv)
	if name == "" {
		return
	}
	ring, err := vault.ParseRing("h:" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if err == nil {
		var s store.Store
		s, err = open(context.Background(), os.Getenv(helperDSNEnv), sqlstore.Options{Ring: ring})
		if err == nil {
			err = s.TryAcquireLease(context.Background(), name, "killed-process", helperTTL)
		}
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("acquired")
	select {} // hold the lease (and the open connections) until SIGKILL
}

func testLeaseKill9(t *testing.T, b Backend) {
	dsn := b.NewDSN(t)
	s, err := b.Open(ctx(t), dsn, sqlstore.Options{Ring: Ring(t, "k1")}) // real clock, as the helper's
	must(t, err)
	t.Cleanup(func() { _ = s.Close() })

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=refresh:linear:u", helperDSNEnv+"="+dsn)
	out, err := cmd.StdoutPipe()
	must(t, err)
	cmd.Stderr = os.Stderr
	must(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "acquired" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper: %q, %v", line, err)
	}
	acquiredBy := time.Now()
	must(t, cmd.Process.Kill()) // SIGKILL: no deferred release, no clean close
	_ = cmd.Wait()

	// The lease outlives its holder until it expires...
	err = s.TryAcquireLease(ctx(t), "refresh:linear:u", "survivor", time.Minute)
	if time.Since(acquiredBy) < helperTTL-200*time.Millisecond {
		wantErr(t, err, store.ErrLeaseHeld)
	}
	// ...and then another holder takes it.
	deadline := time.Now().Add(helperTTL + 10*time.Second)
	for err != nil {
		if !errors.Is(err, store.ErrLeaseHeld) {
			t.Fatalf("acquire: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("lease of the killed process never expired")
		}
		time.Sleep(50 * time.Millisecond) // polling a database row for a deadline, not a race
		err = s.TryAcquireLease(ctx(t), "refresh:linear:u", "survivor", time.Minute)
	}
	if time.Since(acquiredBy) < helperTTL-100*time.Millisecond {
		t.Fatalf("lease taken after %v, before its %v TTL", time.Since(acquiredBy), helperTTL)
	}
}

// seed stores n connections (2 secrets each), a registration, a pending authorization, n sign-in
// requests and n OAuth grants: 4n+2 sealed values (the last two kinds page by a text or binary key).
func seed(t *testing.T, s store.Store, n int) {
	t.Helper()
	for i := range n {
		must(t, s.PutConnection(ctx(t), newConn(fmt.Sprintf("user-%02d", i))))
	}
	must(t, s.PutClientRegistration(ctx(t), &store.ClientRegistration{
		ClientRegistrationKey: store.ClientRegistrationKey{Issuer: "https://as", UpstreamID: "linear", RedirectURI: "https://gw/cb"},
		ClientID:              "cid", ClientSecret: "client-secret",
	}))
	must(t, s.CreatePending(ctx(t), "state", &store.PendingAuthorization{UpstreamID: "linear", Mode: store.ModeUser, Subject: "u", Verifier: "verifier"}))
	for i := range n {
		must(t, s.PutSignInRequest(ctx(t), store.HashToken(fmt.Sprintf("signin-%02d", i)), &store.SignInRequest{Kind: "code",
			Payload: vault.Secret(fmt.Sprintf("signin-payload-%02d", i)), ExpiresAt: time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)}))
		must(t, s.CreateOAuthGrant(ctx(t), newGrant(fmt.Sprintf("grant-%02d", i), "u", fmt.Sprintf("grant-refresh-%02d", i))))
	}
}

func countUnder(t *testing.T, s store.Store, kid string) int {
	t.Helper()
	prefix := vault.KeyPrefix(kid)
	total := 0
	for _, tc := range [][2]string{
		{"connections", "access_token"}, {"connections", "refresh_token"},
		{"client_registrations", "client_secret"}, {"pending_authorizations", "verifier"},
		{"signin_requests", "payload"}, {"oauth_grants", "id_token"},
	} {
		var n int
		q := fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE substr(%s, 1, %d) = '%s'`, tc[0], tc[1], len(prefix), prefix)
		must(t, raw(t, s).QueryRowContext(ctx(t), q).Scan(&n))
		total += n
	}
	return total
}

func testRekey(t *testing.T, b Backend) {
	e := b.setup(t, "old")
	seed(t, e.s, 9)
	if n := countUnder(t, e.s, "old"); n != 38 {
		t.Fatalf("%d rows under old before rekey, want 38", n)
	}
	s := e.open(Ring(t, "new", "old"))
	crash := errors.New("injected crash")
	batches := 0
	_, err := s.Rekey(ctx(t), store.RekeyOptions{BatchSize: 4, AfterBatch: func(store.RekeyProgress) error {
		if batches++; batches == 2 {
			return crash
		}
		return nil
	}})
	wantErr(t, err, crash)
	if n := countUnder(t, s, "old"); n == 0 || n == 38 {
		t.Fatalf("after the crash %d values under old: want some done, some left", n)
	}
	// Everything decrypts in the half-done state.
	for i := range 9 {
		_, err := s.GetConnection(ctx(t), key(fmt.Sprintf("user-%02d", i)))
		must(t, err)
	}
	var progress []store.RekeyProgress
	p, err := s.Rekey(ctx(t), store.RekeyOptions{BatchSize: 4, Progress: func(p store.RekeyProgress) { progress = append(progress, p) }})
	must(t, err)
	if p.Unreadable != 0 || p.Rekeyed == 0 || len(progress) == 0 {
		t.Fatalf("rerun: %+v (%d progress reports)", p, len(progress))
	}
	if n := countUnder(t, s, "old"); n != 0 {
		t.Fatalf("%d values still under the old key after rekey", n)
	}
	ids, err := s.SealedKeyIDs(ctx(t))
	must(t, err)
	if len(ids) != 1 || ids["new"] != 38 {
		t.Fatalf("sealed key ids %v, want new:38", ids)
	}
	// The old key can now be dropped from the ring.
	s2 := e.open(Ring(t, "new"))
	for i := range 9 {
		c, err := s2.GetConnection(ctx(t), key(fmt.Sprintf("user-%02d", i)))
		must(t, err)
		if c.AccessToken.Reveal() != fmt.Sprintf("at-user-%02d", i) || c.Version != 1 {
			t.Fatalf("connection %d after rekey: version %d", i, c.Version)
		}
	}
	r, err := s2.GetClientRegistration(ctx(t), store.ClientRegistrationKey{Issuer: "https://as", UpstreamID: "linear", RedirectURI: "https://gw/cb"})
	must(t, err)
	pa, err := s2.ConsumePending(ctx(t), "state")
	must(t, err)
	if r.ClientSecret != "client-secret" || pa.Verifier != "verifier" {
		t.Fatal("registration or pending secret changed")
	}
	for i := range 9 {
		sr, err := s2.ConsumeSignInRequest(ctx(t), store.HashToken(fmt.Sprintf("signin-%02d", i)), "code")
		must(t, err)
		g, err := s2.GetOAuthGrant(ctx(t), fmt.Sprintf("grant-%02d", i))
		must(t, err)
		if sr.Payload.Reveal() != fmt.Sprintf("signin-payload-%02d", i) || g.IDToken.Reveal() != fmt.Sprintf("id-token-grant-%02d", i) || g.Version != 1 {
			t.Fatalf("sign-in payload or grant ID token %d changed (grant version %d)", i, g.Version)
		}
	}
	// A rerun with nothing to do is a no-op.
	p, err = s2.Rekey(ctx(t), store.RekeyOptions{})
	must(t, err)
	if p.Scanned != 0 {
		t.Fatalf("idle rerun scanned %d", p.Scanned)
	}
}

func testRekeyConcurrent(t *testing.T, b Backend) {
	e := b.setup(t, "old")
	seed(t, e.s, 30)
	s := e.open(Ring(t, "new", "old"))
	// A writer keeps refreshing tokens while rekey runs; every refresh must survive.
	done := make(chan struct{})
	var wg sync.WaitGroup
	var last [30]atomic.Int64
	wg.Go(func() {
		for round := 1; ; round++ {
			for i := range 30 {
				select {
				case <-done:
					return
				default:
				}
				_, err := store.Update(ctx(t), s, key(fmt.Sprintf("user-%02d", i)), func(c *store.Connection) error {
					c.AccessToken = vault.Secret(fmt.Sprintf("refreshed-%d", round))
					return nil
				})
				if err != nil {
					t.Errorf("refresh: %v", err)
					return
				}
				last[i].Store(int64(round))
			}
		}
	})
	_, err := s.Rekey(ctx(t), store.RekeyOptions{BatchSize: 3})
	close(done)
	wg.Wait()
	must(t, err)
	// A second pass picks up values a concurrent writer sealed... with the newest key already, so
	// nothing is left under old.
	_, err = s.Rekey(ctx(t), store.RekeyOptions{})
	must(t, err)
	if n := countUnder(t, s, "old"); n != 0 {
		t.Fatalf("%d values under old", n)
	}
	for i := range 30 {
		c, err := s.GetConnection(ctx(t), key(fmt.Sprintf("user-%02d", i)))
		must(t, err)
		if r := last[i].Load(); r > 0 && c.AccessToken.Reveal() != fmt.Sprintf("refreshed-%d", r) {
			t.Fatalf("connection %d: token %q, want the last refresh %d: rekey clobbered a write", i, c.AccessToken.Reveal(), r)
		}
	}
}
