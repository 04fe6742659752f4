package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcpgate/mcpgate/internal/problem"
)

// csrfContext separates CSRF MACs from anything else the same key might sign.
const csrfContext = "mcpgate/web/csrf/v1\x00"

// MinCSRFKeyLen is the shortest key NewCSRF accepts.
const MinCSRFKeyLen = 16

// CSRF makes and checks form tokens bound to a value the form acts on (a browser ticket id, a
// session id). A token is HMAC-SHA256(key, binding), base64url without padding: stateless, so
// every replica that shares the key (derived with HKDF from the master key) agrees.
type CSRF struct {
	key []byte
}

// NewCSRF returns a CSRF with a copy of key. It panics when key is shorter than MinCSRFKeyLen:
// that is a wiring bug, not a runtime condition.
func NewCSRF(key []byte) *CSRF {
	if len(key) < MinCSRFKeyLen {
		panic(fmt.Sprintf("web: CSRF key of %d bytes, want at least %d", len(key), MinCSRFKeyLen))
	}
	return &CSRF{key: append([]byte(nil), key...)}
}

func (c *CSRF) mac(binding string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(csrfContext))
	m.Write([]byte(binding))
	return m.Sum(nil)
}

// Token returns the token for binding.
func (c *CSRF) Token(binding string) string {
	return base64.RawURLEncoding.EncodeToString(c.mac(binding))
}

// Verify reports whether token is the token for binding, in constant time.
func (c *CSRF) Verify(binding, token string) bool {
	got, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	return hmac.Equal(got, c.mac(binding))
}

// ErrCrossOrigin is the cause inside the error SameOriginPost returns.
var ErrCrossOrigin = errors.New("cross-origin form post")

// SameOriginPost checks that a form POST comes from a page of publicOrigin (the gateway's public
// URL; only its scheme, host and port count). In order:
//   - an Origin header other than "null" must equal publicOrigin;
//   - otherwise a Sec-Fetch-Site header must be "same-origin" or "none";
//   - otherwise a Referer header must name publicOrigin;
//   - a POST with none of them is accepted: old clients and privacy tools strip them, and the
//     CSRF token is what protects the form (DESIGN.md §3).
//
// "Origin: null" names no origin (a no-referrer page, a sandboxed frame), so the next signal
// decides. The error is a *problem.Error with status 403 and reason "cross_origin_post" wrapping
// ErrCrossOrigin; its Detail is safe to show.
func SameOriginPost(r *http.Request, publicOrigin string) error {
	want, err := originOf(publicOrigin)
	if err != nil {
		return fmt.Errorf("checking form origin: public origin %q: %w", publicOrigin, err)
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		got, err := originOf(o)
		if err != nil || got != want {
			return crossOrigin(fmt.Errorf("%w: Origin %q, want %q", ErrCrossOrigin, o, want))
		}
		return nil
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		if s == "same-origin" || s == "none" {
			return nil
		}
		return crossOrigin(fmt.Errorf("%w: Sec-Fetch-Site %q", ErrCrossOrigin, s))
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		got, err := originOf(ref)
		if err != nil || got != want {
			return crossOrigin(fmt.Errorf("%w: Referer from another origin, want %q", ErrCrossOrigin, want))
		}
	}
	return nil
}

func crossOrigin(cause error) error {
	return problem.New(http.StatusForbidden,
		"This form was sent from another site. Open the link from your MCP client again.", cause).
		WithReason("cross_origin_post")
}

// originOf returns the serialized origin (scheme://host[:port], lower case, default port
// dropped) of an absolute http(s) URL.
func originOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("not an absolute http(s) URL")
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}
