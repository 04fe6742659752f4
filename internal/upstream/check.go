package upstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// The setup check (docs/architecture.md#the-setup-check): what `mcpgate check` and the setup UI's
// "Check now" both run. It fetches metadata and nothing else: it never registers a client, never
// writes a registration, and never sends anything to a token or registration endpoint.

// Steps of a setup check, in order.
const (
	StepPRM          = "prm"
	StepASMetadata   = "as_metadata"
	StepS256         = "pkce_s256"
	StepRegistration = "registration"
	StepScopes       = "scopes"
)

// CheckSteps lists the steps in the order they run.
var CheckSteps = []string{StepPRM, StepASMetadata, StepS256, StepRegistration, StepScopes}

// StepResult is the outcome of one step of a setup check.
type StepResult string

// Step results.
const (
	StepOK      StepResult = "ok"
	StepFailed  StepResult = "failed"
	StepWarning StepResult = "warning" // works, but a person should look (scopes not advertised)
	StepSkipped StepResult = "skipped" // an earlier step failed
)

// CheckStep is one step of a setup check.
type CheckStep struct {
	Name   string     `json:"name"`
	Result StepResult `json:"result"`
	Detail string     `json:"detail,omitempty"`
}

// RegistrationPlan is how the gateway would get its client at the authorization server, decided as
// (*Engine).Client decides it, without registering.
type RegistrationPlan struct {
	// Configured is the clientRegistration mode of the policy (auto, manual, dcr, cimd).
	Configured string `json:"configured"`
	// Mode is the mode that would be used (manual, cimd, dcr); empty when none is available or
	// discovery failed.
	Mode string `json:"mode,omitempty"`
	// Available reports whether Mode can work.
	Available bool `json:"available"`
	// CIMDSupported is the authorization server's client_id_metadata_document_supported.
	CIMDSupported bool `json:"cimdSupported"`
	// PublicURLHTTPS reports whether the gateway's public URL is https (CIMD needs it).
	PublicURLHTTPS bool `json:"publicUrlHttps"`
	// RegistrationEndpoint is the authorization server's registration_endpoint (DCR), if any.
	RegistrationEndpoint string `json:"registrationEndpoint,omitempty"`
	// ManualClient reports whether a client id is configured.
	ManualClient bool `json:"manualClient"`
	// ClientID is the client id that would be used: the configured one, the CIMD document URL, or
	// a DCR registration already cached. Empty for a DCR client not registered yet.
	ClientID string `json:"clientId,omitempty"`
	// Registered reports whether a DCR registration is already cached (the first connect needs no
	// registration).
	Registered bool `json:"registered"`
}

// ScopeCheck compares the scopes the policy configures with those the resource advertises.
type ScopeCheck struct {
	// Configured are the policy's scopes; Advertised the protected resource's scopes_supported.
	Configured []string `json:"configured"`
	Advertised []string `json:"advertised"`
	// Requested are the scopes an authorization request would carry without a challenge
	// (SelectScopes).
	Requested []string `json:"requested"`
	// NotAdvertised are configured scopes the resource does not advertise (only when it
	// advertises some).
	NotAdvertised []string `json:"notAdvertised,omitempty"`
}

