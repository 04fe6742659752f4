// Package vault encrypts secrets at rest and keeps them out of logs.
package vault

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// redacted is what a Secret prints as anywhere but Reveal.
const redacted = "REDACTED"

// Secret is a string that never prints: fmt, slog and JSON all show REDACTED.
// Call Reveal at the one place the plaintext is needed (an outgoing header, an encryption).
type Secret string

// Reveal returns the plaintext.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s == "" }

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer, so %#v redacts too.
func (s Secret) GoString() string { return redacted }

// Format implements fmt.Formatter, so every verb (%s, %v, %q, %x, %d) redacts.
func (s Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON implements json.Marshaler: a Secret never leaves the process in JSON.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// UnmarshalJSON implements json.Unmarshaler: secrets are read from config as plain strings.
func (s *Secret) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = Secret(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler for encoders that prefer text.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
