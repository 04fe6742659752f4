package upstream

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/tracing"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"go.opentelemetry.io/otel/trace"
)

// Discovery is what discovery learned about an upstream.
type Discovery struct {
	// UpstreamID and UpstreamURL identify what was discovered.
	UpstreamID, UpstreamURL string
	// Resource is the canonical RFC 8707 resource (CanonicalResource).
	Resource string
	// PRMURL is the URL the protected-resource metadata was read from.
	PRMURL string
	// PRM is the accepted protected-resource metadata.
	PRM ProtectedResource
	// AS is the first authorization server that validated.
	AS AuthServer
	// Trace lists every step in order.
	Trace []TraceStep
	// FetchedAt is when discovery ran.
	FetchedAt time.Time
}

// ProtectedResource is the part of RFC 9728 metadata the gateway uses.
type ProtectedResource struct {
	Resource             string
	AuthorizationServers []string
	ScopesSupported      []string
	ResourceName         string
}

// AuthServer is the part of RFC 8414 / OpenID metadata the gateway uses.
type AuthServer struct {
	Issuer                            string
	MetadataURL                       string // where it was read
	AuthorizationEndpoint             string
	TokenEndpoint                     string
	RegistrationEndpoint              string
	RevocationEndpoint                string
	ScopesSupported                   []string
	CodeChallengeMethodsSupported     []string
	TokenEndpointAuthMethodsSupported []string
	ClientIDMetadataDocumentSupported bool
	// IssParameterSupported is authorization_response_iss_parameter_supported (RFC 9207).
	IssParameterSupported bool
}

// Outcome is the result of one discovery step.
type Outcome string

// Step outcomes.
const (
	OutcomeFound       Outcome = "found"
	OutcomeNotFound    Outcome = "not_found"   // non-200 answer
	OutcomeInvalid     Outcome = "invalid"     // answered, but not usable metadata
	OutcomeMismatch    Outcome = "mismatch"    // resource or issuer does not match
	OutcomeUnsupported Outcome = "unsupported" // valid, but no PKCE S256
	OutcomeRefused     Outcome = "refused"     // safehttp refused the URL (SSRF guard)
	OutcomeUnreachable Outcome = "unreachable" // network error, timeout, 5xx, 429
)

// Phases of discovery.
const (
	PhasePRM = "protected resource metadata"
	PhaseAS  = "authorization server metadata"
)

// TraceStep is one thing discovery tried: the setup UI's "Check now" shows the list.
type TraceStep struct {
	Phase   string  `json:"phase"`
	Source  string  `json:"source"` // option, challenge, path insertion, root, rfc8414, oidc path insertion, oidc path append
	URL     string  `json:"url"`
	Outcome Outcome `json:"outcome"`
	Status  int     `json:"status,omitempty"`
	Code    string  `json:"code,omitempty"` // error code this step would produce
	Detail  string  `json:"detail,omitempty"`
}

type discoveryEntry struct {
	d       *Discovery
	err     error
	expires time.Time
}

// Discover runs (or returns the cached) discovery for up. resourceMetadata is the upstream
// challenge's resource_metadata ("" when there was none). On failure it returns an *Error whose
// Trace lists what was tried; failures are cached for FailureTTL, successes for DiscoveryTTL.
func (e *Engine) Discover(ctx context.Context, up Upstream, resourceMetadata string) (*Discovery, error) {
	hint := resourceMetadata
	if up.ProtectedResourceMetadataURL != "" {
		hint = "" // the option wins; the challenge does not change what is fetched
	}
	key := up.ID + "\x00" + up.URL + "\x00" + up.ProtectedResourceMetadataURL + "\x00" + hint
	e.mu.Lock()
	if ent, ok := e.discovery[key]; ok && e.now().Before(ent.expires) {
		e.mu.Unlock()
		return ent.d, ent.err
	}
	e.mu.Unlock()
	v, err := e.shared(ctx, "discover\x00"+key, func() (any, error) {
		// Detached: one caller's cancellation must not fail the others sharing this discovery.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		d, err := e.discover(dctx, up, hint)
		ttl := e.opts.DiscoveryTTL
		if err != nil {
			ttl = e.opts.FailureTTL
		}
		e.mu.Lock()
		e.discovery[key] = &discoveryEntry{d: d, err: err, expires: e.now().Add(ttl)}
		e.mu.Unlock()
		return d, err
	})
	d, _ := v.(*Discovery)
	return d, err
}

