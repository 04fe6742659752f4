package hydra_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"golang.org/x/oauth2"

	"github.com/mcpgate/mcpgate/internal/testutil/browser"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
)

// TestHydraChromium runs the authorization code flow in headless Chromium:
// Hydra's cookies, the login app's subject cookie and the redirects must
// work in a real browser, not only in AuthorizeHeadless.
func TestHydraChromium(t *testing.T) {
	t.Parallel()
	browser.Require(t)
	h := hydra.Start(t, hydra.Options{JWTAccessTokens: true})

	got := make(chan url.Values, 1)
	client := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.URL.Query():
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>client</title><h1 id="done">signed in</h1>`)
	}))
	t.Cleanup(client.Close)
	callback := client.URL + "/callback"

	c := h.CreateClient(t, hydra.ClientSpec{RedirectURIs: []string{callback}, TokenEndpointAuthMethod: "none"})
	cfg := h.OAuth2Config(c, callback, "mcp", "offline_access")
	verifier := oauth2.GenerateVerifier()

	b := browser.New(t)
	// The subject cookie belongs to the login app's origin.
	b.Navigate(h.LoginURL + "/error")
	browser.Eval[string](b, `document.cookie = "`+hydra.SubjectCookie+`=zoe; path=/"`)
	b.Navigate(cfg.AuthCodeURL(testState, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resourceURL)))
	if text := b.Text("#done"); text != "signed in" {
		t.Fatalf("landing page says %q", text)
	}
	q := <-got
	if q.Get("state") != testState || q.Get("code") == "" {
		t.Fatalf("callback query = %v", q)
	}
	tok, err := cfg.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchanging code: %v", err)
	}
	in := h.Introspect(t, tok.AccessToken)
	if in.Subject != "zoe" || len(in.Audience) != 1 || in.Audience[0] != resourceURL {
		t.Errorf("introspection = %+v, want subject zoe and audience %s", in, resourceURL)
	}
}
