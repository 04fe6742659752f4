package browser

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBrowserNavigateClickTextScreenshot(t *testing.T) {
	t.Setenv("MCPGATE_TEST_ARTIFACTS", t.TempDir())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>one</title><h1>First page</h1><a id="next" href="/two?x=1">next</a>`)
	})
	mux.HandleFunc("GET /two", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "seen", Value: "1", Path: "/"})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>two</title><h1>Second page</h1><p id="c">`+r.Header.Get("Cookie")+`</p>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	b := New(t)
	b.Navigate(srv.URL + "/")
	if got := b.Text("h1"); got != "First page" {
		t.Fatalf("h1 = %q, want First page", got)
	}
	b.ClickNavigate("#next")
	if got := b.CurrentURL(); got != srv.URL+"/two?x=1" {
		t.Fatalf("url = %q, want %q", got, srv.URL+"/two?x=1")
	}
	if got := b.WaitURL(func(u string) bool { return strings.HasSuffix(u, "/two?x=1") }); got != srv.URL+"/two?x=1" {
		t.Fatalf("WaitURL = %q", got)
	}
	if got := b.Text("h1"); got != "Second page" {
		t.Fatalf("h1 = %q, want Second page", got)
	}
	if got := Eval[int](b, `document.querySelectorAll("h1").length`); got != 1 {
		t.Fatalf("h1 count = %d", got)
	}

	path := b.Screenshot("second")
	if filepath.Dir(path) != os.Getenv("MCPGATE_TEST_ARTIFACTS") || !strings.HasSuffix(path, "TestBrowserNavigateClickTextScreenshot-second.png") {
		t.Fatalf("screenshot path = %q", path)
	}
	png, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a PNG: % x", png[:min(8, len(png))])
	}
	if again := b.Screenshot("second"); again == path {
		t.Fatalf("second screenshot with the same name overwrote %s", path)
	}

	// A second browser is fresh: no cookie from the first.
	b2 := New(t)
	b2.Navigate(srv.URL + "/two")
	if got := Eval[string](b2, `document.getElementById("c").textContent`); got != "" {
		t.Fatalf("fresh browser sent cookies %q", got)
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"TestX/sub case":   "TestX_sub_case",
		"consent-phone":    "consent-phone",
		"../../etc/passwd": ".._.._etc_passwd",
		"a\x00b":           "a_b",
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeTB records what Require does instead of ending the test.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatal(args ...any) {
	if f.fatal == "" && f.skip == "" {
		f.fatal = fmt.Sprint(args...)
	}
}
func (f *fakeTB) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }
func (f *fakeTB) Skip(args ...any) {
	if f.fatal == "" && f.skip == "" {
		f.skip = fmt.Sprint(args...)
	}
}

func TestRequireWithoutChromium(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("MCPGATE_CHROMIUM", "")

	t.Setenv("CI", "")
	f := &fakeTB{TB: t}
	if p := Require(f); p != "" || f.skip == "" || f.fatal != "" {
		t.Fatalf("local: path %q, skip %q, fatal %q; want a skip", p, f.skip, f.fatal)
	}
	if !strings.Contains(f.skip, InstallHint) {
		t.Errorf("skip message %q lacks the install command", f.skip)
	}

	t.Setenv("CI", "true")
	f = &fakeTB{TB: t}
	if p := Require(f); p != "" || f.fatal == "" || f.skip != "" {
		t.Fatalf("CI: path %q, skip %q, fatal %q; want a failure", p, f.skip, f.fatal)
	}

	t.Setenv("CI", "")
	t.Setenv("MCPGATE_CHROMIUM", "/nonexistent/chromium")
	f = &fakeTB{TB: t}
	if Require(f); f.fatal == "" {
		t.Fatalf("a wrong MCPGATE_CHROMIUM skipped (%q) instead of failing", f.skip)
	}
}
