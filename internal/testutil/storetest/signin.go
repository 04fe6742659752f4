package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Conformance tests of the gateway's own authorization server records (store/signin.go).

func newGrant(id, subject, refresh string) *store.OAuthGrant {
	return &store.OAuthGrant{
		ID: id, Subject: subject, ClientID: "dcr:client-1", Resource: "https://gw.example/mcp/linear", OperationID: "linear",
		Scopes: []string{"mcp", "offline_access"}, UserData: json.RawMessage(`{"email":"a@example.com","roles":["dev"]}`),
		IDToken: vault.Secret("id-token-" + id), RefreshHash: store.HashToken(refresh),
		ExpiresAt: time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC),
	}
}

func testOAuthClients(t *testing.T, b Backend) {
	e := b.setup(t)
	s := e.s
	_, err := s.GetOAuthClient(ctx(t), "dcr:missing")
	wantErr(t, err, store.ErrNotFound)
	c := &store.OAuthClient{
		ID: "dcr:abc", SecretHash: store.HashToken("client-secret"), Name: "Claude", RedirectURIs: []string{"https://a/cb", "http://127.0.0.1/cb"},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code", "refresh_token"}, RegisteredFrom: "192.0.2.7",
		ExpiresAt: e.clock.Now().Add(time.Hour),
	}
	must(t, s.CreateOAuthClient(ctx(t), c))
	wantErr(t, s.CreateOAuthClient(ctx(t), c), store.ErrConflict)
	got, err := s.GetOAuthClient(ctx(t), "dcr:abc")
	must(t, err)
	if !bytes.Equal(got.SecretHash, c.SecretHash) || got.Name != "Claude" || strings.Join(got.RedirectURIs, " ") != "https://a/cb http://127.0.0.1/cb" ||
		got.AuthMethod != "client_secret_basic" || strings.Join(got.GrantTypes, " ") != "authorization_code refresh_token" ||
		got.RegisteredFrom != "192.0.2.7" || !got.CreatedAt.Equal(e.clock.Now()) || !got.ExpiresAt.Equal(c.ExpiresAt) {
		t.Fatalf("round trip: %+v", got)
	}
	// A public client that never expires.
	must(t, s.CreateOAuthClient(ctx(t), &store.OAuthClient{ID: "dcr:public", AuthMethod: "none", RedirectURIs: []string{"https://p/cb"}}))
	pub, err := s.GetOAuthClient(ctx(t), "dcr:public")
	must(t, err)
	if pub.SecretHash != nil || !pub.ExpiresAt.IsZero() || pub.GrantTypes != nil {
		t.Fatalf("public client: %+v", pub)
	}
	e.clock.Advance(time.Hour)
	_, err = s.GetOAuthClient(ctx(t), "dcr:abc")
	wantErr(t, err, store.ErrNotFound) // expired
	_, err = s.GetOAuthClient(ctx(t), "dcr:public")
	must(t, err)
}

