package certfile

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testutil/tlstest"
)

// clock is a time the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// logBuf is a logger whose records the test reads.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }

func (l *logBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func newLog() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

// serial is the serial of the certificate a handshake gets now.
func serial(t *testing.T, p *Pair) int64 {
	t.Helper()
	c, err := p.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || c == nil {
		t.Fatalf("GetCertificate: %v, %v", c, err)
	}
	return c.Leaf.SerialNumber.Int64()
}

func TestReloadsWhenTheFilesChange(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.WritePair(t, 1, certFile, keyFile)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	log, logs := newLog()
	p, err := Load(certFile, keyFile, log, WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	if got := serial(t, p); got != 1 {
		t.Fatalf("serial %d, want 1", got)
	}

	// A new pair written in place: not looked at before the interval has passed, then served.
	ca.WritePair(t, 2, certFile, keyFile)
	if got := serial(t, p); got != 1 {
		t.Fatalf("serial %d before the interval passed, want 1", got)
	}
	clk.add(DefaultCheckInterval)
	if got := serial(t, p); got != 2 {
		t.Fatalf("serial %d after the interval, want 2\n%s", got, logs)
	}
	if !strings.Contains(logs.String(), `msg="TLS certificate reloaded"`) || !strings.Contains(logs.String(), "serial=2") {
		t.Errorf("no reload logged:\n%s", logs)
	}

	// Unchanged files are not reloaded.
	before := p.Certificate()
	clk.add(DefaultCheckInterval)
	serial(t, p)
	if p.Certificate() != before {
		t.Error("unchanged files were reloaded")
	}
}

// TestBrokenRotationKeepsTheLastGoodCertificate: a pair that does not load (garbage key, a key of
// another certificate, a missing file) leaves the previous certificate in use, is logged once for
// each state of the files, and the next good pair is served.
func TestBrokenRotationKeepsTheLastGoodCertificate(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.WritePair(t, 1, certFile, keyFile)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	log, logs := newLog()
	p, err := Load(certFile, keyFile, log, WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	otherCert, _ := ca.Issue(t, 3)
	for _, tc := range []struct {
		name    string
		break_  func()
		wantErr string
	}{
		{"garbage key", func() { write(t, keyFile, []byte("garbage")) }, "tls: failed to find any PEM data in key input"},
		{"mismatched key", func() { write(t, keyFile, mustRead(t, keyFile+".good")); write(t, certFile, otherCert) },
			"tls: private key does not match public key"},
		{"missing key", func() { _ = os.Remove(keyFile) }, "reading the key file: stat " + keyFile + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good, _ := os.ReadFile(keyFile)
			if len(good) > 0 && !bytes.Contains(good, []byte("garbage")) {
				write(t, keyFile+".good", good)
			}
			before := strings.Count(logs.String(), "TLS certificate not reloaded")
			tc.break_()
			for range 3 {
				clk.add(DefaultCheckInterval)
				if got := serial(t, p); got != 1 {
					t.Fatalf("serial %d, want the previous certificate's 1", got)
				}
			}
			out := logs.String()
			if n := strings.Count(out, "TLS certificate not reloaded"); n != before+1 {
				t.Errorf("refusal logged %d times, want once:\n%s", n-before, out)
			}
			if !strings.Contains(out, tc.wantErr) || !strings.Contains(out, "level=ERROR") {
				t.Errorf("log lacks %q:\n%s", tc.wantErr, out)
			}
		})
	}

	ca.WritePair(t, 4, certFile, keyFile)
	clk.add(DefaultCheckInterval)
	if got := serial(t, p); got != 4 {
		t.Fatalf("serial %d after a good pair, want 4\n%s", got, logs)
	}
}

// TestSymlinkSwap: Kubernetes mounts a secret as tls.crt → ..data/tls.crt, ..data → a
// timestamped directory, and updates it by writing a new directory and renaming a new ..data
// link over the old one. The files the paths lead to change while the paths do not.
func TestSymlinkSwap(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	c, k := ca.Issue(t, 1)
	certFile, keyFile := tlstest.SwapSecret(t, dir, "..2026_12_03_10_00_00.1", c, k)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	log, logs := newLog()
	p, err := Load(certFile, keyFile, log, WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	if got := serial(t, p); got != 1 {
		t.Fatalf("serial %d, want 1", got)
	}
	c, k = ca.Issue(t, 2)
	tlstest.SwapSecret(t, dir, "..2026_12_03_11_00_00.2", c, k)
	clk.add(DefaultCheckInterval)
	if got := serial(t, p); got != 2 {
		t.Fatalf("serial %d after the swap, want 2\n%s", got, logs)
	}
}

// TestLoadNamesTheFile: a pair that cannot be loaded at start is an error naming the file.
func TestLoadNamesTheFile(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.WritePair(t, 1, certFile, keyFile)
	garbage := filepath.Join(dir, "garbage.pem")
	write(t, garbage, []byte("garbage"))
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"missing certificate", missing, keyFile, "reading the certificate file: stat " + missing + ": no such file or directory"},
		{"missing key", certFile, missing, "reading the key file: stat " + missing + ": no such file or directory"},
		{"garbage certificate", garbage, keyFile, "loading the certificate " + garbage + " with the key " + keyFile + ": tls: failed to find any PEM data in certificate input"},
		{"garbage key", certFile, garbage, "loading the certificate " + certFile + " with the key " + garbage + ": tls: failed to find any PEM data in key input"},
		{"directory", dir, keyFile, "reading the certificate file: read " + dir + ": is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, _ := newLog()
			_, err := Load(tc.cert, tc.key, log)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Load: %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestConcurrentHandshakes: handshakes racing a rotation all get a certificate, and one of them
// reloads (run with -race).
func TestConcurrentHandshakes(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.WritePair(t, 1, certFile, keyFile)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	log, logs := newLog()
	p, err := Load(certFile, keyFile, log, WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	ca.WritePair(t, 2, certFile, keyFile)
	clk.add(DefaultCheckInterval)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if c, err := p.GetCertificate(&tls.ClientHelloInfo{}); err != nil || c == nil {
				t.Errorf("GetCertificate: %v, %v", c, err)
			}
		})
	}
	wg.Wait()
	if got := serial(t, p); got != 2 {
		t.Fatalf("serial %d, want 2", got)
	}
	if n := strings.Count(logs.String(), "TLS certificate reloaded"); n != 1 {
		t.Errorf("reloaded %d times, want once:\n%s", n, logs)
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServerConfig: an http.Server serving with ServerConfig through ServeTLS (as serve does)
// speaks HTTP/2 to a client that offers it, HTTP/1.1 to one that does not, and refuses TLS 1.1.
func TestServerConfig(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.WritePair(t, 1, certFile, keyFile)
	log, _ := newLog()
	p, err := Load(certFile, keyFile, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{TLSConfig: p.ServerConfig(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	})}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	url := "https://" + ln.Addr().String() + "/"

	h2 := ca.Transport()
	h1 := ca.Transport()
	h1.ForceAttemptHTTP2 = false
	h1.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	for _, tc := range []struct {
		name      string
		rt        *http.Transport
		wantMajor int
	}{{"HTTP/2 client", h2, 2}, {"HTTP/1.1 client", h1, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.rt.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tc.rt}).Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.ProtoMajor != tc.wantMajor || string(body) != resp.Proto {
				t.Errorf("protocol %s (handler saw %s), want major %d", resp.Proto, body, tc.wantMajor)
			}
			if resp.TLS.Version < tls.VersionTLS13 {
				t.Errorf("TLS version %x, want 1.3 (both sides have it)", resp.TLS.Version)
			}
		})
	}

	old := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10} //nolint:gosec // a client too old on purpose
	if conn, err := tls.Dial("tcp", ln.Addr().String(), old); err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	} else if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.1 handshake: %v, want a protocol version alert", err)
	}
}

