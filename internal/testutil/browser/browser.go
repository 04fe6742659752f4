// Package browser drives Debian's headless Chromium from tests through chromedp: a fresh browser per
// test (own user-data-dir, so no cookies), a handful of blocking helpers that fail the test with a
// screenshot when something does not happen in time, and full-page PNG screenshots saved as test
// artifacts.
//
//	b := browser.New(t)
//	b.Navigate(srv.URL + "/connect?browserTicket=…")
//	b.ClickNavigate(`button[name="decision"][value="approve"]`)
//	if got := b.Text("h1"); got != "Linear is connected" { … }
//	b.Screenshot("connected")
//
// Chromium is found at $MCPGATE_CHROMIUM, then chromium, chromium-browser, google-chrome on PATH.
// When it is missing the test is skipped locally and fails under CI=true. Install it with
//
//	apt-get install -y --no-install-recommends chromium
//
// Screenshots go to $MCPGATE_TEST_ARTIFACTS, default <repo>/test-artifacts/, named after the test.
package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// InstallHint is the command that installs the browser this package drives.
const InstallHint = "apt-get install -y --no-install-recommends chromium"

// Defaults.
const (
	// DefaultTimeout bounds each helper call (navigation, click, query, screenshot).
	DefaultTimeout = 30 * time.Second
	// startTimeout bounds the browser's start: two shared cores can make it slow, never this slow.
	startTimeout = 60 * time.Second
	// DesktopWidth and DesktopHeight are the default window.
	DesktopWidth  = 1280
	DesktopHeight = 800
	// PhoneWidth and PhoneHeight are Phone's viewport (a 6.1" phone in CSS pixels).
	PhoneWidth  = 390
	PhoneHeight = 844
)

// Browser is one headless Chromium with one tab. Its methods fail the test on error, so call them
// from the test's goroutine.
type Browser struct {
	t       testing.TB
	ctx     context.Context // the tab; never carries a deadline (it would end the browser)
	timeout time.Duration
	dir     string

	mu      sync.Mutex
	console []string
	shots   map[string]int
	view    viewport
}

// Option configures New.
type Option func(*options)

type options struct {
	timeout time.Duration
	width   int
	height  int
	flags   map[string]any
}

// WithTimeout sets how long each helper call may take (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithWindowSize sets the window size in CSS pixels (default 1280×800).
func WithWindowSize(width, height int) Option {
	return func(o *options) { o.width, o.height = width, height }
}

// WithFlag adds a Chromium command-line flag (value true for a bare switch).
func WithFlag(name string, value any) Option {
	return func(o *options) { o.flags[name] = value }
}

// ExecPath returns the Chromium binary to use, or "" when none is installed. An explicit
// $MCPGATE_CHROMIUM is returned as is, so that a wrong setting fails loudly instead of skipping.
func ExecPath() string {
	if p := os.Getenv("MCPGATE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Require returns the Chromium binary, or skips the test (fails it under CI=true) when none is
// installed.
func Require(t testing.TB) string {
	t.Helper()
	p := ExecPath()
	if p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("MCPGATE_CHROMIUM=%s: %v", p, err)
			return ""
		}
		return p
	}
	msg := "chromium not found (set MCPGATE_CHROMIUM or install it: " + InstallHint + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// New starts a fresh headless Chromium for t and stops it when t ends.
func New(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	execPath := Require(t)
	o := options{timeout: DefaultTimeout, width: DesktopWidth, height: DesktopHeight, flags: map[string]any{}}
	for _, opt := range opts {
		opt(&o)
	}
	userData := t.TempDir() // removed after the browser has exited: cleanups run last-in first-out

	alloc := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(userData),
		chromedp.WindowSize(o.width, o.height),
		chromedp.NoSandbox, // Chromium refuses to start as root with its sandbox
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
	)
	for name, v := range o.flags {
		alloc = append(alloc, chromedp.Flag(name, v))
	}
	output := new(lockedBuffer)
	alloc = append(alloc, chromedp.CombinedOutput(output))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), alloc...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	stop := func() { cancelTab(); cancelAlloc() }

	b := &Browser{t: t, ctx: ctx, timeout: o.timeout, dir: ArtifactsDir(), shots: map[string]int{}}

	// The first Run starts the browser and must not carry a deadline, so a watchdog bounds it.
	watchdog := time.AfterFunc(startTimeout, stop)
	err := chromedp.Do(ctx)
	if !watchdog.Stop() {
		err = fmt.Errorf("chromium did not start within %v: %w", startTimeout, err)
	}
	if err != nil {
		stop()
		t.Fatalf("starting chromium %s: %v\nchromium output:\n%s", execPath, err, output.tail(4096))
	}
	t.Cleanup(stop)
	b.setViewport("setting the viewport", viewport{width: o.width, height: o.height})

	// Collect console messages and browser log entries (CSP violations land here).
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, string(m.Type)+": "+m.Text)
			b.mu.Unlock()
		}
	}()
	return b
}

// Context returns the tab's chromedp context, for actions the helpers do not cover. Derive a
// timeout from it for each call; never cancel it.
func (b *Browser) Context() context.Context { return b.ctx }