func testSignInRequests(t *testing.T, b Backend) {
	e := b.setup(t)
	s := e.s
	h := store.HashToken("handle-1")
	_, err := s.GetSignInRequest(ctx(t), h, "request")
	wantErr(t, err, store.ErrNotFound)
	exp := e.clock.Now().Add(10 * time.Minute)
	r := &store.SignInRequest{Kind: "request", Payload: `{"step":1}`, ExpiresAt: exp}
	must(t, s.PutSignInRequest(ctx(t), h, r))
	got, err := s.GetSignInRequest(ctx(t), h, "request")
	must(t, err)
	if got.Kind != "request" || got.Payload.Reveal() != `{"step":1}` || !got.CreatedAt.Equal(e.clock.Now()) || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("round trip: %+v", got)
	}
	_, err = s.GetSignInRequest(ctx(t), h, "code")
	wantErr(t, err, store.ErrNotFound) // another kind
	_, err = s.ConsumeSignInRequest(ctx(t), h, "code")
	wantErr(t, err, store.ErrNotFound)

	// The flow updates its request; Get does not consume.
	e.clock.Advance(time.Minute)
	got.Payload = `{"step":2}`
	must(t, s.PutSignInRequest(ctx(t), h, got))
	again, err := s.GetSignInRequest(ctx(t), h, "request")
	must(t, err)
	if again.Payload.Reveal() != `{"step":2}` || !again.CreatedAt.Equal(r.CreatedAt) {
		t.Fatalf("update: %+v", again)
	}
	// An unexpired record of another kind is not replaced.
	wantErr(t, s.PutSignInRequest(ctx(t), h, &store.SignInRequest{Kind: "code", Payload: "x", ExpiresAt: exp}), store.ErrConflict)
	if err := s.PutSignInRequest(ctx(t), h, &store.SignInRequest{Kind: "request", Payload: "x"}); err == nil {
		t.Fatal("a record without expiry was stored")
	}

	// Consume: once; then ErrAlreadyUsed, not even Put revives it.
	c, err := s.ConsumeSignInRequest(ctx(t), h, "request")
	must(t, err)
	if c.Payload.Reveal() != `{"step":2}` || c.Kind != "request" || !c.ExpiresAt.Equal(exp) {
		t.Fatalf("consumed: %+v", c)
	}
	_, err = s.ConsumeSignInRequest(ctx(t), h, "request")
	wantErr(t, err, store.ErrAlreadyUsed)
	_, err = s.GetSignInRequest(ctx(t), h, "request")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.PutSignInRequest(ctx(t), h, &store.SignInRequest{Kind: "request", Payload: "again", ExpiresAt: exp}), store.ErrAlreadyUsed)
	var payload string
	must(t, raw(t, s).QueryRowContext(ctx(t), `SELECT payload FROM signin_requests`).Scan(&payload))
	if payload != "" {
		t.Fatal("a consumed record keeps its sealed payload")
	}

	// Expiry: neither Get nor Consume returns an expired record; an expired handle can be reused.
	code := store.HashToken("code-1")
	must(t, s.PutSignInRequest(ctx(t), code, &store.SignInRequest{Kind: "code", Payload: "c", ExpiresAt: e.clock.Now().Add(time.Minute)}))
	e.clock.Advance(time.Minute)
	_, err = s.GetSignInRequest(ctx(t), code, "code")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.ConsumeSignInRequest(ctx(t), code, "code")
	wantErr(t, err, store.ErrNotFound)
	e.clock.Advance(10 * time.Minute)
	_, err = s.ConsumeSignInRequest(ctx(t), h, "request") // the consumed record expired too
	wantErr(t, err, store.ErrNotFound)
	must(t, s.PutSignInRequest(ctx(t), code, &store.SignInRequest{Kind: "request", Payload: "new", ExpiresAt: e.clock.Now().Add(time.Minute)}))
	got, err = s.GetSignInRequest(ctx(t), code, "request")
	must(t, err)
	if got.Payload.Reveal() != "new" {
		t.Fatalf("reused handle: %+v", got)
	}
}

