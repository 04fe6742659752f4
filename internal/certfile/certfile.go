// Package certfile serves a TLS certificate from a certificate file and a key file, and reloads the
// pair when either file changes, so a renewed certificate (cert-manager, certbot, a Kubernetes
// secret) is used without a restart.
//
// Changes are found by stat, not by a file watcher: a handshake checks the two files at most once
// per CheckInterval and reloads only when one of them is another file (a new inode: a rename or a
// swapped symlink, such as Kubernetes' ..data), or has another size or modification time. A pair
// that does not load (half written, a key that does not match) is logged once and the previous
// certificate stays in use until the files change again.
package certfile

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCheckInterval is how often, at most, handshakes look at the files. Two stats a second
// cost nothing next to a handshake, and a renewed certificate is in use a second after it lands.
const DefaultCheckInterval = time.Second

// Pair is a certificate and its key, loaded from files and reloaded when they change. Its
// GetCertificate goes into tls.Config.GetCertificate.
type Pair struct {
	certFile, keyFile string
	log               *slog.Logger
	interval          time.Duration
	now               func() time.Time

	cert atomic.Pointer[tls.Certificate]
	// next is when the files are next looked at (Unix nanoseconds); the handshake that moves it
	// forward does the check, the others go on with the current certificate.
	next atomic.Int64

	mu sync.Mutex // held by the one check in progress
	// seen is the state of the files last loaded, or last refused: a refused pair is logged once and
	// tried again only when the files change again.
	seen stamp
}

// Option configures a Pair.
type Option func(*Pair)

// WithCheckInterval sets how often, at most, the files are looked at (DefaultCheckInterval).
func WithCheckInterval(d time.Duration) Option { return func(p *Pair) { p.interval = d } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(p *Pair) { p.now = now } }

// Load reads the pair once and fails, naming the file, when it cannot: serve then refuses to start
// rather than serve without a certificate. log receives reloads, refused reloads, and a warning
// whenever the certificate loaded is expired or not yet valid.
func Load(certFile, keyFile string, log *slog.Logger, opts ...Option) (*Pair, error) {
	p := &Pair{certFile: certFile, keyFile: keyFile, log: log, interval: DefaultCheckInterval, now: time.Now}
	for _, o := range opts {
		o(p)
	}
	st, err := p.stat()
	if err != nil {
		return nil, err
	}
	c, err := p.load()
	if err != nil {
		return nil, err
	}
	now := p.now()
	p.warnIfNotValid(c, now)
	p.cert.Store(c)
	p.seen = st
	p.next.Store(now.Add(p.interval).UnixNano())
	return p, nil
}

// ServerConfig is the TLS configuration of a listener serving this certificate: TLS 1.2 at
// least, Go's default cipher suites and curves (TLS 1.3 preferred when the client has it), and
// ALPN offering h2 before http/1.1, so http.Server.ServeTLS speaks HTTP/2 to clients that can.
func (p *Pair) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: p.GetCertificate,
	}
}

// Certificate is the certificate in use.
func (p *Pair) Certificate() *tls.Certificate { return p.cert.Load() }

// GetCertificate returns the certificate in use, first reloading it when the interval has passed
// and the files have changed. It never fails once Load has succeeded: a pair that does not load
// leaves the previous certificate in use.
func (p *Pair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now := p.now()
	next := p.next.Load()
	if now.UnixNano() >= next && p.next.CompareAndSwap(next, now.Add(p.interval).UnixNano()) {
		p.check(now)
	}
	return p.cert.Load(), nil
}

// check reloads the pair when the files changed since they were last loaded or refused.
func (p *Pair) check(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Stat before reading: a change while reading is then seen by the next check, never missed.
	st, err := p.stat()
	if err == nil && st.same(p.seen) {
		return
	}
	if err == nil {
		var c *tls.Certificate
		if c, err = p.load(); err == nil {
			p.seen = st
			p.cert.Store(c)
			p.log.Info("TLS certificate reloaded", "cert", p.certFile, "key", p.keyFile,
				"serial", c.Leaf.SerialNumber.String(), "notAfter", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
			p.warnIfNotValid(c, now)
			return
		}
	}
	if st.same(p.seen) && p.seen.failed {
		return // already logged for this state of the files
	}
	st.failed = true
	p.seen = st
	p.log.Error("TLS certificate not reloaded: keeping the previous one until the files change again",
		"cert", p.certFile, "key", p.keyFile, "error", err)
}

// warnIfNotValid logs a certificate that is expired or not yet valid: it is served all the same
// (there is no other), and clients refuse it.
func (p *Pair) warnIfNotValid(c *tls.Certificate, now time.Time) {
	if now.Before(c.Leaf.NotBefore) || now.After(c.Leaf.NotAfter) {
		p.log.Warn("TLS certificate is not valid now: clients will refuse it", "cert", p.certFile, "serial", c.Leaf.SerialNumber.String(),
			"notBefore", c.Leaf.NotBefore.UTC().Format(time.RFC3339), "notAfter", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
}

// load reads and parses the pair.
func (p *Pair) load() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(p.certFile)
	if err != nil {
		return nil, fmt.Errorf("reading the certificate file: %w", err)
	}
	keyPEM, err := os.ReadFile(p.keyFile)
	if err != nil {
		return nil, fmt.Errorf("reading the key file: %w", err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading the certificate %s with the key %s: %w", p.certFile, p.keyFile, err)
	}
	if c.Leaf == nil { // GODEBUG=x509keypairleaf=0 leaves it out
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parsing the certificate %s: %w", p.certFile, err)
		}
	}
	return &c, nil
}

// stamp is what a check compares: the two files as stat sees them, symlinks followed.
type stamp struct {
	cert, key os.FileInfo
	// failed marks a state of the files whose pair did not load (logged once).
	failed bool
}

func (p *Pair) stat() (stamp, error) {
	c, err := os.Stat(p.certFile)
	if err != nil {
		return stamp{}, fmt.Errorf("reading the certificate file: %w", err)
	}
	k, err := os.Stat(p.keyFile)
	if err != nil {
		return stamp{}, fmt.Errorf("reading the key file: %w", err)
	}
	return stamp{cert: c, key: k}, nil
}

// same reports whether both files are the same files, unchanged, as in o. A file that could not be
// read (nil) equals only another one that could not be read.
func (s stamp) same(o stamp) bool { return sameFile(s.cert, o.cert) && sameFile(s.key, o.key) }

func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
