// Package proxy is the engine behind the McpProxyHandler and urlRewriteHandler route handlers: an
// httputil.ReverseProxy (Rewrite, never Director) that forwards the request body byte for byte to
// the route's rewritePattern, streams the response back unbuffered (SSE flushed per event), runs
// the upstream's response through the outbound policies and response hooks, and returns every
// failure as a *problem.Error for the gateway to render.
package proxy

import (
	"errors"
	"net/url"
	"time"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// Export names, as config writes them.
const (
	MCPExport        = "McpProxyHandler"
	URLRewriteExport = "urlRewriteHandler"
)

// Defaults of the gateway-level settings (not Zuplo options; see Settings).
const (
	// DefaultHeaderTimeout is how long the upstream may take to send its response headers. It
	// never limits a response body: a stream has no total timeout.
	DefaultHeaderTimeout = 30 * time.Second
	// DefaultMaxRequestBody is the largest request body forwarded (4 MiB).
	DefaultMaxRequestBody int64 = 4 << 20
	// DefaultStreamWriteTimeout bounds one write of a streamed response to the client: a client
	// that does not take an SSE event for this long is gone. It is a per-write deadline, renewed on
	// every write, so an idle stream may stay open forever.
	DefaultStreamWriteTimeout = 60 * time.Second
)

// Settings are the gateway-level knobs of the engine (flags / MCPGATE_* variables, not route
// options), as the host passes them in policy.Host.Proxy. A zero field means its default.
type Settings = policy.ProxySettings

// Options are the route options shared by McpProxyHandler and urlRewriteHandler.
type Options struct {
	// RewritePattern is the upstream URL. The config loader resolves ${env.X}, checks it is a
	// literal http(s) URL and puts the parsed URL in policy.RouteInfo.Upstream, which the engine
	// uses; the raw string is kept only for messages and as a fallback.
	RewritePattern string `json:"rewritePattern"`
	// ForwardSearch appends the inbound query string to the upstream URL (default true; unset and
	// false differ, hence the pointer).
	ForwardSearch *bool `json:"forwardSearch,omitempty"`
	// FollowRedirects makes the gateway follow upstream redirects itself (default false: 3xx and
	// Location pass through to the client). Every hop after the first is dialled through the
	// safehttp guard: public addresses only, except the upstream's own host and the operator's
	// allow list (policy.ProxySettings.RedirectAllow).
	FollowRedirects bool `json:"followRedirects,omitempty"`
	// FollowRedirectsAcrossHosts (an mcpgate addition, only with FollowRedirects) lets a redirect
	// leave the upstream's host; by default such a redirect is refused with a 502.
	FollowRedirectsAcrossHosts bool `json:"followRedirectsAcrossHosts,omitempty"`
	// MTLSCertificate names a Zuplo project mTLS certificate. mcpgate has no certificate store
	// yet, so a non-empty value is a validation error rather than silently unauthenticated
	// traffic.
	MTLSCertificate string `json:"mtlsCertificate,omitempty"`
}

// forwardSearch returns the effective forwardSearch.
func (o *Options) forwardSearch() bool { return o.ForwardSearch == nil || *o.ForwardSearch }

// Validate checks the options offline. The loader checks rewritePattern's form (literal http(s)
// URL or exactly ${env.X}); here only presence is checked, so a problem is reported once.
func (o *Options) Validate() error {
	var errs []error
	if o.RewritePattern == "" {
		errs = append(errs, errors.New("options.rewritePattern: is required"))
	}
	if o.FollowRedirectsAcrossHosts && !o.FollowRedirects {
		errs = append(errs, errors.New("options.followRedirectsAcrossHosts: only with followRedirects: true"))
	}
	if o.MTLSCertificate != "" {
		errs = append(errs, errors.New("options.mtlsCertificate: mTLS upstream certificates are not supported in this build; remove the option"))
	}
	return errors.Join(errs...)
}

// MCPProxy is the McpProxyHandler route handler (aliases McpVirtualServerHandler and
// mcpVirtualServerHandler): POST only, GET and every other method answer 405.
type MCPProxy struct {
	Options
	// Settings may be set before Provision; zero fields fall back to the host's Proxy settings,
	// then to the defaults.
	Settings Settings `json:"-"`

	eng *engine
}

// URLRewrite is the urlRewriteHandler route handler: every method is forwarded.
type URLRewrite struct {
	Options
	Settings Settings `json:"-"`

	eng *engine
}

func init() {
	policy.Register(policy.Module{
		Export:  MCPExport,
		Aliases: []string{"McpVirtualServerHandler", "mcpVirtualServerHandler"},
		Kind:    policy.KindHandler,
		New:     func() any { return new(MCPProxy) },
	})
	policy.Register(policy.Module{
		Export: URLRewriteExport,
		Kind:   policy.KindHandler,
		New:    func() any { return new(URLRewrite) },
	})
}

// literalURL parses a rewritePattern that is a literal absolute http(s) URL; nil otherwise.
func literalURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil
	}
	return u
}
