package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// personalWording is what a page may say only to the person whose own connection it is: a shared
// connection is made by an administrator for every user of the upstream, not "for you", and not
// from "your MCP client".
var personalWording = []string{"for you", "your MCP client", "Your MCP client", "you approved", "your own MCP client"}

// A shared-oauth consent page says, everywhere, that the grant is for every user of the upstream
// and that their calls will use the account the administrator signs in with.
func TestRenderConsentSharedWordingEverywhere(t *testing.T) {
	p := consentFixture()
	p.Shared = true
	p.Subject = "every user of Linear (the shared connection)"
	rec := httptest.NewRecorder()
	if err := RenderConsent(rec, p); err != nil {
		t.Fatal(err)
	}
	checkHeaders(t, rec, http.StatusOK)
	body := rec.Body.String()
	for _, bad := range personalWording {
		if strings.Contains(body, bad) {
			t.Errorf("shared consent page says %q", bad)
		}
	}
	for _, want := range []string{
		"store the access it grants for every user of Linear on this gateway, encrypted.",
		"<dt>Connecting for</dt>",
		"every user of Linear (the shared connection)",
		"Every call any user makes to Linear through this gateway will use the account you sign in with.",
		"go beyond what was approved before",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("shared consent page lacks %q", want)
		}
	}
	// The personal page keeps its wording.
	rec = httptest.NewRecorder()
	if err := RenderConsent(rec, consentFixture()); err != nil {
		t.Fatal(err)
	}
	if body := rec.Body.String(); !strings.Contains(body, "for you, encrypted.") || !strings.Contains(body, "<dt>Connecting as</dt>") ||
		strings.Contains(body, "every user of") {
		t.Error("the personal consent page lost its wording")
	}
}

// The result pages of a shared connection (connected, cancelled, denied) speak of the shared
// connection, not of "your MCP client".
func TestRenderResultSharedWording(t *testing.T) {
	for _, kind := range []ResultKind{ResultConnected, ResultCancelled, ResultDenied} {
		rec := httptest.NewRecorder()
		if err := RenderResult(rec, ResultPage{Kind: kind, DisplayName: "Linear", Shared: true}); err != nil {
			t.Fatal(err)
		}
		checkHeaders(t, rec, http.StatusOK)
		body := rec.Body.String()
		for _, bad := range personalWording {
			if strings.Contains(body, bad) {
				t.Errorf("%s: shared result page says %q", kind, bad)
			}
		}
		if !strings.Contains(body, "every user of Linear") {
			t.Errorf("%s: shared result page does not say who the connection is for", kind)
		}
	}
}

// SetPageHeaders sets exactly the headers every page of the gateway carries.
func TestSetPageHeaders(t *testing.T) {
	h := http.Header{}
	SetPageHeaders(h)
	for k, want := range map[string]string{
		"Cache-Control":              "no-store",
		"X-Frame-Options":            "DENY",
		"Referrer-Policy":            "no-referrer",
		"X-Content-Type-Options":     "nosniff",
		"Cross-Origin-Opener-Policy": "same-origin",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}
