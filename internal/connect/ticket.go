package connect

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// TicketTTL is how long a connect link works.
const TicketTTL = 15 * time.Minute

// Ticket is what a browser ticket says: who may connect which upstream for which route. It is the
// identity of the person opening the connect link (the link works in a fresh browser), so it is
// signed, short-lived, bound to (subject, upstream, operationId, elicitationId) and used once.
type Ticket struct {
	ID            string   `json:"jti"`
	Subject       string   `json:"sub"`  // namespaced subject, or subject.Shared.String() for a shared connection
	Mode          string   `json:"mode"` // user or shared
	UpstreamID    string   `json:"ups"`
	OperationID   string   `json:"op"`
	ElicitationID string   `json:"eid"`
	State         string   `json:"st"`            // authenticating or reconsent_required
	Scopes        []string `json:"scp,omitempty"` // scopes to ask for (step-up: the union)
	Added         []string `json:"add,omitempty"` // scopes new to this connection (step-up)
	Actor         string   `json:"act,omitempty"` // who asked (an admin connecting a shared slot)
	// ReturnTo is where the browser goes after connecting (the sign-in consent page that offered
	// the link); empty: the connected page.
	ReturnTo  string    `json:"ret,omitempty"`
	ExpiresAt time.Time `json:"exp"`
}

// Ticket errors. Messages are safe to show.
var (
	ErrTicketMalformed = errors.New("the connect link is malformed")
	ErrTicketSignature = errors.New("the connect link was not issued by this gateway")
	ErrTicketExpired   = errors.New("the connect link has expired")
	ErrTicketMismatch  = errors.New("the connect link is for another upstream or route")
)

// Signer seals and opens browser tickets with AES-256-GCM under a key derived from the vault key
// ring, so every replica agrees. Sealing (not only signing) keeps the subject out of the URL: the
// MCP spec forbids user information in an elicitation URL.
type Signer struct {
	aead cipher.AEAD
	now  func() time.Time
}

// NewSigner returns a Signer using key (32 bytes from vault.Ring.DeriveKey).
func NewSigner(key []byte) *Signer {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("connect: ticket key must be 32 bytes: " + err.Error())
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &Signer{aead: aead, now: time.Now}
}

// ticketAAD binds ticket ciphertexts to their purpose.
var ticketAAD = []byte("mcpgate browser ticket v1")

// New fills ID and ExpiresAt of t.
func (s *Signer) New(t Ticket) Ticket {
	t.ID = randomID()
	t.ExpiresAt = s.now().Add(TicketTTL).Truncate(time.Second)
	return t
}

// Sign seals t: base64url(nonce || AES-GCM ciphertext).
func (s *Signer) Sign(t Ticket) string {
	payload, _ := json.Marshal(t)
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(payload)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, payload, ticketAAD))
}

// Verify opens the ticket and checks its expiry. It does not consume it.
func (s *Signer) Verify(token string) (Ticket, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < s.aead.NonceSize()+s.aead.Overhead() {
		return Ticket{}, ErrTicketMalformed
	}
	raw, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], ticketAAD)
	if err != nil {
		return Ticket{}, ErrTicketSignature
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