// CheckNow runs discovery without the cache (the setup UI's "Check now") and caches the result.
func (e *Engine) CheckNow(ctx context.Context, up Upstream, resourceMetadata string) (*Discovery, error) {
	e.forgetDiscovery(up.ID)
	return e.Discover(ctx, up, resourceMetadata)
}

// Invalidate forgets the cached discovery and the client registrations of an upstream: after a
// token endpoint 404 or invalid_client (docs/architecture.md#caches-and-invalidation), the next
// connect starts afresh.
func (e *Engine) Invalidate(ctx context.Context, upstreamID string) error {
	e.forgetDiscovery(upstreamID)
	_, err := e.regs.DeleteRegistrations(ctx, upstreamID)
	return err
}

// ForgetDiscovery drops the cached discovery of an upstream (its OAuth settings changed by a
// reload); the next Discover runs afresh.
func (e *Engine) ForgetDiscovery(upstreamID string) { e.forgetDiscovery(upstreamID) }

func (e *Engine) forgetDiscovery(upstreamID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k := range e.discovery {
		if strings.HasPrefix(k, upstreamID+"\x00") {
			delete(e.discovery, k)
		}
	}
}

type candidate struct{ url, source string }

// prmCandidates lists PRM URLs in the order of docs/architecture.md#discovery-order: the option
// alone; else the challenge's resource_metadata, then RFC 9728 path insertion, then the root.
func prmCandidates(up Upstream, hint string) ([]candidate, error) {
	if up.ProtectedResourceMetadataURL != "" {
		if _, _, err := parseResourceID(up.ProtectedResourceMetadataURL); err != nil {
			return nil, &Error{Bucket: BucketGatewayConfig, Code: CodeInvalidOption, Reason: "option protectedResourceMetadataUrl: " + err.Error()}
		}
		return []candidate{{up.ProtectedResourceMetadataURL, "option"}}, nil
	}
	_, u, err := parseResourceID(up.URL)
	if err != nil {
		return nil, &Error{Bucket: BucketGatewayConfig, Code: CodeInvalidUpstreamURL, Reason: "the upstream URL (rewritePattern) is not usable: " + err.Error()}
	}
	var out []candidate
	if hint != "" {
		out = append(out, candidate{hint, "challenge"})
	}
	origin := u.Scheme + "://" + u.Host
	if p := strings.TrimRight(u.EscapedPath(), "/"); p != "" {
		out = append(out, candidate{origin + "/.well-known/oauth-protected-resource" + p, "path insertion"})
	}
	out = append(out, candidate{origin + "/.well-known/oauth-protected-resource", "root"})
	return out, nil
}

// asCandidates lists the metadata URLs for an issuer in the MCP spec's order.
func asCandidates(issuer string) ([]candidate, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("issuer %q is not an https URL without query or fragment", issuer)
	}
	origin := u.Scheme + "://" + u.Host
	p := strings.TrimRight(u.EscapedPath(), "/")
	if p == "" {
		return []candidate{
			{origin + "/.well-known/oauth-authorization-server", "rfc8414"},
			{origin + "/.well-known/openid-configuration", "oidc"},
		}, nil
	}
	return []candidate{
		{origin + "/.well-known/oauth-authorization-server" + p, "rfc8414 path insertion"},
		{origin + "/.well-known/openid-configuration" + p, "oidc path insertion"},
		{origin + p + "/.well-known/openid-configuration", "oidc path append"},
	}, nil
}