// CheckProblem is the first failed step of a setup check: the bucket of who acts (one of the
// spec's three), a stable code, a message and what to do.
type CheckProblem struct {
	Step       string `json:"step"`
	Bucket     Bucket `json:"bucket"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	Fix        string `json:"fix"`
	HTTPStatus int    `json:"httpStatus,omitempty"`
	URL        string `json:"url,omitempty"`
}

// CheckReport is the outcome of a setup check of one upstream.
type CheckReport struct {
	UpstreamID  string `json:"upstreamId"`
	UpstreamURL string `json:"upstreamUrl"`
	// OK reports that no step failed (warnings allowed).
	OK           bool             `json:"ok"`
	Steps        []CheckStep      `json:"steps"`
	Registration RegistrationPlan `json:"registration"`
	Scopes       ScopeCheck       `json:"scopes"`
	// Problem is the first failed step; nil when OK.
	Problem *CheckProblem `json:"problem,omitempty"`
	// Discovery and Err are the discovery result the report was built from (Discovery may be
	// partial, with its Trace, when Err is set).
	Discovery *Discovery `json:"-"`
	Err       error      `json:"-"`
}

// Step returns the named step.
func (r *CheckReport) Step(name string) CheckStep {
	for _, s := range r.Steps {
		if s.Name == name {
			return s
		}
	}
	return CheckStep{Name: name, Result: StepSkipped}
}

// Check runs discovery afresh (CheckNow) and assesses the result: the setup check of one upstream.
// resourceMetadata is the upstream's latest challenge hint ("" when there is none).
func (e *Engine) Check(ctx context.Context, up Upstream, resourceMetadata string, ep Endpoints) *CheckReport {
	d, err := e.CheckNow(ctx, up, resourceMetadata)
	return e.Assess(ctx, up, d, err, ep)
}

// Assess builds the setup check's report from a discovery result (cached or fresh). It reads the
// registration cache but never registers.
func (e *Engine) Assess(ctx context.Context, up Upstream, d *Discovery, derr error, ep Endpoints) *CheckReport {
	r := &CheckReport{UpstreamID: up.ID, UpstreamURL: up.URL, Discovery: d, Err: derr}
	r.Registration = RegistrationPlan{Configured: up.Registration.Mode, ManualClient: up.Registration.ClientID != "", PublicURLHTTPS: ep.HTTPS()}
	if r.Registration.Configured == "" {
		r.Registration.Configured = ModeAuto
		if r.Registration.ManualClient {
			r.Registration.Configured = ModeManual
		}
	}
	r.Scopes = ScopeCheck{Configured: nonNil(up.Scopes), Advertised: []string{}, Requested: []string{}}
	add := func(name string, res StepResult, detail string) {
		r.Steps = append(r.Steps, CheckStep{Name: name, Result: res, Detail: detail})
	}
	fail := func(name string, err error) {
		add(name, StepFailed, reasonOf(err))
		if r.Problem == nil {
			r.Problem = problemOf(name, err)
		}
	}
	skipRest := func() {
		for _, n := range CheckSteps[len(r.Steps):] {
			add(n, StepSkipped, "")
		}
	}

	if derr != nil {
		switch {
		case d == nil || d.PRMURL == "":
			fail(StepPRM, derr)
		case CodeOf(derr) == CodePKCES256Unsupported:
			add(StepPRM, StepOK, prmDetail(d))
			add(StepASMetadata, StepOK, "the authorization server's metadata was found")
			fail(StepS256, derr)
		default:
			add(StepPRM, StepOK, prmDetail(d))
			fail(StepASMetadata, derr)
		}
		skipRest()
		return r
	}
	add(StepPRM, StepOK, prmDetail(d))
	add(StepASMetadata, StepOK, fmt.Sprintf("issuer %s (%s)", d.AS.Issuer, displayURL(d.AS.MetadataURL)))
	add(StepS256, StepOK, fmt.Sprintf("code_challenge_methods_supported %q", d.AS.CodeChallengeMethodsSupported))

	res, detail, err := e.planRegistration(ctx, up, d, ep, &r.Registration)
	if err != nil {
		fail(StepRegistration, err)
	} else {
		add(StepRegistration, res, detail)
	}

	r.Scopes.Advertised = nonNil(d.PRM.ScopesSupported)
	r.Scopes.Requested = nonNil(SelectScopes(up, nil, d))
	res, detail = checkScopes(&r.Scopes)
	add(StepScopes, res, detail)
	r.OK = r.Problem == nil
	return r
}

func prmDetail(d *Discovery) string {
	return fmt.Sprintf("found at %s, resource %s", displayURL(d.PRMURL), d.Resource)
}

// planRegistration fills p the way Client would choose, reading but never writing the
// registration cache.
func (e *Engine) planRegistration(ctx context.Context, up Upstream, d *Discovery, ep Endpoints, p *RegistrationPlan) (StepResult, string, error) {
	p.CIMDSupported = d.AS.ClientIDMetadataDocumentSupported
	p.RegistrationEndpoint = d.AS.RegistrationEndpoint
	mode, err := clientMode(up, d, ep)
	if err != nil {
		return StepFailed, "", err
	}
	p.Mode = mode
	switch mode {
	case ModeManual:
		c, err := manualClient(up, d, ep.RedirectURI(up.ID))
		if err != nil {
			return StepFailed, "", err
		}
		p.Available, p.ClientID = true, c.ClientID
		return StepOK, fmt.Sprintf("manual client %s (%s)", c.ClientID, c.AuthMethod), nil
	case ModeCIMD:
		p.Available, p.ClientID = true, ep.ClientMetadataURL(up.ID)
		if !d.AS.ClientIDMetadataDocumentSupported {
			return StepWarning, "client ID metadata document " + p.ClientID + ", but the authorization server does not advertise client_id_metadata_document_supported: it may refuse the client", nil
		}
		return StepOK, "client ID metadata document " + p.ClientID, nil
	}
	reg, err := e.regs.GetRegistration(ctx, RegistrationKey{Issuer: d.AS.Issuer, UpstreamID: up.ID, RedirectURI: ep.RedirectURI(up.ID)})
	switch {
	case err == nil:
		p.Available, p.Registered, p.ClientID = true, true, reg.ClientID
		return StepOK, "dynamic client registration, registered as " + reg.ClientID, nil
	case !errors.Is(err, ErrNoRegistration):
		return StepFailed, "", fmt.Errorf("reading client registration: %w", err)
	case d.AS.RegistrationEndpoint == "":
		return StepFailed, "", noRegistrationEndpoint(d)
	}
	p.Available = true
	return StepOK, "dynamic client registration at " + displayURL(d.AS.RegistrationEndpoint) + " (on the first connect)", nil
}

// checkScopes compares configured and advertised scopes. Explicit scopes always win (the spec:
// some providers need scopes discovery cannot tell), so a configured scope the resource does not
// advertise is a warning, not a failure.
func checkScopes(s *ScopeCheck) (StepResult, string) {
	if len(s.Advertised) > 0 {
		for _, c := range s.Configured {
			if !slices.Contains(s.Advertised, c) {
				s.NotAdvertised = append(s.NotAdvertised, c)
			}
		}
	}
	switch {
	case len(s.NotAdvertised) > 0:
		return StepWarning, fmt.Sprintf("configured scopes %q are not in the resource's scopes_supported %q; they are requested anyway (explicit scopes win): check they are what the provider expects",
			s.NotAdvertised, s.Advertised)
	case len(s.Requested) == 0:
		return StepOK, "no scope requested (none configured or advertised): the authorization server applies its defaults"
	case len(s.Configured) > 0:
		return StepOK, fmt.Sprintf("requests %q (configured)", s.Requested)
	}
	return StepOK, fmt.Sprintf("requests %q (advertised by the resource)", s.Requested)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

func reasonOf(err error) string {
	var ue *Error
	if errors.As(err, &ue) {
		return ue.Reason
	}
	return err.Error()
}

func problemOf(step string, err error) *CheckProblem {
	var ue *Error
	if !errors.As(err, &ue) {
		// Not the engine's own error (a registration cache that cannot be read).
		return &CheckProblem{Step: step, Bucket: BucketUpstreamResponse, Code: "", Message: err.Error(), Fix: bucketFix[BucketUpstreamResponse]}
	}
	fix := fixes[ue.Code]
	if fix == "" {
		fix = bucketFix[ue.Bucket]
	}
	return &CheckProblem{Step: step, Bucket: ue.Bucket, Code: ue.Code, Message: ue.Reason, Fix: fix, HTTPStatus: ue.HTTPStatus, URL: ue.URL}
}

// bucketFix is the spec's "what to fix" of each bucket.
var bucketFix = map[Bucket]string{
	BucketGatewayConfig:    "Fix config/policies.json or config/routes.oas.json (the message names the entry).",
	BucketOAuthSetup:       "Configure the provider's app, allow the redirect URI, add the required scopes, or ask the provider to approve the client.",
	BucketUpstreamResponse: "Treat the upstream's answer as the source of truth: check the upstream URL, allow lists and the provider's availability; retry later.",
}

// fixes says what to do about the codes a setup check can report (docs/errors.md, "What to fix").
var fixes = map[string]string{
	CodeInvalidUpstreamURL:  "Fix the route's rewritePattern (and the $env it uses).",
	CodeInvalidOption:       "Fix the named option of the policy in config/policies.json.",
	CodePRMNotFound:         "Make the upstream serve RFC 9728 protected resource metadata, or set the option protectedResourceMetadataUrl.",
	CodePRMInvalid:          "Fix the upstream's protected resource metadata document.",
	CodePRMResourceMismatch: "Point rewritePattern at the URL the upstream calls itself, or fix the upstream's resource.",
	CodePRMNoAuthServers:    "Fix the upstream's metadata: authorization_servers must name its authorization server.",
	CodeASMetadataNotFound:  "Check the issuer URLs in authorization_servers and that their metadata is published.",
	CodeASMetadataInvalid:   "Fix the authorization server's metadata.",
	CodeIssuerMismatch:      "Make authorization_servers use the exact issuer string the authorization server publishes.",
	CodePKCES256Unsupported: "Enable PKCE S256 on the authorization server and list it in code_challenge_methods_supported.",
	CodeMetadataUnreachable: "Retry later; if it persists, check the upstream's availability and that the gateway can reach it.",
	CodeSSRFBlocked:         "Publish https metadata on public addresses; for development, list the hosts in --safehttp-allow (MCPGATE_SAFEHTTP_ALLOW).",
	CodeRegistrationMissing: "Register a client at the authorization server and configure clientRegistration mode manual with its clientId (and clientSecret).",
	CodeCIMDRequiresHTTPS:   "Set --public-url to the gateway's https address, or use clientRegistration mode dcr or manual.",
}

// clientMode decides how the gateway gets its client at d's authorization server
// (docs/architecture.md#registration-modes), without registering: manual, cimd or dcr. Client and
// the setup check both use it, so the check reports the mode a connect would use.
func clientMode(up Upstream, d *Discovery, ep Endpoints) (string, error) {
	rc := up.Registration
	mode := rc.Mode
	if mode == "" {
		mode = ModeAuto
		if rc.ClientID != "" {
			mode = ModeManual
		}
	}
	switch mode {
	case ModeManual, ModeDCR:
		return mode, nil
	case ModeCIMD:
		if !ep.HTTPS() {
			return "", &Error{Bucket: BucketGatewayConfig, Code: CodeCIMDRequiresHTTPS, Reason: "clientRegistration mode cimd needs an https public URL (a client ID metadata document's client_id must be an https URL); set --public-url to the gateway's https address or use mode dcr or manual"}
		}
		return ModeCIMD, nil
	case ModeAuto:
		if d.AS.ClientIDMetadataDocumentSupported && ep.HTTPS() {
			return ModeCIMD, nil
		}
		if d.AS.RegistrationEndpoint == "" {
			why := "does not advertise client_id_metadata_document_supported"
			if d.AS.ClientIDMetadataDocumentSupported {
				why = "supports client ID metadata documents, but the gateway's public URL is not https"
			}
			return "", &Error{Bucket: BucketGatewayConfig, Code: CodeRegistrationMissing,
				Reason: fmt.Sprintf("the authorization server %q %s and has no registration_endpoint for dynamic client registration; register a client there and configure clientRegistration mode manual with its clientId", d.AS.Issuer, why)}
		}
		return ModeDCR, nil
	}
	return "", &Error{Bucket: BucketGatewayConfig, Code: CodeInvalidOption, Reason: fmt.Sprintf("clientRegistration mode must be one of auto, manual, dcr, cimd, got %q", mode)}
}

// noRegistrationEndpoint is the error of mode dcr at an authorization server without DCR.
func noRegistrationEndpoint(d *Discovery) *Error {
	return &Error{Bucket: BucketGatewayConfig, Code: CodeRegistrationMissing,
		Reason: fmt.Sprintf("clientRegistration mode dcr, but the authorization server %q has no registration_endpoint; configure clientRegistration mode manual", d.AS.Issuer)}
}
