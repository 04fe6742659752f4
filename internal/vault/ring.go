package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Ciphertext format, version 1 (text, so it fits any column type and a SQL LIKE can find rows by key):
//
//	mg1.<key id>.<base64url, unpadded: 12-byte nonce || AES-256-GCM sealed bytes>
//
// The key id is in clear so any replica knows which key of its ring opens it, and `mcpgate rekey` can
// count rows still under an old key with `LIKE 'mg1.<old>.%'`. The additional data (AAD) is the
// record key the caller names (see Record), so a ciphertext copied to another row does not open.
const (
	formatPrefix = "mg1."
	keySize      = 32
	nonceSize    = 12
	maxKeyIDLen  = 32
)

// Errors callers can test with errors.Is. Messages never carry plaintext or ciphertext.
var (
	// ErrUnknownKey means the ciphertext was sealed with a key id that is not in the ring: the key was
	// removed or lost. Only the records it sealed are affected; they must be re-created (reconnected).
	ErrUnknownKey = errors.New("sealed with a key that is not in the key ring")
	// ErrDecrypt means authentication failed: the ciphertext was altered, or it belongs to another
	// record (the additional data does not match).
	ErrDecrypt = errors.New("ciphertext does not authenticate for this record (altered, or moved from another record)")
	// ErrMalformed means the value is not a ciphertext in a known format.
	ErrMalformed = errors.New("malformed ciphertext")
)

// Ring is an ordered set of AES-256-GCM keys. The first key seals; every key opens.
// A Ring is immutable and safe for concurrent use.
type Ring struct {
	keys  []ringKey
	byID  map[string]*ringKey
	newID string
}

type ringKey struct {
	id   string
	raw  []byte
	aead cipher.AEAD
}

// NewRing builds a ring from raw 32-byte keys, newest (the one that seals) first.
func NewRing(keys ...Key) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("key ring is empty")
	}
	r := &Ring{byID: make(map[string]*ringKey, len(keys))}
	seen := make(map[string]bool, len(keys))
	for i, k := range keys {
		if err := validKeyID(k.ID); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		if len(k.Bytes) != keySize {
			return nil, fmt.Errorf("key %q: must be %d bytes, got %d", k.ID, keySize, len(k.Bytes))
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("key %q: duplicate key id", k.ID)
		}
		seen[k.ID] = true
		block, err := aes.NewCipher(k.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.ID, err)
		}
		r.keys = append(r.keys, ringKey{id: k.ID, raw: append([]byte(nil), k.Bytes...), aead: aead})
	}
	for i := range r.keys {
		r.byID[r.keys[i].id] = &r.keys[i]
	}
	r.newID = r.keys[0].id
	return r, nil
}

// Key is one entry of a ring.
type Key struct {
	ID    string
	Bytes []byte
}

// ParseRing parses MCPGATE_ENCRYPTION_KEYS: comma-separated "kid:base64key", key in standard base64
// of 32 bytes, the newest (sealing) key first. Errors name the entry by position and id, never the key.
func ParseRing(s string) (*Ring, error) {
	var keys []Key
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, b64, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("encryption key %d: want kid:base64key", i+1)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("encryption key %d (%q): not standard base64", i+1, id)
		}
		keys = append(keys, Key{ID: strings.TrimSpace(id), Bytes: raw})
	}
	if len(keys) == 0 {
		return nil, errors.New("no encryption key given: want kid:base64key[,kid:base64key…]")
	}
	return NewRing(keys...)
}

// GenerateKey returns a fresh ring entry "kid:base64key" for MCPGATE_ENCRYPTION_KEYS. The key id is
// the given id, or "k" followed by the UTC date and 4 random hex digits when id is empty.
func GenerateKey(id string, now func() string) (string, error) {
	var raw [keySize]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("generating key: %w", err)
	}
	if id == "" {
		var suffix [2]byte
		_, _ = rand.Read(suffix[:])
		id = fmt.Sprintf("k%s%x", now(), suffix)
	}
	if err := validKeyID(id); err != nil {
		return "", err
	}
	return id + ":" + base64.StdEncoding.EncodeToString(raw[:]), nil
}

func validKeyID(id string) error {
	if id == "" || len(id) > maxKeyIDLen {
		return fmt.Errorf("key id must be 1 to %d characters", maxKeyIDLen)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("key id %q: only letters, digits, _ and - are allowed", id)
		}
	}
	return nil
}

// NewestKeyID is the id of the key that seals.
func (r *Ring) NewestKeyID() string { return r.newID }