// run runs steps with the helper timeout and fails the test (with a screenshot) on error.
func (b *Browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(what, err)
	}
}

func (b *Browser) fail(what string, err error) {
	b.t.Helper()
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (timeout %v)", err, b.timeout)
	}
	shot := b.save("failure", true)
	b.t.Fatalf("browser: %s: %v (url %s; screenshot %s; console %q)", what, err, b.location(), shot, b.Console())
}

// Navigate opens url and waits for the page to load.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	b.run("navigating to "+url, chromedp.Navigate(url))
}

// Click waits for the element matching the CSS selector to be visible and clicks it. It does not
// wait for a navigation the click may start; use ClickNavigate for that.
func (b *Browser) Click(selector string) {
	b.t.Helper()
	b.run("clicking "+selector, chromedp.Click(chromedp.CSS(selector)))
}

// ClickNavigate clicks the element matching the CSS selector and waits until the page it leads
// to (after any redirects) has loaded: a form's submit button, a link.
func (b *Browser) ClickNavigate(selector string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(selector))))
	if err != nil {
		b.fail("clicking "+selector+" and waiting for the next page", err)
	}
}

// WaitVisible waits until the element matching the CSS selector is visible.
func (b *Browser) WaitVisible(selector string) {
	b.t.Helper()
	b.run("waiting for "+selector, chromedp.WaitVisible(chromedp.CSS(selector)))
}

// Text returns the rendered text (innerText) of the first element matching the CSS selector,
// waiting for it to be visible.
func (b *Browser) Text(selector string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(selector), chromedp.NodeVisible))
	if err != nil {
		b.fail("reading text of "+selector, err)
	}
	return strings.TrimSpace(s)
}

// Eval evaluates a JavaScript expression in the page and returns its value as T. For assertions
// about the rendered page (computed styles, element counts); the pages under test need none.
func Eval[T any](b *Browser, expression string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expression))
	if err != nil {
		b.fail("evaluating "+expression, err)
	}
	return v
}

// FrameTexts returns the rendered text (body.innerText) of every child frame of the page, read
// through DevTools in an isolated world: it works for sandboxed and cross-origin frames that the
// page's own scripts cannot reach, and runs no script of the frame. Frames that Chromium runs in
// their own process (sandboxed srcdoc frames, cross-site frames) come after the in-process ones.
func (b *Browser) FrameTexts() []string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	texts, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]string, error) {
		tree, err := cdp.Call(ctx, t, page.GetFrameTree, cdp.Empty{})
		if err != nil {
			return nil, fmt.Errorf("reading the frame tree: %w", err)
		}
		var out []string
		for _, child := range tree.FrameTree.ChildFrames {
			text, err := frameText(ctx, t, child.Frame.ID)
			if err != nil {
				return nil, err
			}
			out = append(out, text)
		}
		return out, nil
	})
	if err != nil {
		b.fail("reading frame texts", err)
	}

	infos, err := chromedp.Targets(ctx)
	if err != nil {
		b.fail("listing targets", err)
	}
	tab := chromedp.FromContext(b.ctx).Target.TargetID
	for _, info := range infos {
		if info.Type != "iframe" || info.ParentID != tab {
			continue
		}
		fctx, fcancel := chromedp.NewContext(ctx, chromedp.WithTargetID(info.TargetID), chromedp.WithDetachOnCancel())
		text, err := chromedp.Run(fctx, func(ctx context.Context, t *chromedp.Target) (string, error) {
			tree, err := cdp.Call(ctx, t, page.GetFrameTree, cdp.Empty{})
			if err != nil {
				return "", fmt.Errorf("reading the frame tree: %w", err)
			}
			return frameText(ctx, t, tree.FrameTree.Frame.ID)
		})
		fcancel()
		if err != nil {
			b.fail("reading out-of-process frame "+info.URL, err)
		}
		texts = append(texts, text)
	}
	return texts
}

// frameText evaluates body.innerText in a fresh isolated world of the frame.
func frameText(ctx context.Context, t *chromedp.Target, id cdp.FrameID) (string, error) {
	world, err := cdp.Call(ctx, t, page.CreateIsolatedWorld, page.CreateIsolatedWorldParams{FrameID: id, WorldName: "mcpgate-test"})
	if err != nil {
		return "", fmt.Errorf("entering frame %s: %w", id, err)
	}
	res, err := cdp.Call(ctx, t, runtime.Evaluate, runtime.EvaluateParams{
		Expression:    "document.body ? document.body.innerText : ''",
		ContextID:     world.ExecutionContextID,
		ReturnByValue: new(true),
	})
	if err != nil {
		return "", fmt.Errorf("reading frame %s: %w", id, err)
	}
	if res.ExceptionDetails != nil {
		return "", fmt.Errorf("reading frame %s: %s", id, res.ExceptionDetails.Text)
	}
	var text string
	if err := json.Unmarshal(res.Result.Value, &text); err != nil {
		return "", fmt.Errorf("reading frame %s: %w", id, err)
	}
	return text, nil
}

// CurrentURL returns the URL of the page the tab shows.
func (b *Browser) CurrentURL() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		b.fail("reading the location", err)
	}
	return u
}

