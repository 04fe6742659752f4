package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func FuzzCSRF(f *testing.F) {
	c := NewCSRF(testKey)
	f.Add("ticket-1", "")
	f.Add("", c.Token(""))
	f.Add("ticket-1", c.Token("ticket-2"))
	f.Fuzz(func(t *testing.T, binding, token string) {
		if !c.Verify(binding, c.Token(binding)) {
			t.Fatalf("own token for %q refused", binding)
		}
		if c.Verify(binding, token) && token != c.Token(binding) {
			t.Fatalf("Verify(%q, %q) accepted a token that is not Token(%q)", binding, token, binding)
		}
	})
}

func FuzzSameOriginPost(f *testing.F) {
	const public = "https://gw.example.com"
	f.Add("https://gw.example.com", "", "")
	f.Add("null", "cross-site", "https://evil.example/")
	f.Add("", "", "https://gw.example.com/x?browserTicket=t")
	f.Add("https://gw.example.com:443", "same-origin", "")
	f.Fuzz(func(t *testing.T, origin, site, referer string) {
		r := httptest.NewRequest(http.MethodPost, public+"/connect", nil)
		r.Header["Origin"] = []string{origin}
		r.Header["Sec-Fetch-Site"] = []string{site}
		r.Header["Referer"] = []string{referer}
		err := SameOriginPost(r, public)
		if origin == public && err != nil {
			t.Fatalf("same origin refused: %v", err)
		}
		if err == nil && origin != "" && origin != "null" {
			if got, oerr := originOf(origin); oerr != nil || got != public {
				t.Fatalf("accepted Origin %q", origin)
			}
		}
	})
}
