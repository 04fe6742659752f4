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

// Verify reports whether token is the token for binding, in constant time. It compares the text:
// decoding first would also accept other spellings of the same bytes (base64 ignores line breaks
// and, unless strict, the unused low bits of the last character — found by FuzzCSRF).
func (c *CSRF) Verify(binding, token string) bool {
	return hmac.Equal([]byte(token), []byte(c.Token(binding)))
}

// ErrCrossOrigin is the cause inside the error SameOriginPost returns.
var ErrCrossOrigin = errors.New("cross-origin form post")

// SameOriginPost accepts a form POST only when the browser says it comes from the gateway's own
// pages: an Origin equal to publicOrigin, or else Sec-Fetch-Site: same-origin. Anything else is
// refused — another origin, "Origin: null" without Sec-Fetch-Site, and a request with no signal at
// all (which no current browser sends for a form post) — so a page elsewhere cannot submit the
// gateway's forms even with a valid CSRF token. Chromium posts the gateway's forms with
// "Origin: null" (the pages send Referrer-Policy: no-referrer) and "Sec-Fetch-Site: same-origin".
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
	switch s := r.Header.Get("Sec-Fetch-Site"); s {
	case "same-origin":
		return nil
	case "":
		return crossOrigin(fmt.Errorf("%w: neither an Origin of %q nor Sec-Fetch-Site: same-origin", ErrCrossOrigin, want))
	default:
		return crossOrigin(fmt.Errorf("%w: Sec-Fetch-Site %q", ErrCrossOrigin, s))
	}
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
