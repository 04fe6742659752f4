package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/tracing"
	"github.com/mcpgate/mcpgate/internal/vault"
	"go.opentelemetry.io/otel/trace"
)

// RegistrationKey identifies a cached client registration (docs/architecture.md#registration-modes).
type RegistrationKey struct {
	Issuer      string
	UpstreamID  string
	RedirectURI string
}

// Registration is a client the AS issued to the gateway (DCR), cached.
type Registration struct {
	RegistrationKey
	Method       string // dcr
	ClientID     string
	ClientSecret vault.Secret
	AuthMethod   string
	RegisteredAt time.Time
	ExpiresAt    time.Time // zero: does not expire
}

// ErrNoRegistration is what RegistrationCache.GetRegistration returns for a missing or expired entry.
var ErrNoRegistration = errors.New("no client registration")

// RegistrationCache stores client registrations. The engine keeps none of its own state: the
// gateway passes one backed by its store (internal/connect), tests use memoryRegistrations.
type RegistrationCache interface {
	// GetRegistration returns the registration or ErrNoRegistration.
	GetRegistration(ctx context.Context, k RegistrationKey) (*Registration, error)
	// PutRegistration creates or replaces a registration.
	PutRegistration(ctx context.Context, r *Registration) error
	// DeleteRegistrations removes every registration of an upstream.
	DeleteRegistrations(ctx context.Context, upstreamID string) (int, error)
}

// memoryRegistrations is an in-process RegistrationCache.
type memoryRegistrations struct {
	mu  sync.Mutex
	m   map[RegistrationKey]Registration
	now func() time.Time
}

// newMemoryRegistrations returns an empty cache.
func newMemoryRegistrations() *memoryRegistrations {
	return &memoryRegistrations{m: map[RegistrationKey]Registration{}, now: time.Now}
}

// GetRegistration implements RegistrationCache.
func (m *memoryRegistrations) GetRegistration(_ context.Context, k RegistrationKey) (*Registration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.m[k]
	if !ok || (!r.ExpiresAt.IsZero() && !m.now().Before(r.ExpiresAt)) {
		return nil, ErrNoRegistration
	}
	return &r, nil
}

// PutRegistration implements RegistrationCache.
func (m *memoryRegistrations) PutRegistration(_ context.Context, r *Registration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[r.RegistrationKey] = *r
	return nil
}

// DeleteRegistrations implements RegistrationCache.
func (m *memoryRegistrations) DeleteRegistrations(_ context.Context, upstreamID string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k := range m.m {
		if k.UpstreamID == upstreamID {
			delete(m.m, k)
			n++
		}
	}
	return n, nil
}

// Client is the OAuth client the gateway uses at an upstream's AS.
type Client struct {
	Method       string // manual, dcr, cimd
	ClientID     string
	ClientSecret vault.Secret
	AuthMethod   string // client_secret_basic, client_secret_post, none
	RedirectURI  string
	Issuer       string
}

// Client returns the client for up at the AS discovery chose, registering one when needed:
// manual from config; cimd (the gateway's metadata document URL); dcr (RFC 7591, cached per
// issuer, upstream and redirect URI); auto = cimd when the AS advertises
// client_id_metadata_document_supported and the public URL is https, else dcr. scopes are the
// scopes the gateway will request (sent as the DCR scope: some servers, Hydra among them, only
// allow a client the scopes it registered).
func (e *Engine) Client(ctx context.Context, up Upstream, d *Discovery, ep Endpoints, scopes []string) (*Client, error) {
	redirect := ep.RedirectURI(up.ID)
	mode, err := clientMode(up, d, ep)
	if err != nil {
		return nil, err
	}
	switch mode {
	case ModeManual:
		return manualClient(up, d, redirect)
	case ModeCIMD:
		return e.cimdClient(up, d, ep), nil
	}
	return e.dcrClient(ctx, up, d, redirect, ep, scopes)
}

