// Package safehttp builds the HTTP clients mcpgate uses for every URL it learns from OAuth metadata
// (a challenge's resource_metadata, a PRM's authorization_servers, an AS's endpoints). Such URLs are
// chosen by whoever runs the upstream, so each request is checked against server-side request forgery:
//
//   - https only; http only for hosts on the operator's allow list (MCPGATE_SAFEHTTP_ALLOW);
//   - private, loopback, link-local, CGNAT, multicast and cloud-metadata addresses are refused at
//     dial time, after DNS resolution (net.Dialer.Control), so DNS rebinding cannot get around the
//     check; a host on the allow list, an address in an allowed CIDR, or a trusted host (the
//     operator-configured upstream) may use them;
//   - redirects are never followed: a 3xx is an error naming both URLs;
//   - response bodies are bounded (reading past the limit is an error, not a silent truncation);
//   - the whole exchange has a timeout.
//
// NewTransport applies the same scheme and address checks to callers that stream and follow
// redirects themselves (the proxy's redirect hops, followRedirects), without the body limit and
// the timeout.
//
// The package never reads the environment: the gateway parses MCPGATE_SAFEHTTP_ALLOW with
// ParseAllowList and passes it in.
package safehttp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxBodyBytes = 1 << 20 // 1 MiB: metadata documents and token replies are a few KiB
	DefaultTimeout      = 15 * time.Second
	defaultDialTimeout  = 5 * time.Second
)

// AllowList is the operator's list of hosts and networks that may be reached over http and on
// private addresses (development and tests, e.g. "127.0.0.1,localhost,::1").
type AllowList struct {
	hosts    map[string]bool
	prefixes []netip.Prefix
}

// ParseAllowList parses a comma-separated list of host names, IP addresses and CIDRs. Empty items
// are ignored; an item that is none of those is an error naming it.
func ParseAllowList(s string) (AllowList, error) {
	var a AllowList
	var errs []error
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if err := a.add(item); err != nil {
			errs = append(errs, err)
		}
	}
	return a, errors.Join(errs...)
}

func (a *AllowList) add(item string) error {
	if strings.Contains(item, "/") {
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return fmt.Errorf("safehttp allow list: %q is not a valid CIDR", item)
		}
		a.prefixes = append(a.prefixes, p.Masked())
		return nil
	}
	item = strings.TrimSuffix(strings.TrimPrefix(item, "["), "]")
	if ip, err := netip.ParseAddr(item); err == nil {
		a.prefixes = append(a.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		return nil
	}
	if strings.ContainsAny(item, " :@?#") {
		return fmt.Errorf("safehttp allow list: %q is not a host name, IP address or CIDR", item)
	}
	if a.hosts == nil {
		a.hosts = map[string]bool{}
	}
	a.hosts[strings.ToLower(strings.TrimSuffix(item, "."))] = true
	return nil
}

// allowsHost reports whether the URL host (name or IP literal) is on the list.
func (a AllowList) allowsHost(host string) bool {
	host = normalizeHost(host)
	if a.hosts[host] {
		return true
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return a.allowsAddr(ip)
	}
	return false
}

func (a AllowList) allowsAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// IsEmpty reports whether nothing is allowed.
func (a AllowList) IsEmpty() bool { return len(a.hosts) == 0 && len(a.prefixes) == 0 }

// Options configures a client.
type Options struct {
	// Allow lists hosts and networks that may use http and private addresses.
	Allow AllowList
	// TrustedHosts are hosts the operator configured (the upstream's rewritePattern host): they may
	// resolve to private addresses. They still need https unless they are on Allow too, or
	// TrustedHostsHTTP is set.
	TrustedHosts []string
	// TrustedHostsHTTP lets TrustedHosts use http as well: for the proxy, whose operator wrote the
	// upstream's scheme in rewritePattern.
	TrustedHostsHTTP bool
	// MaxBodyBytes bounds every response body (DefaultMaxBodyBytes when zero).
	MaxBodyBytes int64
	// Timeout bounds each request, body included (DefaultTimeout when zero).
	Timeout time.Duration
	// TLSConfig is used for https (tests pass the httptest server's roots); nil means the system's.
	TLSConfig *tls.Config
}

// Reason says why a request was refused.
type Reason string

