package connect

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TicketTTL is how long a connect link works.
const TicketTTL = 15 * time.Minute

// Ticket is what a browser ticket says: who may connect which upstream for which route. It is the
// identity of the person opening the connect link (the link works in a fresh browser), so it is
// signed, short-lived, bound to (subject, upstream, operationId, elicitationId) and used once.
type Ticket struct {
	ID            string    `json:"jti"`
	Subject       string    `json:"sub"`  // namespaced subject, or store.SharedSubject for a shared connection
	Mode          string    `json:"mode"` // user or shared
	UpstreamID    string    `json:"ups"`
	OperationID   string    `json:"op"`
	ElicitationID string    `json:"eid"`
	State         string    `json:"st"`            // authenticating or reconsent_required
	Scopes        []string  `json:"scp,omitempty"` // scopes to ask for (step-up: the union)
	Added         []string  `json:"add,omitempty"` // scopes new to this connection (step-up)
	Actor         string    `json:"act,omitempty"` // who asked (an admin connecting a shared slot)
	ExpiresAt     time.Time `json:"exp"`
}

// Ticket errors. Messages are safe to show.
var (
	ErrTicketMalformed = errors.New("the connect link is malformed")
	ErrTicketSignature = errors.New("the connect link was not issued by this gateway")
	ErrTicketExpired   = errors.New("the connect link has expired")
	ErrTicketMismatch  = errors.New("the connect link is for another upstream or route")
)

// Signer signs and verifies browser tickets with a key derived from the vault key ring, so every
// replica agrees.
type Signer struct {
	key []byte
	now func() time.Time
}

// NewSigner returns a Signer using key (32 bytes from vault.Ring.DeriveKey).
func NewSigner(key []byte) *Signer { return &Signer{key: key, now: time.Now} }

// New fills ID and ExpiresAt of t.
func (s *Signer) New(t Ticket) Ticket {
	t.ID = randomID()
	t.ExpiresAt = s.now().Add(TicketTTL).Truncate(time.Second)
	return t
}

// Sign encodes t as payload.signature (both base64url).
func (s *Signer) Sign(t Ticket) string {
	payload, _ := json.Marshal(t)
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(s.mac(p))
}

// Verify checks the signature and expiry and returns the ticket. It does not consume it.
func (s *Signer) Verify(token string) (Ticket, error) {
	p, sig, ok := strings.Cut(token, ".")
	if !ok || p == "" || sig == "" {
		return Ticket{}, ErrTicketMalformed
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return Ticket{}, ErrTicketMalformed
	}
	if !hmac.Equal(got, s.mac(p)) {
		return Ticket{}, ErrTicketSignature
	}
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return Ticket{}, ErrTicketMalformed
	}
	var t Ticket
	if err := json.Unmarshal(raw, &t); err != nil || t.ID == "" || t.UpstreamID == "" || t.Subject == "" {
		return Ticket{}, ErrTicketMalformed
	}
	if !s.now().Before(t.ExpiresAt) {
		return Ticket{}, ErrTicketExpired
	}
	return t, nil
}

func (s *Signer) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("mcpgate browser ticket v1\x00"))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// randomID returns 16 random bytes, base64url.
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// randomToken returns n random bytes, base64url (state, nonces).
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (t Ticket) String() string {
	return fmt.Sprintf("ticket(%s for %s on %s)", t.ID, t.Mode, t.UpstreamID)
}