// severity orders failure codes: discovery reports the most telling failure when nothing works.
var severity = map[string]int{
	CodePRMNotFound:         1,
	CodeASMetadataNotFound:  1,
	CodeMetadataUnreachable: 2,
	CodeSSRFBlocked:         3,
	CodePRMInvalid:          4,
	CodeASMetadataInvalid:   4,
	CodePRMNoAuthServers:    5,
	CodeIssuerMismatch:      5,
	CodePRMResourceMismatch: 6,
	CodePKCES256Unsupported: 6,
}

type failure struct {
	code, reason string
	status       int
	bucket       Bucket
}

func (f *failure) worse(g failure) {
	if severity[g.code] > severity[f.code] {
		*f = g
	}
}

func (e *Engine) discover(ctx context.Context, up Upstream, hint string) (_ *Discovery, err error) {
	ctx, span := tracing.Start(ctx, "upstream discovery", trace.SpanKindInternal, tracing.AttrUpstreamID.String(up.ID))
	defer func() { tracing.End(span, err) }()
	d := &Discovery{UpstreamID: up.ID, UpstreamURL: up.URL, FetchedAt: e.now()}
	fail := func(f failure) (*Discovery, error) {
		return d, &Error{Bucket: f.bucket, Code: f.code, Reason: f.reason, HTTPStatus: f.status, Trace: d.Trace}
	}
	cands, err := prmCandidates(up, hint)
	if err != nil {
		return d, err
	}
	c := e.httpClient(up)

	// Protected-resource metadata: first candidate that validates.
	worst := failure{code: CodePRMNotFound, bucket: BucketOAuthSetup}
	found := false
	for _, cand := range cands {
		step := TraceStep{Phase: PhasePRM, Source: cand.source, URL: displayURL(cand.url)}
		var prm ProtectedResource
		var resource string
		var f failure
		if err := checkEndpoint(cand.url); err != nil {
			f = failure{code: CodePRMInvalid, bucket: BucketOAuthSetup, reason: "the resource_metadata URL " + err.Error()}
		} else {
			prm, resource, f = e.fetchPRM(ctx, c, up, cand.url)
		}
		step.Status = f.status
		if f.code != "" {
			step.Outcome, step.Code, step.Detail = outcomeFor(f.code), f.code, f.reason
			d.Trace = append(d.Trace, step)
			worst.worse(f)
			continue
		}
		step.Outcome = OutcomeFound
		step.Detail = fmt.Sprintf("resource %q, authorization servers %q", prm.Resource, prm.AuthorizationServers)
		d.Trace = append(d.Trace, step)
		d.PRM, d.PRMURL, d.Resource = prm, cand.url, resource
		found = true
		break
	}
	if !found {
		if worst.code == CodePRMNotFound {
			worst.reason = "no protected resource metadata (RFC 9728) was found for the upstream; set the option protectedResourceMetadataUrl if it lives elsewhere"
		}
		return fail(worst)
	}

	// Authorization servers: the first that validates is used (docs/architecture.md#discovery-order).
	worst = failure{code: CodeASMetadataNotFound, bucket: BucketOAuthSetup}
	for _, issuer := range d.PRM.AuthorizationServers {
		as, ok := e.discoverAS(ctx, c, issuer, d, &worst)
		if ok {
			d.AS = as
			return d, nil
		}
	}
	if worst.code == CodeASMetadataNotFound {
		worst.reason = fmt.Sprintf("no authorization server metadata (RFC 8414 or OpenID discovery) was found for %q", d.PRM.AuthorizationServers)
	}
	return fail(worst)
}

func outcomeFor(code string) Outcome {
	switch code {
	case CodePRMNotFound, CodeASMetadataNotFound:
		return OutcomeNotFound
	case CodePRMResourceMismatch, CodeIssuerMismatch:
		return OutcomeMismatch
	case CodePKCES256Unsupported:
		return OutcomeUnsupported
	case CodeSSRFBlocked:
		return OutcomeRefused
	case CodeMetadataUnreachable:
		return OutcomeUnreachable
	}
	return OutcomeInvalid
}