// Reasons a request is refused.
const (
	ReasonScheme       Reason = "scheme_not_allowed"    // not https (and not http to an allowed host)
	ReasonAddress      Reason = "address_not_allowed"   // resolved to a private/loopback/link-local/metadata address
	ReasonRedirect     Reason = "redirect_not_followed" // the server answered 3xx
	ReasonBodyTooLarge Reason = "body_too_large"        // the response body exceeded the limit
	ReasonInvalidURL   Reason = "invalid_url"           // unparsable, userinfo, no host
)

// Error is a refused request. It names the URL (without query or fragment) and why.
type Error struct {
	URL    string
	Reason Reason
	Detail string
}

func (e *Error) Error() string {
	return "safehttp: refused " + e.URL + ": " + e.Detail
}

// ErrBodyTooLarge is wrapped by the *Error a body read returns past the limit.
var ErrBodyTooLarge = errors.New("response body too large")

// Unwrap lets errors.Is(err, ErrBodyTooLarge) work.
func (e *Error) Unwrap() error {
	if e.Reason == ReasonBodyTooLarge {
		return ErrBodyTooLarge
	}
	return nil
}

// DisplayURL is u without userinfo, query and fragment: safe to log and to put in errors (query
// strings may carry codes or state).
func DisplayURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return c.String()
}

// newGuard returns the guard of opts, without its base transport.
func newGuard(opts Options, limit int64) *guard {
	g := &guard{allow: opts.Allow, trusted: map[string]bool{}, trustedHTTP: opts.TrustedHostsHTTP, limit: limit, dialer: dialContext}
	for _, h := range opts.TrustedHosts {
		if h = normalizeHost(h); h != "" {
			g.trusted[h] = true
		}
	}
	return g
}

// NewTransport returns a RoundTripper with the same checks as New's clients (scheme, and every
// address dialled, after DNS) for callers that stream and follow redirects themselves (the
// proxy's redirect hops): it has no body limit, no timeout and no redirect policy, and never
// asks for compression. MaxBodyBytes and Timeout are ignored; bound each request with its context.
// Like New's clients it never dials through an HTTP proxy, which would be dialled instead of the
// target and defeat the address check.
func NewTransport(opts Options) http.RoundTripper {
	g := newGuard(opts, 0)
	g.base = &http.Transport{
		Proxy:                 nil,
		DialContext:           g.dial,
		TLSClientConfig:       opts.TLSConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	return g
}

// New returns a client that enforces opts on every request.
func New(opts Options) *http.Client {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	g := newGuard(opts, opts.MaxBodyBytes)
	base := &http.Transport{
		Proxy:                 nil, // a proxy would be dialled instead of the target and defeat the address check
		DialContext:           g.dial,
		TLSClientConfig:       opts.TLSConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		IdleConnTimeout:       60 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: opts.Timeout,
		ExpectContinueTimeout: time.Second,
	}
	g.base = base
	return &http.Client{
		Transport: g,
		Timeout:   opts.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			from := via[len(via)-1].URL
			return &Error{
				URL:    DisplayURL(from),
				Reason: ReasonRedirect,
				Detail: fmt.Sprintf("answered with a redirect to %s; redirects are not followed", DisplayURL(req.URL)),
			}
		},
	}
}

// guard is the RoundTripper that checks URLs before and addresses during the dial.
type guard struct {
	base        http.RoundTripper
	allow       AllowList
	trusted     map[string]bool
	trustedHTTP bool
	limit       int64 // 0: bodies are not bounded (NewTransport)
	// dialer dials with the address check in control; tests replace it to see what would be
	// dialled.
	dialer func(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error)
}

func dialContext(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	return d.DialContext(ctx, network, addr)
}