func manualClient(up Upstream, d *Discovery, redirect string) (*Client, error) {
	rc := up.Registration
	if rc.ClientID == "" {
		return nil, &Error{Bucket: BucketGatewayConfig, Code: CodeInvalidOption, Reason: "clientRegistration mode manual needs clientId"}
	}
	method := rc.TokenEndpointAuthMethod
	if method == "" {
		method = AuthNone
		if !rc.ClientSecret.IsZero() {
			method = AuthBasic
		}
	}
	switch method {
	case AuthBasic, AuthPost:
		if rc.ClientSecret.IsZero() {
			return nil, &Error{Bucket: BucketGatewayConfig, Code: CodeInvalidOption, Reason: fmt.Sprintf("tokenEndpointAuthMethod %s needs clientSecret", method)}
		}
	case AuthNone:
	default:
		return nil, &Error{Bucket: BucketGatewayConfig, Code: CodeInvalidOption, Reason: fmt.Sprintf("tokenEndpointAuthMethod must be one of client_secret_basic, client_secret_post, none, got %q", method)}
	}
	return &Client{Method: ModeManual, ClientID: rc.ClientID, ClientSecret: rc.ClientSecret, AuthMethod: method, RedirectURI: redirect, Issuer: d.AS.Issuer}, nil
}

func (e *Engine) cimdClient(up Upstream, d *Discovery, ep Endpoints) *Client {
	return &Client{Method: ModeCIMD, ClientID: ep.ClientMetadataURL(up.ID), AuthMethod: AuthNone, RedirectURI: ep.RedirectURI(up.ID), Issuer: d.AS.Issuer}
}