// WaitURL polls the tab's URL until match accepts it and returns that URL: for redirect chains
// that end somewhere the test does not control the timing of.
func (b *Browser) WaitURL(match func(url string) bool) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		if u, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
			if match(u) {
				return u
			}
			last = u
		}
		select {
		case <-ctx.Done():
			b.fail("waiting for a matching URL (last "+last+")", ctx.Err())
			return ""
		case <-tick.C:
		}
	}
}

// location is CurrentURL for failure messages: it never fails the test.
func (b *Browser) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "unknown"
	}
	return u
}

// viewport is the emulated viewport; zero width means the window as started.
type viewport struct {
	width, height int
	phone         bool
}

func (v viewport) action(height int) chromedp.Action[chromedp.Void] {
	if v.phone {
		return chromedp.EmulateViewport(int64(v.width), int64(height),
			chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	return chromedp.EmulateViewport(int64(v.width), int64(height))
}

func (b *Browser) setViewport(what string, v viewport) {
	b.t.Helper()
	b.run(what, v.action(v.height))
	b.mu.Lock()
	b.view = v
	b.mu.Unlock()
}

// Desktop sets a 1280×800 desktop viewport.
func (b *Browser) Desktop() {
	b.t.Helper()
	b.setViewport("setting the desktop viewport", viewport{width: DesktopWidth, height: DesktopHeight})
}

// Phone sets a 390×844 mobile viewport at device scale 2 with touch, like a current phone.
func (b *Browser) Phone() {
	b.t.Helper()
	b.setViewport("setting the phone viewport", viewport{width: PhoneWidth, height: PhoneHeight, phone: true})
}

// ColorScheme emulates prefers-color-scheme: "dark", "light", or "" for the browser's default.
func (b *Browser) ColorScheme(scheme string) {
	b.t.Helper()
	var features []*emulation.MediaFeature
	if scheme != "" {
		features = []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}
	}
	b.run("emulating prefers-color-scheme "+scheme, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: features})
		return err
	}))
}

// Press sends keys to the focused element, as a keyboard would ("\t" moves the focus, "\r"
// presses Enter). See chromedp's kb package for special keys.
func (b *Browser) Press(keys string) {
	b.t.Helper()
	b.run("pressing keys", chromedp.KeyEvent(keys))
}

// Screenshot saves a full-page PNG of the current page as <artifacts>/<test name>-<name>.png
// and returns its path.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	return b.save(name, false)
}

// save captures the whole page. Chromium does not paint out-of-process frames (sandboxed srcdoc
// frames among them) that lie beyond the viewport, so a tall page is captured by growing the
// viewport to the page's height for the shot and restoring it after.
func (b *Browser) save(name string, quiet bool) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	b.mu.Lock()
	v := b.view
	b.mu.Unlock()
	png, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		if v.width == 0 {
			return chromedp.FullScreenshot(100)(ctx, t)
		}
		h, err := chromedp.Evaluate[int](`Math.ceil(document.documentElement.scrollHeight)`)(ctx, t)
		if err != nil {
			return nil, err
		}
		if h > v.height {
			if _, err := v.action(h)(ctx, t); err != nil {
				return nil, err
			}
			defer func() { _, _ = v.action(v.height)(ctx, t) }()
		}
		return chromedp.CaptureScreenshot()(ctx, t)
	})
	if err == nil {
		err = os.MkdirAll(b.dir, 0o755)
	}
	path := filepath.Join(b.dir, b.fileName(name))
	if err == nil {
		err = os.WriteFile(path, png, 0o644)
	}
	if err != nil {
		if quiet {
			return "none (" + err.Error() + ")"
		}
		b.t.Fatalf("browser: saving screenshot %s: %v", name, err)
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

// fileName is unique per browser: a second shot with the same name gets a counter.
func (b *Browser) fileName(name string) string {
	base := sanitize(b.t.Name()) + "-" + sanitize(name)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.shots[base]++
	if n := b.shots[base]; n > 1 {
		base += fmt.Sprintf("-%d", n)
	}
	return base + ".png"
}

// lockedBuffer collects Chromium's output for a failure message.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) < 1<<20 { // Chromium is chatty on stderr (dbus); keep the start of it only
		l.buf = append(l.buf, p...)
	}
	return len(p), nil
}

func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf[max(0, len(l.buf)-n):])
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func sanitize(s string) string { return strings.Trim(unsafeChars.ReplaceAllString(s, "_"), "_") }

// Console returns the console messages and browser log entries seen so far ("error: Refused to
// apply inline style …" for a CSP violation).
func (b *Browser) Console() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

// ArtifactsDir returns where screenshots go: $MCPGATE_TEST_ARTIFACTS, else test-artifacts/ at
// the repository root (the directory holding .git above the test's working directory), else a
// directory under the system temp dir.
func ArtifactsDir() string {
	if d := os.Getenv("MCPGATE_TEST_ARTIFACTS"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err == nil {
		for {
			if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
				return filepath.Join(dir, "test-artifacts")
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return filepath.Join(os.TempDir(), "mcpgate-test-artifacts")
}