type hostKey struct{}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	u := req.URL
	shown := DisplayURL(u)
	if u == nil || u.Host == "" || u.User != nil {
		return nil, &Error{URL: shown, Reason: ReasonInvalidURL, Detail: "the URL must be absolute and carry no user info"}
	}
	host := normalizeHost(u.Hostname())
	switch u.Scheme {
	case "https":
	case "http":
		if !g.allow.allowsHost(host) && !(g.trustedHTTP && g.trusted[host]) {
			return nil, &Error{URL: shown, Reason: ReasonScheme, Detail: "http is only allowed for hosts on the operator allow list (MCPGATE_SAFEHTTP_ALLOW); use https"}
		}
	default:
		return nil, &Error{URL: shown, Reason: ReasonScheme, Detail: fmt.Sprintf("scheme %q is not allowed; use https", u.Scheme)}
	}
	// An address literal is checked before anything is dialled (the dial-time check below covers
	// names, after DNS).
	if ip, err := netip.ParseAddr(host); err == nil {
		if ae := g.refuse(host, ip); ae != nil {
			return nil, g.addressError(shown, host, ae)
		}
	}
	req = req.WithContext(context.WithValue(req.Context(), hostKey{}, host))
	resp, err := g.base.RoundTrip(req)
	if err != nil {
		var ae *addrError
		if errors.As(err, &ae) {
			return nil, g.addressError(shown, host, ae)
		}
		return nil, err
	}
	if g.limit <= 0 {
		return resp, nil
	}
	if resp.ContentLength > g.limit {
		_ = resp.Body.Close()
		return nil, &Error{URL: shown, Reason: ReasonBodyTooLarge, Detail: fmt.Sprintf("response of %d bytes exceeds the %d-byte limit", resp.ContentLength, g.limit)}
	}
	resp.Body = &limitedBody{rc: resp.Body, left: g.limit, url: shown, limit: g.limit}
	return resp, nil
}

func (g *guard) addressError(shown, host string, ae *addrError) *Error {
	what := fmt.Sprintf("%s resolves to %s, a %s address", host, ae.ip, ae.kind)
	if host == ae.ip.String() {
		what = fmt.Sprintf("%s is a %s address", host, ae.kind)
	}
	return &Error{URL: shown, Reason: ReasonAddress, Detail: what + "; only hosts on the operator allow list or the configured upstream may use such addresses"}
}

// refuse returns why host may not be reached at ip, or nil.
func (g *guard) refuse(host string, ip netip.Addr) *addrError {
	if host != "" && (g.trusted[host] || g.allow.hosts[host]) {
		return nil
	}
	ip = ip.Unmap()
	if g.allow.allowsAddr(ip) {
		return nil
	}
	if kind := blockedKind(ip); kind != "" {
		return &addrError{ip: ip, kind: kind}
	}
	return nil
}

// addrError is the dial-time refusal; RoundTrip turns it into an *Error naming the URL.
type addrError struct {
	ip   netip.Addr
	kind string
}

func (e *addrError) Error() string {
	return fmt.Sprintf("address %s is %s", e.ip, e.kind)
}

func (g *guard) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _ := ctx.Value(hostKey{}).(string)
	d := &net.Dialer{
		Timeout: defaultDialTimeout,
		// Control runs after DNS resolution with the literal address being dialled, for every
		// address tried, before the connection is attempted: the check cannot be raced by a
		// second, different DNS answer, and a refused address is never sent a packet.
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("safehttp: unexpected dial address %q", address)
			}
			if ae := g.refuse(host, ap.Addr()); ae != nil {
				return ae
			}
			return nil
		},
	}
	return g.dialer(ctx, d, network, addr)
}

// blocked lists special-purpose ranges beyond what netip's predicates cover.
var blocked = []struct {
	p    netip.Prefix
	kind string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
}

// blockedKind names the kind of a non-public address, or "" for a public one.
func blockedKind(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsLoopback():
		return "loopback"
	case ip == netip.AddrFrom4([4]byte{169, 254, 169, 254}) || ip == netip.MustParseAddr("fd00:ec2::254"):
		return "cloud metadata"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsPrivate():
		return "private"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, b := range blocked {
		if b.p.Contains(ip) {
			return b.kind
		}
	}
	return ""
}

// IsPublicAddr reports whether ip is a public unicast address (what an unlisted host must resolve to).
func IsPublicAddr(ip netip.Addr) bool { return blockedKind(ip) == "" }

func normalizeHost(h string) string {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap().String()
	}
	return h
}

// limitedBody fails the read that goes past the limit instead of truncating silently: a truncated
// JSON document could otherwise parse as a different, shorter one.
type limitedBody struct {
	rc    io.ReadCloser
	left  int64
	limit int64
	url   string
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, b.tooLarge()
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n - int(-b.left), b.tooLarge()
	}
	return n, err
}

func (b *limitedBody) tooLarge() error {
	return &Error{URL: b.url, Reason: ReasonBodyTooLarge, Detail: fmt.Sprintf("response body exceeds the %d-byte limit", b.limit)}
}

func (b *limitedBody) Close() error { return b.rc.Close() }

var _ http.RoundTripper = (*guard)(nil)