// clientMetadata is the RFC 7591 metadata the gateway registers (DCR) or publishes (CIMD).
type clientMetadata struct {
	ClientID                string   `json:"client_id,omitempty"`
	ClientName              string   `json:"client_name"`
	ClientURI               string   `json:"client_uri,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	ApplicationType         string   `json:"application_type"`
	Scope                   string   `json:"scope,omitempty"`
}

// registrationScopes is the scope a dynamically registered client asks for: the scopes requested
// now plus every scope the resource advertises (and offline_access when the AS lists it). Some
// servers (Hydra) limit a client to the scopes it registered, and the registration is cached: a
// later step-up to an advertised scope must not need a new client.
func registrationScopes(requested []string, d *Discovery) []string {
	out := slices.Clone(requested)
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if d != nil {
		for _, s := range d.PRM.ScopesSupported {
			add(s)
		}
		if slices.Contains(d.AS.ScopesSupported, OfflineAccess) {
			add(OfflineAccess)
		}
	}
	return out
}

func (e *Engine) metadata(up Upstream, ep Endpoints) clientMetadata {
	name := e.opts.ClientName
	if up.DisplayName != "" {
		name += " (" + up.DisplayName + ")"
	}
	m := clientMetadata{
		ClientName:              name,
		RedirectURIs:            []string{ep.RedirectURI(up.ID)},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		TokenEndpointAuthMethod: AuthNone,
		ApplicationType:         "web", // a server-side gateway (MCP 2026-07-28 asks DCR clients to say)
	}
	if ep.HTTPS() {
		m.ClientURI = strings.TrimRight(ep.PublicURL, "/")
	}
	return m
}

// ClientMetadataDocument renders the gateway's client ID metadata document for an upstream, which
// the gateway serves at ep.ClientMetadataURL(up.ID). Its client_id equals that URL. It fails when
// the public URL is not https (such a client_id is not valid).
func (e *Engine) ClientMetadataDocument(up Upstream, ep Endpoints) ([]byte, error) {
	if !ep.HTTPS() {
		return nil, &Error{Bucket: BucketGatewayConfig, Code: CodeCIMDRequiresHTTPS, Reason: "a client ID metadata document needs an https public URL"}
	}
	m := e.metadata(up, ep)
	m.ClientID = ep.ClientMetadataURL(up.ID)
	return json.MarshalIndent(m, "", "  ")
}

func (e *Engine) dcrClient(ctx context.Context, up Upstream, d *Discovery, redirect string, ep Endpoints, scopes []string) (*Client, error) {
	key := RegistrationKey{Issuer: d.AS.Issuer, UpstreamID: up.ID, RedirectURI: redirect}
	toClient := func(r *Registration) *Client {
		return &Client{Method: ModeDCR, ClientID: r.ClientID, ClientSecret: r.ClientSecret, AuthMethod: r.AuthMethod, RedirectURI: redirect, Issuer: d.AS.Issuer}
	}
	r, err := e.regs.GetRegistration(ctx, key)
	if err == nil {
		return toClient(r), nil
	}
	if !errors.Is(err, ErrNoRegistration) {
		return nil, fmt.Errorf("reading client registration: %w", err)
	}
	if d.AS.RegistrationEndpoint == "" {
		return nil, noRegistrationEndpoint(d)
	}
	v, err := e.shared(ctx, "dcr\x00"+key.Issuer+"\x00"+key.UpstreamID+"\x00"+key.RedirectURI, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if r, err := e.regs.GetRegistration(rctx, key); err == nil {
			return r, nil
		}
		r, err := e.register(rctx, up, d, ep, scopes)
		if err != nil {
			return nil, err
		}
		r.RegistrationKey = key
		if err := e.regs.PutRegistration(rctx, r); err != nil {
			return nil, fmt.Errorf("storing client registration: %w", err)
		}
		return r, nil
	})
	if err != nil {
		return nil, err
	}
	return toClient(v.(*Registration)), nil
}

// dcrReply is an RFC 7591 registration response, decoded leniently: only the members the gateway
// uses, each tolerant of type oddities (Hydra sends jwks as an object; some servers send numbers as
// strings), so a reply that is fine for our purpose is never rejected for a member we ignore.
type dcrReply struct {
	ClientID                json.RawMessage `json:"client_id"`
	ClientSecret            json.RawMessage `json:"client_secret"`
	ClientSecretExpiresAt   json.RawMessage `json:"client_secret_expires_at"`
	TokenEndpointAuthMethod json.RawMessage `json:"token_endpoint_auth_method"`
}

// flexString reads a JSON string or number as a string ("" for anything else).
func flexString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// oauthErrorBody is an RFC 6749 §5.2 / RFC 7591 §3.2.2 error reply.
type oauthErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func parseOAuthError(r *reply) oauthErrorBody {
	var b oauthErrorBody
	if r != nil && json.Unmarshal(r.body, &b) == nil {
		b.Error = bounded(b.Error, 100)
		b.ErrorDescription = bounded(b.ErrorDescription, 500)
	}
	return b
}

func (e *Engine) register(ctx context.Context, up Upstream, d *Discovery, ep Endpoints, scopes []string) (_ *Registration, err error) {
	ctx, span := tracing.Start(ctx, "upstream registration", trace.SpanKindClient, tracing.AttrUpstreamID.String(up.ID))
	defer func() { tracing.End(span, err) }()
	m := e.metadata(up, ep)
	m.Scope = strings.Join(registrationScopes(scopes, d), " ")
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	endpoint := d.AS.RegistrationEndpoint
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, &Error{Bucket: BucketOAuthSetup, Code: CodeRegistrationFailed, URL: displayURL(endpoint), Reason: "the registration_endpoint is not a usable URL", Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	r, err := do(e.httpClient(up), req)
	if err != nil {
		code, bucket := transportCode(err)
		if code == CodeMetadataUnreachable {
			code = CodeRegistrationFailed
		}
		return nil, &Error{Bucket: bucket, Code: code, URL: displayURL(endpoint), Reason: "dynamic client registration could not reach the authorization server", Err: err}
	}
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		oe := parseOAuthError(r)
		ub, uct := upstreamBody(r)
		code, bucket := CodeRegistrationRejected, BucketOAuthSetup
		if r.status >= 500 || r.status == http.StatusTooManyRequests {
			code, bucket = CodeRegistrationFailed, BucketUpstreamResponse
		}
		reason := fmt.Sprintf("the authorization server refused dynamic client registration (HTTP %d)", r.status)
		if oe.Error != "" {
			reason += ": " + oe.Error
			if oe.ErrorDescription != "" {
				reason += ": " + oe.ErrorDescription
			}
		}
		return nil, &Error{Bucket: bucket, Code: code, URL: displayURL(endpoint), HTTPStatus: r.status, OAuthError: oe.Error, OAuthErrorDescription: oe.ErrorDescription,
			Reason: reason, UpstreamBody: ub, UpstreamContentType: uct, RetryAfter: retryAfter(r.header, e.now())}
	}
	var rep dcrReply
	if err := decodeJSON(r.body, &rep); err != nil {
		return nil, &Error{Bucket: BucketUpstreamResponse, Code: CodeRegistrationFailed, URL: displayURL(endpoint), HTTPStatus: r.status, Reason: "the registration reply is not a JSON object"}
	}
	reg := &Registration{Method: ModeDCR, ClientID: flexString(rep.ClientID), ClientSecret: vault.Secret(flexString(rep.ClientSecret)), RegisteredAt: e.now()}
	if reg.ClientID == "" {
		return nil, &Error{Bucket: BucketUpstreamResponse, Code: CodeRegistrationFailed, URL: displayURL(endpoint), HTTPStatus: r.status, Reason: "the registration reply has no client_id"}
	}
	// Use the auth method the reply names: the AS may have overridden what was asked for.
	reg.AuthMethod = flexString(rep.TokenEndpointAuthMethod)
	if reg.AuthMethod == "" {
		reg.AuthMethod = AuthNone
		if !reg.ClientSecret.IsZero() {
			reg.AuthMethod = AuthBasic
		}
	}
	switch reg.AuthMethod {
	case AuthNone:
	case AuthBasic, AuthPost:
		if reg.ClientSecret.IsZero() {
			return nil, &Error{Bucket: BucketOAuthSetup, Code: CodeRegistrationFailed, URL: displayURL(endpoint), Reason: fmt.Sprintf("the registration reply names token_endpoint_auth_method %s but carries no client_secret", reg.AuthMethod)}
		}
	default:
		return nil, &Error{Bucket: BucketOAuthSetup, Code: CodeRegistrationFailed, URL: displayURL(endpoint),
			Reason: fmt.Sprintf("the registration reply names token_endpoint_auth_method %q, which mcpgate does not support (client_secret_basic, client_secret_post, none)", reg.AuthMethod)}
	}
	if exp, err := strconv.ParseInt(flexString(rep.ClientSecretExpiresAt), 10, 64); err == nil && exp > 0 {
		reg.ExpiresAt = time.Unix(exp, 0)
	}
	return reg, nil
}

// dropped records the last registration dropped for invalid_client.
type dropped struct {
	at       time.Time
	clientID string
}

// clientRejected handles invalid_client from the token endpoint
// (docs/architecture.md#failure-classification, docs/architecture.md#caches-and-invalidation): a
// manual client is the operator's to fix; a registered one (DCR, CIMD) is dropped together with
// cached discovery so the next connect registers afresh — once: a second rejection within the
// re-registration window is reported without dropping again, so a misbehaving AS cannot cause a
// registration loop.
func (e *Engine) clientRejected(ctx context.Context, up Upstream, clientID string, base *Error) *Error {
	manual := up.Registration.Mode == ModeManual || (up.Registration.Mode == "" && up.Registration.ClientID != "") ||
		(clientID != "" && clientID == up.Registration.ClientID)
	base.Bucket = BucketOAuthSetup
	if manual {
		base.Code = CodeClientRejected
		base.Reason = "the authorization server rejected the configured client (invalid_client); check clientRegistration clientId, clientSecret and tokenEndpointAuthMethod"
		return base
	}
	e.mu.Lock()
	last, redone := e.redone[up.ID]
	recent := redone && e.now().Sub(last.at) < DefaultReregisterWindow
	sameDropped := redone && clientID != "" && clientID == last.clientID
	if !recent && !sameDropped {
		e.redone[up.ID] = dropped{at: e.now(), clientID: clientID}
	}
	e.mu.Unlock()
	switch {
	case sameDropped:
		// Another caller still holding the registration that was already dropped.
		base.Code = CodeClientRejected
		base.Reason = "the authorization server no longer accepts the gateway's registered client (invalid_client); the registration was already dropped and the next connect registers again"
		return base
	case recent:
		base.Code = CodeRegistrationRejected
		base.Reason = "the authorization server rejected the client again right after it was registered afresh (invalid_client); check the authorization server's client registration settings"
		return base
	}
	if err := e.Invalidate(ctx, up.ID); err != nil {
		base.Err = errors.Join(base.Err, fmt.Errorf("dropping client registration: %w", err))
	}
	base.Code = CodeClientRejected
	base.Reason = "the authorization server no longer accepts the gateway's registered client (invalid_client); the registration was dropped and the next connect registers again"
	return base
}

var _ RegistrationCache = (*memoryRegistrations)(nil)
