package proxy

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/safehttp"
)

// ReasonRedirectRefused is the reason code of the 502 a refused redirect answers
// (followRedirects: true).
const ReasonRedirectRefused = "upstream_redirect_refused"

// maxRedirects bounds the redirects one request follows, as browsers and net/http do.
const maxRedirects = 10

// redirectFollower sends the request through an http.Client so upstream redirects are followed
// (followRedirects: true). The request to the route's upstream goes through the engine's
// transport; every redirect hop after it through hops, the safehttp guard: public addresses
// only, except the upstream's own host and the operator's allow list (MCPGATE_SAFEHTTP_ALLOW), so
// an upstream cannot point the gateway at its private network or a cloud metadata address. A
// redirect that leaves the upstream's host is refused unless the route sets
// followRedirectsAcrossHosts, and one from https to http always is. The Client drops
// Authorization on a redirect to another host.
type redirectFollower struct{ c *http.Client }

func newRedirectFollower(origin *url.URL, first http.RoundTripper, allow safehttp.AllowList, acrossHosts bool) redirectFollower {
	opts := safehttp.Options{Allow: allow, TrustedHostsHTTP: true}
	if origin != nil {
		// The operator chose this host (and its scheme): it may be on a private network.
		opts.TrustedHosts = []string{origin.Hostname()}
	}
	if t, ok := first.(*http.Transport); ok && t.TLSClientConfig != nil {
		opts.TLSConfig = t.TLSClientConfig.Clone() // the roots the operator gave the upstream transport
	}
	hops := safehttp.NewTransport(opts)
	return redirectFollower{c: &http.Client{
		Transport:     hopRouter{first: first, hops: hops},
		CheckRedirect: redirectPolicy(acrossHosts),
	}}
}

func (f redirectFollower) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := f.c.Do(req)
	if ue, ok := errors.AsType[*url.Error](err); ok {
		// Keep the cause chain (timeouts, cancellation) without the URL, which may carry a query.
		err = ue.Err
	}
	if re, ok := errors.AsType[*redirectError](err); ok {
		return nil, re.problem()
	}
	if se, ok := errors.AsType[*safehttp.Error](err); ok {
		return nil, (&redirectError{url: se.URL, why: guardReason(se)}).withCause(se).problem()
	}
	return resp, err
}

// hopRouter sends the first request of a redirect chain through first (the upstream transport)
// and every redirect hop (a request the Client made from a redirect response) through hops.
type hopRouter struct{ first, hops http.RoundTripper }

func (h hopRouter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Response != nil {
		return h.hops.RoundTrip(req)
	}
	return h.first.RoundTrip(req)
}

// redirectPolicy is the Client's CheckRedirect: it refuses a hop before it is sent.
func redirectPolicy(acrossHosts bool) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		origin, from, to := via[0].URL, via[len(via)-1].URL, req.URL
		switch {
		case len(via) > maxRedirects:
			return &redirectError{url: safehttp.DisplayURL(to), why: "the upstream redirected more than 10 times"}
		case from.Scheme == "https" && to.Scheme != "https":
			return &redirectError{url: safehttp.DisplayURL(to), why: "it leaves https for " + to.Scheme + "; the gateway never follows such a redirect"}
		case !acrossHosts && !sameHost(origin, to):
			return &redirectError{url: safehttp.DisplayURL(to), why: "it points to another host than the route's upstream (" + origin.Host + "); set followRedirectsAcrossHosts: true on the route to follow redirects across hosts"}
		}
		// The Client sets Referer to the previous hop's URL, which may carry a query (and is the
		// upstream's business only): send the client's own, if any.
		req.Header.Del("Referer")
		if ref := via[0].Header.Values("Referer"); len(ref) > 0 {
			req.Header["Referer"] = ref
		}
		return nil
	}
}

// sameHost reports whether a and b name the same host and port (a port left out is its
// scheme's default, so http://h/ and https://h/ count as one host).
func sameHost(a, b *url.URL) bool {
	if !strings.EqualFold(strings.TrimSuffix(a.Hostname(), "."), strings.TrimSuffix(b.Hostname(), ".")) {
		return false
	}
	return a.Port() == b.Port() || (isDefaultPort(a) && isDefaultPort(b))
}

func isDefaultPort(u *url.URL) bool {
	switch u.Port() {
	case "":
		return true
	case "80":
		return u.Scheme == "http"
	case "443":
		return u.Scheme == "https"
	}
	return false
}

// guardReason says, for the client, why the safehttp guard refused a hop.
func guardReason(se *safehttp.Error) string {
	switch se.Reason {
	case safehttp.ReasonAddress:
		return "its address is not public (private, loopback, link-local or cloud metadata); a redirect may reach such an address only on the route's upstream host or a host on MCPGATE_SAFEHTTP_ALLOW"
	case safehttp.ReasonScheme:
		return "it does not use https; a redirect to another host than the route's upstream must use https unless the host is on MCPGATE_SAFEHTTP_ALLOW"
	case safehttp.ReasonInvalidURL:
		return "its URL carries user info or has no host"
	}
	return "the gateway's outbound request guard refused it (" + string(se.Reason) + ")"
}

// redirectError is a redirect hop the gateway refused to follow.
type redirectError struct {
	url, why string
	cause    error
}

func (e *redirectError) Error() string {
	return "proxy: refused to follow the upstream's redirect to " + e.url + ": " + e.why
}

func (e *redirectError) Unwrap() error { return e.cause }

func (e *redirectError) withCause(err error) *redirectError { e.cause = err; return e }

// problem is the 502 the client receives.
func (e *redirectError) problem() *problem.Error {
	return problem.New(http.StatusBadGateway, "The upstream redirected to "+e.url+", which the gateway does not follow: "+e.why+".", e).
		WithReason(ReasonRedirectRefused)
}