// fetchOne GETs a metadata URL and classifies transport and status failures.
func fetchOne(ctx context.Context, c httpDoer, rawURL, notFound string) (*reply, failure) {
	r, err := get(ctx, c, rawURL)
	if err != nil {
		code, bucket := transportCode(err)
		return nil, failure{code: code, bucket: bucket, reason: transportReason(rawURL, err)}
	}
	switch {
	case r.status == http.StatusOK:
		return r, failure{}
	case r.status == http.StatusTooManyRequests || r.status >= 500:
		return r, failure{code: CodeMetadataUnreachable, bucket: BucketUpstreamResponse, status: r.status, reason: fmt.Sprintf("%s answered HTTP %d", displayURL(rawURL), r.status)}
	case r.status >= 300 && r.status < 400:
		return r, failure{code: CodeSSRFBlocked, bucket: BucketOAuthSetup, status: r.status, reason: fmt.Sprintf("%s answered with a redirect (HTTP %d); redirects are not followed", displayURL(rawURL), r.status)}
	}
	return r, failure{code: notFound, bucket: BucketOAuthSetup, status: r.status, reason: fmt.Sprintf("%s answered HTTP %d", displayURL(rawURL), r.status)}
}

func (e *Engine) fetchPRM(ctx context.Context, c httpDoer, up Upstream, rawURL string) (ProtectedResource, string, failure) {
	r, f := fetchOne(ctx, c, rawURL, CodePRMNotFound)
	if f.code != "" {
		return ProtectedResource{}, "", f
	}
	invalid := func(why string) failure {
		return failure{code: CodePRMInvalid, bucket: BucketOAuthSetup, status: r.status, reason: fmt.Sprintf("protected resource metadata at %s is not usable: %s", displayURL(rawURL), why)}
	}
	var m oauthex.ProtectedResourceMetadata
	if err := decodeJSON(r.body, &m); err != nil {
		return ProtectedResource{}, "", invalid(err.Error())
	}
	if m.Resource == "" {
		return ProtectedResource{}, "", invalid("it has no resource")
	}
	resource, err := CanonicalResource(up.URL, m.Resource)
	if err != nil {
		ue := err.(*Error)
		return ProtectedResource{}, "", failure{code: ue.Code, bucket: ue.Bucket, status: r.status, reason: ue.Reason}
	}
	var servers []string
	for _, s := range m.AuthorizationServers {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(servers, s) {
			servers = append(servers, s)
		}
	}
	if len(servers) == 0 {
		return ProtectedResource{}, "", failure{code: CodePRMNoAuthServers, bucket: BucketOAuthSetup, status: r.status, reason: fmt.Sprintf("protected resource metadata at %s lists no authorization_servers", displayURL(rawURL))}
	}
	return ProtectedResource{Resource: m.Resource, AuthorizationServers: servers, ScopesSupported: m.ScopesSupported, ResourceName: m.ResourceName}, resource, failure{}
}

// discoverAS tries the metadata URLs of one issuer; it appends trace steps and raises worst.
func (e *Engine) discoverAS(ctx context.Context, c httpDoer, issuer string, d *Discovery, worst *failure) (AuthServer, bool) {
	cands, err := asCandidates(issuer)
	if err != nil {
		f := failure{code: CodeASMetadataInvalid, bucket: BucketOAuthSetup, reason: err.Error()}
		d.Trace = append(d.Trace, TraceStep{Phase: PhaseAS, Source: "authorization_servers", URL: displayURL(issuer), Outcome: OutcomeInvalid, Code: f.code, Detail: f.reason})
		worst.worse(f)
		return AuthServer{}, false
	}
	for _, cand := range cands {
		step := TraceStep{Phase: PhaseAS, Source: cand.source, URL: displayURL(cand.url)}
		as, f := fetchAS(ctx, c, issuer, cand.url)
		step.Status = f.status
		if f.code != "" {
			step.Outcome, step.Code, step.Detail = outcomeFor(f.code), f.code, f.reason
			d.Trace = append(d.Trace, step)
			worst.worse(f)
			if f.code == CodePKCES256Unsupported {
				return AuthServer{}, false // a valid document for this issuer: no other variant will differ
			}
			continue
		}
		step.Outcome = OutcomeFound
		step.Detail = fmt.Sprintf("issuer %q", as.Issuer)
		d.Trace = append(d.Trace, step)
		return as, true
	}
	return AuthServer{}, false
}