func testSignInRace(t *testing.T, b Backend) {
	e := b.setup(t)
	s2 := e.open(e.ring) // the second consumer uses its own handle, as a second replica would
	for round := range 20 {
		h := store.HashToken(fmt.Sprintf("code-%d", round))
		must(t, e.s.PutSignInRequest(ctx(t), h, &store.SignInRequest{Kind: "code", Payload: "p", ExpiresAt: e.clock.Now().Add(time.Minute)}))
		var wins, used atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, s := range []store.Store{e.s, s2} {
			wg.Go(func() {
				<-start
				r, err := s.ConsumeSignInRequest(ctx(t), h, "code")
				switch {
				case err == nil && r.Payload == "p":
					wins.Add(1)
				case errors.Is(err, store.ErrAlreadyUsed):
					used.Add(1)
				default:
					t.Errorf("consume: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || used.Load() != 1 {
			t.Fatalf("round %d: %d winners, %d already used; want exactly one winner", round, wins.Load(), used.Load())
		}
	}
}

func testOAuthGrants(t *testing.T, b Backend) {
	e := b.setup(t)
	s := e.s
	_, err := s.GetOAuthGrant(ctx(t), "g-missing")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.FindOAuthGrantByRefresh(ctx(t), store.HashToken("nope"))
	wantErr(t, err, store.ErrNotFound)

	g := newGrant("g1", "oidc:https://idp|alice", "rt-1")
	must(t, s.CreateOAuthGrant(ctx(t), g))
	if g.Version != 1 || !g.CreatedAt.Equal(e.clock.Now()) {
		t.Fatalf("created: version %d created %v", g.Version, g.CreatedAt)
	}
	wantErr(t, s.CreateOAuthGrant(ctx(t), g), store.ErrConflict)                                // same id
	wantErr(t, s.CreateOAuthGrant(ctx(t), newGrant("g-dup", "bob", "rt-1")), store.ErrConflict) // same refresh hash
	got, err := s.GetOAuthGrant(ctx(t), "g1")
	must(t, err)
	if got.Subject != g.Subject || got.ClientID != g.ClientID || got.Resource != g.Resource || got.OperationID != "linear" ||
		strings.Join(got.Scopes, " ") != "mcp offline_access" || string(got.UserData) != string(g.UserData) ||
		got.IDToken.Reveal() != "id-token-g1" || !bytes.Equal(got.RefreshHash, store.HashToken("rt-1")) || got.PrevRefreshHash != nil ||
		!got.RotatedAt.IsZero() || !got.CreatedAt.Equal(g.CreatedAt) || !got.ExpiresAt.Equal(g.ExpiresAt) ||
		!got.RevokedAt.IsZero() || got.RevokeReason != "" || got.Version != 1 {
		t.Fatalf("round trip: %+v", got)
	}
	found, err := s.FindOAuthGrantByRefresh(ctx(t), store.HashToken("rt-1"))
	must(t, err)
	if found.ID != "g1" || found.IDToken.Reveal() != "id-token-g1" {
		t.Fatalf("find: %+v", found)
	}
	_, err = s.FindOAuthGrantByRefresh(ctx(t), nil) // the empty previous hash of an unrotated grant
	wantErr(t, err, store.ErrNotFound)

	// Rotation.
	e.clock.Advance(time.Minute)
	rot, err := s.RotateOAuthGrant(ctx(t), "g1", 1, store.HashToken("rt-2"))
	must(t, err)
	if rot.Version != 2 || !bytes.Equal(rot.RefreshHash, store.HashToken("rt-2")) || !bytes.Equal(rot.PrevRefreshHash, store.HashToken("rt-1")) ||
		!rot.RotatedAt.Equal(e.clock.Now()) || rot.IDToken.Reveal() != "id-token-g1" || rot.Subject != g.Subject {
		t.Fatalf("rotated: %+v", rot)
	}
	for _, rt := range []string{"rt-1", "rt-2"} { // the previous token still finds the grant (grace window)
		f, err := s.FindOAuthGrantByRefresh(ctx(t), store.HashToken(rt))
		must(t, err)
		if f.ID != "g1" || f.Version != 2 {
			t.Fatalf("find by %s after rotation: %+v", rt, f)
		}
	}
	// A second rotation from the same read loses.
	_, err = s.RotateOAuthGrant(ctx(t), "g1", 1, store.HashToken("rt-2b"))
	wantErr(t, err, store.ErrConflict)
	_, err = s.RotateOAuthGrant(ctx(t), "g-missing", 1, store.HashToken("rt-x"))
	wantErr(t, err, store.ErrNotFound)
	rot, err = s.RotateOAuthGrant(ctx(t), "g1", 2, store.HashToken("rt-3"))
	must(t, err)
	_, err = s.FindOAuthGrantByRefresh(ctx(t), store.HashToken("rt-1")) // two rotations ago
	wantErr(t, err, store.ErrNotFound)
	if f, err := s.FindOAuthGrantByRefresh(ctx(t), store.HashToken("rt-2")); err != nil || f.ID != "g1" {
		t.Fatalf("find by previous: %+v, %v", f, err)
	}

	// Revocation: idempotent, keeps the first reason, and a rotation from before it loses.
	e.clock.Advance(time.Minute)
	revokedAt := e.clock.Now()
	must(t, s.RevokeOAuthGrant(ctx(t), "g1", "user"))
	e.clock.Advance(time.Minute)
	must(t, s.RevokeOAuthGrant(ctx(t), "g1", "admin"))
	wantErr(t, s.RevokeOAuthGrant(ctx(t), "g-missing", "user"), store.ErrNotFound)
	got, err = s.GetOAuthGrant(ctx(t), "g1")
	must(t, err)
	if !got.RevokedAt.Equal(revokedAt) || got.RevokeReason != "user" {
		t.Fatalf("revoked: at %v reason %q", got.RevokedAt, got.RevokeReason)
	}
	_, err = s.RotateOAuthGrant(ctx(t), "g1", rot.Version, store.HashToken("rt-4"))
	wantErr(t, err, store.ErrConflict)
	_, err = s.RotateOAuthGrant(ctx(t), "g1", got.Version, store.HashToken("rt-4"))
	wantErr(t, err, store.ErrConflict) // a revoked grant is never rotated
	// Revoked grants are still found (the caller reports why it refuses them).
	f, err := s.FindOAuthGrantByRefresh(ctx(t), store.HashToken("rt-3"))
	must(t, err)
	if f.RevokedAt.IsZero() {
		t.Fatal("find hides the revocation")
	}

	// Listing: newest first, by subject, limited; without ID tokens.
	for i := range 3 {
		e.clock.Advance(time.Minute)
		must(t, s.CreateOAuthGrant(ctx(t), newGrant(fmt.Sprint("g-bob-", i), "bob", fmt.Sprint("rt-bob-", i))))
	}
	list, err := s.ListOAuthGrants(ctx(t), "", 0)
	must(t, err)
	var ids []string
	for _, l := range list {
		ids = append(ids, l.ID)
		if !l.IDToken.IsZero() {
			t.Fatal("ListOAuthGrants returned an ID token")
		}
	}
	if strings.Join(ids, ",") != "g-bob-2,g-bob-1,g-bob-0,g1" {
		t.Fatalf("list: %v", ids)
	}
	list, err = s.ListOAuthGrants(ctx(t), "bob", 2)
	must(t, err)
	if len(list) != 2 || list[0].ID != "g-bob-2" || list[1].ID != "g-bob-1" {
		t.Fatalf("list of bob: %+v", list)
	}
	list, err = s.ListOAuthGrants(ctx(t), "nobody", 0)
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("list of nobody: %+v", list)
	}
}

func testOAuthGrantRotationRace(t *testing.T, b Backend) {
	e := b.setup(t)
	s2 := e.open(e.ring)
	must(t, e.s.CreateOAuthGrant(ctx(t), newGrant("g", "u", "rt-0")))
	version := int64(1)
	for round := range 10 {
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, s := range []store.Store{e.s, s2} {
			wg.Go(func() {
				<-start
				g, err := s.RotateOAuthGrant(ctx(t), "g", version, store.HashToken(fmt.Sprintf("rt-%d-%d", round, i)))
				switch {
				case err == nil && g.Version == version+1:
					wins.Add(1)
				case errors.Is(err, store.ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("rotate: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != 1 {
			t.Fatalf("round %d: %d rotations won, %d conflicts; want exactly one winner", round, wins.Load(), conflicts.Load())
		}
		version++
	}
}

func testClientConsents(t *testing.T, b Backend) {
	e := b.setup(t)
	s := e.s
	_, err := s.GetClientConsent(ctx(t), "alice", "dcr:c", "linear")
	wantErr(t, err, store.ErrNotFound)
	c := &store.ClientConsent{Subject: "alice", ClientID: "dcr:c", OperationID: "linear", RedirectURIsHash: store.HashToken("https://a/cb")}
	must(t, s.PutClientConsent(ctx(t), c))
	got, err := s.GetClientConsent(ctx(t), "alice", "dcr:c", "linear")
	must(t, err)
	if !bytes.Equal(got.RedirectURIsHash, c.RedirectURIsHash) || !got.ApprovedAt.Equal(e.clock.Now()) {
		t.Fatalf("round trip: %+v", got)
	}
	for _, k := range [][3]string{{"bob", "dcr:c", "linear"}, {"alice", "dcr:d", "linear"}, {"alice", "dcr:c", "github"}} {
		_, err := s.GetClientConsent(ctx(t), k[0], k[1], k[2])
		wantErr(t, err, store.ErrNotFound)
	}
	e.clock.Advance(time.Hour)
	must(t, s.PutClientConsent(ctx(t), &store.ClientConsent{Subject: "alice", ClientID: "dcr:c", OperationID: "linear",
		RedirectURIsHash: store.HashToken("https://b/cb")}))
	got, err = s.GetClientConsent(ctx(t), "alice", "dcr:c", "linear")
	must(t, err)
	if !bytes.Equal(got.RedirectURIsHash, store.HashToken("https://b/cb")) || !got.ApprovedAt.Equal(e.clock.Now()) {
		t.Fatalf("replace: %+v", got)
	}
}

func testSweepSignIn(t *testing.T, b Backend) {
	e := b.setup(t)
	s := e.s
	now := e.clock.Now()
	must(t, s.CreateOAuthClient(ctx(t), &store.OAuthClient{ID: "dcr:old", ExpiresAt: now.Add(time.Minute)}))
	must(t, s.CreateOAuthClient(ctx(t), &store.OAuthClient{ID: "dcr:new", ExpiresAt: now.Add(time.Hour)}))
	must(t, s.CreateOAuthClient(ctx(t), &store.OAuthClient{ID: "dcr:forever"}))
	must(t, s.PutSignInRequest(ctx(t), store.HashToken("old"), &store.SignInRequest{Kind: "request", Payload: "p", ExpiresAt: now.Add(time.Minute)}))
	must(t, s.PutSignInRequest(ctx(t), store.HashToken("used"), &store.SignInRequest{Kind: "code", Payload: "p", ExpiresAt: now.Add(time.Minute)}))
	_, err := s.ConsumeSignInRequest(ctx(t), store.HashToken("used"), "code")
	must(t, err)
	must(t, s.PutSignInRequest(ctx(t), store.HashToken("new"), &store.SignInRequest{Kind: "request", Payload: "p", ExpiresAt: now.Add(time.Hour)}))
	for _, g := range []struct {
		id  string
		exp time.Time
	}{
		{"g-long-expired", now.Add(-25 * time.Hour)}, // swept: expired more than a day ago
		{"g-just-expired", now.Add(-time.Hour)},      // kept: expired less than a day ago
		{"g-active", now.Add(time.Hour)},
	} {
		gr := newGrant(g.id, "u", "rt-"+g.id)
		gr.ExpiresAt = g.exp
		must(t, s.CreateOAuthGrant(ctx(t), gr))
	}
	e.clock.Advance(2 * time.Minute)
	n, err := s.Sweep(ctx(t))
	must(t, err)
	if n != 4 {
		t.Fatalf("swept %d rows, want 4 (client, request, used code, grant)", n)
	}
	db := raw(t, s)
	for table, want := range map[string]int{"oauth_clients": 2, "signin_requests": 1, "oauth_grants": 2} {
		var got int
		must(t, db.QueryRowContext(ctx(t), "SELECT COUNT(*) FROM "+table).Scan(&got))
		if got != want {
			t.Errorf("%s has %d rows after sweep, want %d", table, got, want)
		}
	}
	_, err = s.GetOAuthGrant(ctx(t), "g-long-expired")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetOAuthGrant(ctx(t), "g-just-expired")
	must(t, err)
	_, err = s.GetOAuthClient(ctx(t), "dcr:new")
	must(t, err)
	_, err = s.GetSignInRequest(ctx(t), store.HashToken("new"), "request")
	must(t, err)
}

// Secrets stored by testSignInNoPlaintext; none may appear in the database.
var signinSecrets = []string{"PLAINTEXT-SIGNIN-PAYLOAD-5e21", "PLAINTEXT-ID-TOKEN-0b9d", "the-code-handle-value", "the-refresh-token-value"}

func testSignInNoPlaintext(t *testing.T, b Backend) {
	e := b.setup(t)
	h := store.HashToken(signinSecrets[2])
	must(t, e.s.PutSignInRequest(ctx(t), h, &store.SignInRequest{Kind: "code", Payload: vault.Secret(signinSecrets[0]),
		ExpiresAt: e.clock.Now().Add(time.Minute)}))
	g := newGrant("grant-visible-id", "u", signinSecrets[3])
	g.IDToken = vault.Secret(signinSecrets[1])
	must(t, e.s.CreateOAuthGrant(ctx(t), g))
	dump := b.Dump(t, e.dsn)
	if !bytes.Contains(dump, []byte("grant-visible-id")) {
		t.Fatal("dump does not contain the stored rows: the check would prove nothing")
	}
	for _, s := range signinSecrets {
		if bytes.Contains(dump, []byte(s)) {
			t.Errorf("plaintext %q found at rest", s)
		}
	}
	// And they still read back.
	r, err := e.s.GetSignInRequest(ctx(t), h, "code")
	must(t, err)
	got, err := e.s.FindOAuthGrantByRefresh(ctx(t), store.HashToken(signinSecrets[3]))
	must(t, err)
	if r.Payload.Reveal() != signinSecrets[0] || got.IDToken.Reveal() != signinSecrets[1] {
		t.Fatal("sealed values did not round-trip")
	}
}

func testSignInAAD(t *testing.T, b Backend) {
	e := b.setup(t)
	s := e.s
	db := raw(t, s)
	exp := e.clock.Now().Add(time.Minute)
	expB := exp.Add(time.Second) // tells the rows apart in raw SQL
	ha, hb := store.HashToken("handle-a"), store.HashToken("handle-b")
	must(t, s.PutSignInRequest(ctx(t), ha, &store.SignInRequest{Kind: "code", Payload: "payload-a", ExpiresAt: exp}))
	must(t, s.PutSignInRequest(ctx(t), hb, &store.SignInRequest{Kind: "code", Payload: "payload-b", ExpiresAt: expB}))
	must(t, s.CreateOAuthGrant(ctx(t), newGrant("ga", "alice", "rt-a")))
	must(t, s.CreateOAuthGrant(ctx(t), newGrant("gb", "bob", "rt-b")))

	// A sign-in payload copied into another record's row.
	var payloadA string
	must(t, db.QueryRowContext(ctx(t), fmt.Sprintf(`SELECT payload FROM signin_requests WHERE expires_at = %d`, exp.UnixMilli())).Scan(&payloadA))
	if _, err := db.ExecContext(ctx(t), fmt.Sprintf(`UPDATE signin_requests SET payload = '%s' WHERE expires_at = %d`, payloadA, expB.UnixMilli())); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetSignInRequest(ctx(t), hb, "code")
	wantErr(t, err, vault.ErrDecrypt)
	if msg := err.Error(); strings.Contains(msg, "payload-a") || strings.Contains(msg, payloadA[8:]) || !strings.Contains(msg, "signin_request|") {
		t.Errorf("error %q carries a secret or the ciphertext, or does not name the record", msg)
	}
	_, err = s.ConsumeSignInRequest(ctx(t), hb, "code")
	wantErr(t, err, vault.ErrDecrypt)
	r, err := s.GetSignInRequest(ctx(t), ha, "code")
	must(t, err)
	if r.Payload.Reveal() != "payload-a" {
		t.Fatal("a's payload changed")
	}
	// The kind is bound too: a request relabelled as a code does not open.
	must(t, s.PutSignInRequest(ctx(t), store.HashToken("handle-c"), &store.SignInRequest{Kind: "request", Payload: "payload-c", ExpiresAt: exp}))
	if _, err := db.ExecContext(ctx(t), `UPDATE signin_requests SET kind = 'code' WHERE kind = 'request'`); err != nil {
		t.Fatal(err)
	}
	_, err = s.ConsumeSignInRequest(ctx(t), store.HashToken("handle-c"), "code")
	wantErr(t, err, vault.ErrDecrypt)

	// An ID token copied into another grant.
	var tokenA string
	must(t, db.QueryRowContext(ctx(t), `SELECT id_token FROM oauth_grants WHERE id = 'ga'`).Scan(&tokenA))
	if _, err := db.ExecContext(ctx(t), `UPDATE oauth_grants SET id_token = '`+tokenA+`' WHERE id = 'gb'`); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetOAuthGrant(ctx(t), "gb")
	wantErr(t, err, vault.ErrDecrypt)
	if msg := err.Error(); !strings.Contains(msg, "oauth_grant|gb|id_token") || strings.Contains(msg, "id-token-ga") {
		t.Errorf("error %q does not name the record, or carries the secret", msg)
	}
	_, err = s.FindOAuthGrantByRefresh(ctx(t), store.HashToken("rt-b"))
	wantErr(t, err, vault.ErrDecrypt)
	got, err := s.GetOAuthGrant(ctx(t), "ga")
	must(t, err)
	if got.IDToken.Reveal() != "id-token-ga" {
		t.Fatal("ga's ID token changed")
	}
}
