package web

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/problem"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestCSRFTokenVerify(t *testing.T) {
	c := NewCSRF(testKey)
	tok := c.Token("ticket-1")
	if len(tok) != 43 || strings.ContainsAny(tok, "+/=") {
		t.Errorf("token %q is not unpadded base64url of 32 bytes", tok)
	}
	if tok != c.Token("ticket-1") {
		t.Error("token is not deterministic")
	}
	if !c.Verify("ticket-1", tok) {
		t.Error("own token refused")
	}
	other := NewCSRF([]byte("fedcba9876543210fedcba9876543210"))
	tests := []struct {
		name, binding, token string
	}{
		{"other binding", "ticket-2", tok},
		{"empty token", "ticket-1", ""},
		{"truncated", "ticket-1", tok[:42]},
		{"flipped char", "ticket-1", flip(tok)},
		{"padded", "ticket-1", tok + "="},
		{"standard base64", "ticket-1", strings.NewReplacer("-", "+", "_", "/").Replace(tok) + "x"},
		{"other key", "ticket-1", other.Token("ticket-1")},
		{"not base64", "ticket-1", "!!!"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c.Verify(tt.binding, tt.token) {
				t.Errorf("Verify(%q, %q) = true", tt.binding, tt.token)
			}
		})
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestNewCSRFCopiesKeyAndRefusesShortKeys(t *testing.T) {
	key := append([]byte(nil), testKey...)
	c := NewCSRF(key)
	tok := c.Token("b")
	key[0] ^= 0xff
	if !c.Verify("b", tok) {
		t.Error("CSRF shares the caller's key slice")
	}
	defer func() {
		if recover() == nil {
			t.Error("short key accepted")
		}
	}()
	NewCSRF([]byte("short"))
}

// TestSameOriginPost pins the strict rule: a form POST is accepted only with an Origin equal to
// the gateway's public origin, or else Sec-Fetch-Site: same-origin (what Chromium sends, with
// "Origin: null", for the gateway's own no-referrer pages). "Origin: null" alone, no signal at
// all, Sec-Fetch-Site other than same-origin and a Referer (never consulted) are refused.
func TestSameOriginPost(t *testing.T) {
	const public = "https://gw.example.com/base/"
	tests := []struct {
		name    string
		headers map[string]string
		ok      bool
	}{
		// Accepted.
		{"same origin", map[string]string{"Origin": "https://gw.example.com"}, true},
		{"same origin default port upper case", map[string]string{"Origin": "HTTPS://GW.example.com:443"}, true},
		{"same origin, same-origin fetch", map[string]string{"Origin": "https://gw.example.com", "Sec-Fetch-Site": "same-origin"}, true},
		{"null origin, same-origin fetch (Chromium on no-referrer pages)", map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}, true},
		{"no origin, same-origin fetch", map[string]string{"Sec-Fetch-Site": "same-origin"}, true},

		// Refused: no signal, or only a null origin.
		{"no headers", nil, false},
		{"null origin, no other signal", map[string]string{"Origin": "null"}, false},
		{"empty origin, no other signal", map[string]string{"Origin": ""}, false},

		// Refused: another origin, whatever else the request says.
		{"other origin", map[string]string{"Origin": "https://evil.example"}, false},
		{"other scheme", map[string]string{"Origin": "http://gw.example.com"}, false},
		{"other port", map[string]string{"Origin": "https://gw.example.com:8443"}, false},
		{"subdomain", map[string]string{"Origin": "https://a.gw.example.com"}, false},
		{"garbage origin", map[string]string{"Origin": "gw.example.com"}, false},
		{"other origin with same-origin fetch", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"}, false},
		{"origin wins over referer", map[string]string{"Origin": "https://evil.example", "Referer": "https://gw.example.com/x"}, false},

		// Refused: Sec-Fetch-Site other than same-origin.
		{"null origin, cross-site fetch", map[string]string{"Origin": "null", "Sec-Fetch-Site": "cross-site"}, false},
		{"null origin, same-site fetch", map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-site"}, false},
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"same-site fetch", map[string]string{"Sec-Fetch-Site": "same-site"}, false},
		{"user-initiated fetch", map[string]string{"Sec-Fetch-Site": "none"}, false},
		{"null origin, user-initiated fetch", map[string]string{"Origin": "null", "Sec-Fetch-Site": "none"}, false},
		{"unknown fetch site", map[string]string{"Sec-Fetch-Site": "Same-Origin"}, false},

		// Refused: a Referer is not a signal (the gateway's pages send none).
		{"same-origin referer alone", map[string]string{"Referer": "https://gw.example.com/base/auth/connections/x/connect?browserTicket=t"}, false},
		{"null origin, same-origin referer", map[string]string{"Origin": "null", "Referer": "https://gw.example.com/base/auth/connections/x/connect?browserTicket=t"}, false},
		{"cross-origin referer", map[string]string{"Referer": "https://evil.example/gw.example.com"}, false},
		{"garbage referer", map[string]string{"Referer": "::::"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "https://gw.example.com/base/auth/connections/x/connect", nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			err := SameOriginPost(r, public)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Status != http.StatusForbidden || pe.Reason != "cross_origin_post" || !errors.Is(err, ErrCrossOrigin) {
				t.Fatalf("error %v (%T), want a 403 cross_origin_post problem wrapping ErrCrossOrigin", err, err)
			}
			if strings.Contains(pe.Detail, "evil") || strings.Contains(err.Error(), "browserTicket") {
				t.Errorf("error leaks request data: detail %q, error %q", pe.Detail, err)
			}
		})
	}
}

func TestSameOriginPostBadPublicOrigin(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	err := SameOriginPost(r, "gw.example.com")
	var pe *problem.Error
	if err == nil || errors.As(err, &pe) {
		t.Fatalf("err = %v, want a plain configuration error", err)
	}
}

func TestOriginOf(t *testing.T) {
	for in, want := range map[string]string{
		"https://Example.COM/path?q":   "https://example.com",
		"http://example.com:80":        "http://example.com",
		"http://example.com:8080/":     "http://example.com:8080",
		"https://[::1]:8443/x":         "https://[::1]:8443",
		"http://127.0.0.1:55000/a/b/c": "http://127.0.0.1:55000",
	} {
		if got, err := originOf(in); err != nil || got != want {
			t.Errorf("originOf(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "null", "example.com", "ftp://example.com", "https://", "/relative"} {
		if got, err := originOf(in); err == nil {
			t.Errorf("originOf(%q) = %q, want an error", in, got)
		}
	}
}
