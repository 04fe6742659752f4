package web

import (
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/mcpgate/mcpgate/internal/testutil/browser"
)

// TestBrowserStyleguide renders testdata/styleguide.html in the shared layout (wide) so the parts
// of the stylesheet the setup UI will use are seen, and kept readable, before that UI exists.
func TestBrowserStyleguide(t *testing.T) {
	tmpl := mustParsePage(os.DirFS("testdata"), "styleguide.html")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := renderPage(w, http.StatusOK, "styleguide", tmpl, cspBase()+"; form-action 'none'",
			layoutData{Title: "Setup", Wide: true})
		if err != nil {
			t.Error(err)
		}
	}))
	t.Cleanup(srv.Close)
	b := browser.New(t)
	b.Navigate(srv.URL)
	if got := b.Text("h1"); got != "Upstreams" {
		t.Fatalf("h1 = %q", got)
	}
	if w := browser.Eval[float64](b, `document.querySelector("main").getBoundingClientRect().width`); w <= 46*16 {
		t.Errorf("wide page main is %vpx wide", w)
	}
	checkStyled(t, b)
	shoot(b, "styleguide")
}