// KeyIDs lists the ring's key ids, newest first.
func (r *Ring) KeyIDs() []string {
	ids := make([]string, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.id
	}
	return ids
}

// Seal encrypts plaintext with the newest key, binding it to record (the additional data).
// An empty secret seals to the empty string, so "no token" needs no ciphertext.
func (r *Ring) Seal(plaintext Secret, record string) (string, error) {
	if plaintext.IsZero() {
		return "", nil
	}
	k := &r.keys[0]
	buf := make([]byte, nonceSize, nonceSize+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("sealing %s: %w", record, err)
	}
	buf = k.aead.Seal(buf, buf[:nonceSize], []byte(plaintext), aad(k.id, record))
	return formatPrefix + k.id + "." + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Open decrypts a ciphertext made by Seal for the same record. Errors wrap ErrUnknownKey,
// ErrDecrypt or ErrMalformed and name the record, never the ciphertext or plaintext.
func (r *Ring) Open(ciphertext, record string) (Secret, error) {
	if ciphertext == "" {
		return "", nil
	}
	kid, body, err := decode(ciphertext)
	if err != nil {
		return "", fmt.Errorf("decrypting %s: %w", record, err)
	}
	k := r.byID[kid]
	if k == nil {
		return "", fmt.Errorf("decrypting %s: key id %q: %w", record, kid, ErrUnknownKey)
	}
	pt, err := k.aead.Open(nil, body[:nonceSize], body[nonceSize:], aad(kid, record))
	if err != nil {
		return "", fmt.Errorf("decrypting %s: %w", record, ErrDecrypt)
	}
	return Secret(pt), nil
}

// IsCurrent reports whether ciphertext is sealed with the newest key (or is empty), that is whether
// rekey can leave it alone.
func (r *Ring) IsCurrent(ciphertext string) bool {
	return ciphertext == "" || strings.HasPrefix(ciphertext, r.CurrentPrefix())
}

// CurrentPrefix is the prefix every ciphertext sealed by the newest key starts with.
func (r *Ring) CurrentPrefix() string { return KeyPrefix(r.newID) }

// KeyPrefix is the prefix every ciphertext sealed by key id starts with (for SQL LIKE queries).
func KeyPrefix(kid string) string { return formatPrefix + kid + "." }

// KeyID returns the id of the key that sealed ciphertext.
func KeyID(ciphertext string) (string, error) {
	kid, _, err := decode(ciphertext)
	return kid, err
}

// decode splits a ciphertext into key id and nonce||sealed bytes.
func decode(ciphertext string) (kid string, body []byte, err error) {
	rest, ok := strings.CutPrefix(ciphertext, formatPrefix)
	if !ok {
		return "", nil, fmt.Errorf("%w: unknown format version", ErrMalformed)
	}
	kid, enc, ok := strings.Cut(rest, ".")
	if !ok || validKeyID(kid) != nil {
		return "", nil, fmt.Errorf("%w: bad key id", ErrMalformed)
	}
	body, err = base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return "", nil, fmt.Errorf("%w: bad encoding", ErrMalformed)
	}
	if len(body) < nonceSize+16 {
		return "", nil, fmt.Errorf("%w: too short", ErrMalformed)
	}
	return kid, body, nil
}

// aad binds the key id (so a ciphertext's clear key id cannot be swapped) and the record.
func aad(kid, record string) []byte { return []byte("mcpgate/v1|" + kid + "|" + record) }

// Record builds the additional data that names a stored secret, such as
// Record("connection", "linear", "user", "apikey|alice", "access"). Parts are escaped so that
// different tuples never produce the same string; the result is readable in error messages.
func Record(kind string, parts ...string) string {
	var b strings.Builder
	b.WriteString(kind)
	for _, p := range parts {
		b.WriteByte('|')
		for _, c := range p {
			if c == '|' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(c)
		}
	}
	return b.String()
}

// DeriveKey derives a 32-byte sub-key for purpose (such as "ticket", "csrf", "session") from the
// newest key with HKDF-SHA256. Every replica with the same ring derives the same key; rotating the
// newest key rotates every derived key.
func (r *Ring) DeriveKey(purpose string) []byte {
	k, err := hkdf.Key(sha256.New, r.keys[0].raw, []byte("mcpgate"), "mcpgate/derive/v1|"+purpose, keySize)
	if err != nil {
		// Only possible when the requested length exceeds 255*32 bytes.
		panic("vault: deriving key: " + err.Error())
	}
	return k
}
