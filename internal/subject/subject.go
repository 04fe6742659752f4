// Package subject names the people the gateway acts for. A subject is "<namespace>|<sub>": the
// namespace says how the person was authenticated ("apikey", "jwt:<issuer>", "dev"), sub is the
// id that authentication gave them (the API key's consumer, the JWT's sub). Two equal subs from
// different namespaces are different people, so every stored record and cache key uses the whole
// subject. The subject of a shared-oauth connection is Shared.
package subject

import "strings"

// Subject is a namespaced subject, "<namespace>|<sub>".
type Subject string

// Shared is the subject of a shared-oauth connection (one for every caller of the upstream).
const Shared Subject = "shared"

// Namespaces of the built-in authentication methods.
const (
	// APIKey is the namespace of api-key-inbound consumers.
	APIKey = "apikey"
	// JWTPrefix starts the namespace of a JWT's subject: "jwt:" + the issuer, exactly as the
	// token's iss claim has it. open-id-jwt-auth-inbound and a sign-in at the same IdP
	// (mcp-oauth-inbound) give a person the same subject.
	JWTPrefix = "jwt:"
	// Dev is the namespace of the loopback-only development sign-in.
	Dev = "dev"
)

// New builds the subject of sub in namespace.
func New(namespace, sub string) Subject { return Subject(namespace + "|" + sub) }

// JWT builds the subject of a JWT's sub from issuer iss.
func JWT(iss, sub string) Subject { return New(JWTPrefix+iss, sub) }

// Split returns the namespace and the sub; a subject without a namespace (Shared) has none.
func (s Subject) Split() (namespace, sub string) {
	if ns, sub, ok := strings.Cut(string(s), "|"); ok {
		return ns, sub
	}
	return "", string(s)
}

// Namespace returns the namespace.
func (s Subject) Namespace() string { ns, _ := s.Split(); return ns }

// Display is how pages and the CLI show the subject to a person: the sub alone (the namespace
// is shown where it matters, beside it).
func (s Subject) Display() string { _, sub := s.Split(); return sub }

// String returns the subject as stored.
func (s Subject) String() string { return string(s) }
