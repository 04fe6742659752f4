package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testRing(t testing.TB, spec ...string) *Ring {
	t.Helper()
	var parts []string
	for _, id := range spec {
		parts = append(parts, id+":"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte(id[:1]), 32)))
	}
	r, err := ParseRing(strings.Join(parts, ","))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSealOpenRoundTrip(t *testing.T) {
	r := testRing(t, "a")
	rec := Record("connection", "linear", "user", "apikey|alice", "access")
	ct, err := r.Seal("tok-123", rec)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ct, "tok-123") || !strings.HasPrefix(ct, "mg1.a.") {
		t.Fatalf("ciphertext %q: want mg1.a. prefix and no plaintext", ct)
	}
	got, err := r.Open(ct, rec)
	if err != nil || got.Reveal() != "tok-123" {
		t.Fatalf("Open = %q, %v", got.Reveal(), err)
	}
	if empty, err := r.Seal("", rec); empty != "" || err != nil {
		t.Fatalf("Seal(empty) = %q, %v; want empty", empty, err)
	}
}

func TestOpenOtherRecordFailsNamingRecord(t *testing.T) {
	r := testRing(t, "a")
	alice := Record("connection", "linear", "user", "apikey|alice", "access")
	bob := Record("connection", "linear", "user", "apikey|bob", "access")
	ct, _ := r.Seal("alice-token", alice)
	_, err := r.Open(ct, bob)
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("err = %v, want ErrDecrypt", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, `connection|linear|user|apikey\|bob|access`) {
		t.Errorf("error %q does not name the record", msg)
	}
	if strings.Contains(msg, "alice-token") || strings.Contains(msg, ct) || strings.Contains(msg, ct[6:20]) {
		t.Errorf("error %q leaks plaintext or ciphertext", msg)
	}
}

func TestRecordIsUnambiguous(t *testing.T) {
	a := Record("connection", "x|y", "z")
	b := Record("connection", "x", "y|z")
	if a == b {
		t.Fatalf("Record collision: %q", a)
	}
}

func TestRingRotation(t *testing.T) {
	old := testRing(t, "old")
	ct, _ := old.Seal("s", "r")
	both := testRing(t, "new", "old")
	if got, err := both.Open(ct, "r"); err != nil || got != "s" {
		t.Fatalf("old ciphertext under new ring: %v", err)
	}
	if both.IsCurrent(ct) {
		t.Error("old ciphertext reported current")
	}
	ct2, _ := both.Seal("s", "r")
	if kid, _ := KeyID(ct2); kid != "new" {
		t.Errorf("sealed with %q, want newest key", kid)
	}
	onlyNew := testRing(t, "new")
	if _, err := onlyNew.Open(ct, "r"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("err = %v, want ErrUnknownKey", err)
	}
}

func TestSwappedKeyIDFails(t *testing.T) {
	// Two keys with identical bytes: the clear key id is bound in the AAD, so relabelling fails.
	k := bytes.Repeat([]byte{7}, 32)
	r, err := NewRing(Key{"a", k}, Key{"b", k})
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := r.Seal("s", "r")
	relabelled := strings.Replace(ct, "mg1.a.", "mg1.b.", 1)
	if _, err := r.Open(relabelled, "r"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("err = %v, want ErrDecrypt", err)
	}
}

func TestParseRingErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "no encryption key"},
		{"no colon", "abc", "want kid:base64key"},
		{"bad base64", "a:!!!", `encryption key 1 ("a"): not standard base64`},
		{"short key", "a:" + base64.StdEncoding.EncodeToString([]byte("short")), "must be 32 bytes, got 5"},
		{"bad id", "a b:" + base64.StdEncoding.EncodeToString(make([]byte, 32)), "only letters"},
		{"duplicate", "a:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + ",a:" + base64.StdEncoding.EncodeToString(make([]byte, 32)), "duplicate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRing(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDeriveKey(t *testing.T) {
	a1 := testRing(t, "a", "b")
	a2 := testRing(t, "a")
	if !bytes.Equal(a1.DeriveKey("ticket"), a2.DeriveKey("ticket")) {
		t.Error("same newest key derives different keys")
	}
	if bytes.Equal(a1.DeriveKey("ticket"), a1.DeriveKey("csrf")) {
		t.Error("purposes share a key")
	}
	if bytes.Equal(a1.DeriveKey("ticket"), testRing(t, "b", "a").DeriveKey("ticket")) {
		t.Error("rotating the newest key did not rotate derived keys")
	}
	if len(a1.DeriveKey("x")) != 32 {
		t.Error("derived key is not 32 bytes")
	}
}

func TestLoadDevelopmentGeneratesOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	r1, warn, err := Load(LoadOptions{DataDir: dir})
	if err != nil || warn == "" {
		t.Fatalf("Load = %v, warning %q; want a warning", err, warn)
	}
	fi, err := os.Stat(filepath.Join(dir, DevKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	r2, warn2, err := Load(LoadOptions{DataDir: dir})
	if err != nil || warn2 == "" {
		t.Fatalf("second Load = %v, warning %q; want the warning on every start", err, warn2)
	}
	ct, _ := r1.Seal("x", "r")
	if _, err := r2.Open(ct, "r"); err != nil {
		t.Fatalf("second start cannot open the first one's ciphertext: %v", err)
	}
}

func TestLoadProductionRefuses(t *testing.T) {
	dir := t.TempDir()
	_, _, err := Load(LoadOptions{DataDir: dir, Production: true})
	if !errors.Is(err, ErrNoKeyInProduction) || !strings.Contains(err.Error(), "mcpgate keys generate-encryption-key") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, DevKeyFile)); err == nil {
		t.Error("production generated a key file")
	}
}

func TestLoadConfiguredKeysWin(t *testing.T) {
	line, err := GenerateKey("prod1", nil)
	if err != nil {
		t.Fatal(err)
	}
	r, warn, err := Load(LoadOptions{Keys: line, DataDir: t.TempDir(), Production: true})
	if err != nil || warn != "" || r.NewestKeyID() != "prod1" {
		t.Fatalf("Load = %v, %q, %v", r, warn, err)
	}
	_, _, err = Load(LoadOptions{Keys: "prod1:" + strings.Repeat("A", 10)})
	if err == nil || strings.Contains(err.Error(), strings.Repeat("A", 10)) {
		t.Fatalf("bad key error %v must not echo the key", err)
	}
}

func TestSecretRedacts(t *testing.T) {
	s := Secret("hunter2")
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "token", s, "nested", struct{ T Secret }{s})
	js, _ := json.Marshal(map[string]any{"token": s, "ptr": &s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %q %x %#v %+v", s, s, s, s, s, struct{ T Secret }{s}), logged.String(), string(js)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("leaked: %q", out)
		}
	}
}

// FuzzOpen feeds arbitrary strings to the ciphertext decoder: it must never panic, never succeed on a
// value Seal did not produce for that record, and never echo its input in an error.
func FuzzOpen(f *testing.F) {
	r := testRing(f, "a", "b")
	good, _ := r.Seal("token", "rec")
	for _, seed := range []string{
		good, "", "mg1.", "mg1.a.", "mg1.a.AAAA", "mg1..x", "mg2.a.AAAA", "mg1.zz.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		good[:len(good)-2], good + "A", strings.Replace(good, "mg1.a.", "mg1.b.", 1), "mg1.a.====", "mg1.a.\x00\xff",
	} {
		f.Add(seed, "rec")
	}
	f.Fuzz(func(t *testing.T, ct, rec string) {
		pt, err := r.Open(ct, rec)
		if err != nil {
			if len(ct) > 8 && strings.Contains(err.Error(), ct) {
				t.Fatalf("error echoes ciphertext: %v", err)
			}
			return
		}
		if ct != "" && !(ct == good && rec == "rec" && pt == "token") {
			// A forged ciphertext that authenticates would be a break of AES-GCM; a fuzzer finding one means a bug here.
			if _, kerr := KeyID(ct); kerr != nil {
				t.Fatalf("Open accepted a value KeyID rejects: %q", ct)
			}
		}
	})
}

func BenchmarkSealOpen2KiB(b *testing.B) {
	r := testRing(b, "a")
	tok := Secret(strings.Repeat("x", 2048))
	rec := Record("connection", "linear", "user", "apikey|alice", "access")
	b.SetBytes(2048)
	b.ReportAllocs()
	for b.Loop() {
		ct, err := r.Seal(tok, rec)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Open(ct, rec); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLoadDevelopmentConcurrentStartsAgree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	rings := make(chan *Ring, 8)
	for range 8 {
		go func() {
			r, _, err := Load(LoadOptions{DataDir: dir})
			if err != nil {
				t.Error(err)
			}
			rings <- r
		}()
	}
	var first *Ring
	for range 8 {
		r := <-rings
		if r == nil {
			t.FailNow()
		}
		if first == nil {
			first = r
		} else if r.NewestKeyID() != first.NewestKeyID() {
			t.Fatalf("concurrent starts generated different keys: %s, %s", r.NewestKeyID(), first.NewestKeyID())
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data dir holds %d files, want only %s", len(entries), DevKeyFile)
	}
}