func fetchAS(ctx context.Context, c httpDoer, issuer, rawURL string) (AuthServer, failure) {
	r, f := fetchOne(ctx, c, rawURL, CodeASMetadataNotFound)
	if f.code != "" {
		return AuthServer{}, f
	}
	invalid := func(why string) failure {
		return failure{code: CodeASMetadataInvalid, bucket: BucketOAuthSetup, status: r.status, reason: fmt.Sprintf("authorization server metadata at %s is not usable: %s", displayURL(rawURL), why)}
	}
	var m oauthex.AuthServerMeta
	if err := decodeJSON(r.body, &m); err != nil {
		return AuthServer{}, invalid(err.Error())
	}
	if m.Issuer != issuer {
		return AuthServer{}, failure{code: CodeIssuerMismatch, bucket: BucketOAuthSetup, status: r.status,
			reason: fmt.Sprintf("authorization server metadata at %s names issuer %q, not %q as the protected resource metadata says; the metadata must not be used (RFC 8414 §3.3)", displayURL(rawURL), m.Issuer, issuer)}
	}
	for name, v := range map[string]string{"authorization_endpoint": m.AuthorizationEndpoint, "token_endpoint": m.TokenEndpoint} {
		if err := checkEndpoint(v); err != nil {
			return AuthServer{}, invalid(name + " " + err.Error())
		}
	}
	for name, v := range map[string]string{"registration_endpoint": m.RegistrationEndpoint, "revocation_endpoint": m.RevocationEndpoint} {
		if v == "" {
			continue
		}
		if err := checkEndpoint(v); err != nil {
			return AuthServer{}, invalid(name + " " + err.Error())
		}
	}
	if !slices.Contains(m.CodeChallengeMethodsSupported, "S256") {
		why := "does not list code_challenge_methods_supported"
		if len(m.CodeChallengeMethodsSupported) > 0 {
			why = fmt.Sprintf("lists code_challenge_methods_supported %q", m.CodeChallengeMethodsSupported)
		}
		return AuthServer{}, failure{code: CodePKCES256Unsupported, bucket: BucketOAuthSetup, status: r.status,
			reason: fmt.Sprintf("authorization server %q %s without S256; mcpgate requires PKCE with S256 and refuses to proceed", issuer, why)}
	}
	return AuthServer{
		Issuer:                            m.Issuer,
		MetadataURL:                       rawURL,
		AuthorizationEndpoint:             m.AuthorizationEndpoint,
		TokenEndpoint:                     m.TokenEndpoint,
		RegistrationEndpoint:              m.RegistrationEndpoint,
		RevocationEndpoint:                m.RevocationEndpoint,
		ScopesSupported:                   m.ScopesSupported,
		CodeChallengeMethodsSupported:     m.CodeChallengeMethodsSupported,
		TokenEndpointAuthMethodsSupported: m.TokenEndpointAuthMethodsSupported,
		ClientIDMetadataDocumentSupported: m.ClientIDMetadataDocumentSupported,
		IssParameterSupported:             m.AuthorizationResponseIssParameterSupported,
	}, failure{}
}

// checkEndpoint accepts absolute http(s) URLs only (no javascript:, data:, relative references).
// Whether http is allowed for the host is safehttp's decision when the URL is used.
func checkEndpoint(raw string) error {
	if raw == "" {
		return fmt.Errorf("is missing")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q is not an absolute https URL", displayURL(raw))
	}
	return nil
}