// TestWarnsOfACertificateNotValidNow: an expired certificate is loaded and served (there is no
// other) with a warning, at start and on a reload.
func TestWarnsOfACertificateNotValidNow(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	start := time.Now()
	c, k := ca.IssueValid(t, 1, start.Add(-48*time.Hour), start.Add(-24*time.Hour))
	write(t, certFile, c)
	write(t, keyFile, k)
	clk := &clock{t: start}
	log, logs := newLog()
	p, err := Load(certFile, keyFile, log, WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	const warning = `level=WARN msg="TLS certificate is not valid now: clients will refuse it"`
	if n := strings.Count(logs.String(), warning); n != 1 || !strings.Contains(logs.String(), "serial=1") {
		t.Errorf("%d warnings at start:\n%s", n, logs)
	}

	ca.WritePair(t, 2, certFile, keyFile) // valid: no warning
	clk.add(DefaultCheckInterval)
	if got := serial(t, p); got != 2 {
		t.Fatalf("serial %d, want 2", got)
	}
	c, k = ca.IssueValid(t, 3, start.Add(time.Hour), start.Add(48*time.Hour)) // not yet valid
	write(t, certFile, c)
	write(t, keyFile, k)
	clk.add(DefaultCheckInterval)
	if got := serial(t, p); got != 3 {
		t.Fatalf("serial %d, want 3", got)
	}
	if n := strings.Count(logs.String(), warning); n != 2 || !strings.Contains(logs.String(), "serial=3 notBefore=") {
		t.Errorf("%d warnings after two reloads, want 2:\n%s", n, logs)
	}
}
