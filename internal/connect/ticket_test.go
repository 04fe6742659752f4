package connect

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTicketSealedBoundAndExpiring(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	s := NewSigner(key)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	tk := s.New(Ticket{Subject: "apikey|alice", Mode: "user", UpstreamID: "linear", OperationID: "op", State: "authenticating"})
	raw := s.Sign(tk)

	// The subject is not readable from the URL.
	dec, _ := base64.RawURLEncoding.DecodeString(raw)
	if strings.Contains(raw, "alice") || bytes.Contains(dec, []byte("alice")) {
		t.Fatal("ticket reveals the subject")
	}
	got, err := s.Verify(raw)
	if err != nil || got.Subject != "apikey|alice" || got.UpstreamID != "linear" || got.ID != tk.ID {
		t.Fatalf("verify: %+v %v", got, err)
	}
	// Tampering with any byte fails.
	b := []byte(raw)
	b[len(b)/2] ^= 1
	if _, err := s.Verify(string(b)); err == nil {
		t.Error("tampered ticket accepted")
	}
	// Another gateway's key fails.
	if _, err := NewSigner(bytes.Repeat([]byte{8}, 32)).Verify(raw); !errors.Is(err, ErrTicketSignature) {
		t.Errorf("foreign key: %v", err)
	}
	// Expiry after 15 minutes.
	now = now.Add(TicketTTL)
	if _, err := s.Verify(raw); !errors.Is(err, ErrTicketExpired) {
		t.Errorf("expired: %v", err)
	}
	for _, junk := range []string{"", "x", "!!!", strings.Repeat("A", 10)} {
		if _, err := s.Verify(junk); err == nil {
			t.Errorf("%q accepted", junk)
		}
	}
}

func FuzzTicketVerify(f *testing.F) {
	s := NewSigner(bytes.Repeat([]byte{1}, 32))
	f.Add(s.Sign(s.New(Ticket{Subject: "a", UpstreamID: "u"})))
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		_, _ = s.Verify(raw) // never panics
	})
}
