// Package ratelimit is the rate-limit-inbound policy (export RateLimitInboundPolicy): at most
// requestsAllowed requests per timeWindowMinutes per caller (rateLimitBy user), per client address
// (ip) or for everyone together (all); the next ones are answered 429 problem+json with
// Retry-After. It counts with internal/limiter: in the instance's memory, or in Redis across
// replicas when the host has one (MCPGATE_REDIS_URL) — exactly (mode strict) or locally with a
// background sync (mode async). docs/architecture.md#rate-limits.
package ratelimit

import (
	"errors"
	"fmt"
	"time"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// Export and PolicyType are how config names this policy.
const (
	Export     = "RateLimitInboundPolicy"
	PolicyType = "rate-limit-inbound"
)

// Values of rateLimitBy, headerMode and mode.
const (
	ByUser     = "user"
	ByIP       = "ip"
	ByAll      = "all"
	byFunction = "function" // Zuplo's custom identifier function: not supported

	HeaderModeNone       = "none"
	HeaderModeRetryAfter = "retry-after"

	ModeStrict = "strict"
	ModeAsync  = "async"
)

// Defaults of the options, as Zuplo documents them.
const (
	DefaultRateLimitBy = ByUser
	DefaultHeaderMode  = HeaderModeRetryAfter
	DefaultMode        = ModeStrict
)

// maxWindowMinutes bounds timeWindowMinutes (a year): longer is surely a typo, and the window must
// fit a time.Duration.
const maxWindowMinutes = 366 * 24 * 60

// Policy holds the options of rate-limit-inbound. The runtime lives in ratelimit.go.
type Policy struct {
	// RateLimitBy is what is counted: user (the authenticated subject; default), ip (the client
	// address) or all (every request of the policy together).
	RateLimitBy string `json:"rateLimitBy,omitempty"`
	// RequestsAllowed per window. Required, 1 or more.
	RequestsAllowed *int `json:"requestsAllowed,omitempty"`
	// TimeWindowMinutes is the window's length in minutes (fractions allowed). Required.
	TimeWindowMinutes *float64 `json:"timeWindowMinutes,omitempty"`
	// Identifier names the function of rateLimitBy "function", which mcpgate does not run.
	Identifier *Identifier `json:"identifier,omitempty"`
	// HeaderMode is retry-after (default: the 429 carries Retry-After) or none.
	HeaderMode string `json:"headerMode,omitempty"`
	// ThrowOnFailure refuses a request (503) when its limit cannot be checked (the Redis store is
	// unavailable). The default, false, lets it through: the gateway keeps serving.
	ThrowOnFailure bool `json:"throwOnFailure,omitempty"`
	// Mode is strict (default: every request checked against the shared count) or async (counted
	// locally, synced with the other replicas in the background; no wait on Redis, may overshoot).
	Mode string `json:"mode,omitempty"`

	name string
	st   *state
}

// Identifier is Zuplo's {module, export} of a custom identifier function.
type Identifier struct {
	Module string `json:"module,omitempty"`
	Export string `json:"export,omitempty"`
}

func init() {
	policy.Register(policy.Module{
		Export:     Export,
		PolicyType: PolicyType,
		Kind:       policy.KindInbound,
		New:        func() any { return new(Policy) },
	})
}

// SetName implements policy.Namer: the name keys the policy's counters and appears in its 429.
func (p *Policy) SetName(name string) { p.name = name }

// By returns the effective rateLimitBy.
func (p *Policy) By() string {
	if p.RateLimitBy == "" {
		return DefaultRateLimitBy
	}
	return p.RateLimitBy
}

// Header returns the effective headerMode.
func (p *Policy) Header() string {
	if p.HeaderMode == "" {
		return DefaultHeaderMode
	}
	return p.HeaderMode
}

// EffectiveMode returns the effective mode.
func (p *Policy) EffectiveMode() string {
	if p.Mode == "" {
		return DefaultMode
	}
	return p.Mode
}

// Window returns the window's length (after Validate).
func (p *Policy) Window() time.Duration {
	if p.TimeWindowMinutes == nil {
		return 0
	}
	return time.Duration(*p.TimeWindowMinutes * float64(time.Minute))
}

// Validate checks the options without I/O.
func (p *Policy) Validate() error {
	var errs []error
	switch p.By() {
	case ByUser, ByIP, ByAll:
		if p.Identifier != nil {
			errs = append(errs, errors.New(`options.identifier: is only read with rateLimitBy "function", which mcpgate does not support; remove it`))
		}
	case byFunction:
		errs = append(errs, errors.New(`options.rateLimitBy: "function" (a custom identifier function) is not supported by mcpgate; use "user", "ip" or "all"`))
	default:
		errs = append(errs, fmt.Errorf(`options.rateLimitBy: must be one of user, ip, all, got %q`, p.RateLimitBy))
	}
	switch {
	case p.RequestsAllowed == nil:
		errs = append(errs, errors.New("options.requestsAllowed: is required (how many requests a window allows, 1 or more)"))
	case *p.RequestsAllowed < 1:
		errs = append(errs, fmt.Errorf("options.requestsAllowed: must be 1 or more, got %d", *p.RequestsAllowed))
	}
	switch m := p.TimeWindowMinutes; {
	case m == nil:
		errs = append(errs, errors.New("options.timeWindowMinutes: is required (the window's length in minutes, e.g. 1 or 0.5)"))
	case !(*m > 0) || *m > maxWindowMinutes:
		errs = append(errs, fmt.Errorf("options.timeWindowMinutes: must be more than 0 and at most %d (a year), got %v", maxWindowMinutes, *m))
	case p.Window() < time.Millisecond:
		errs = append(errs, fmt.Errorf("options.timeWindowMinutes: must be at least one millisecond, got %v", *m))
	}
	if h := p.Header(); h != HeaderModeNone && h != HeaderModeRetryAfter {
		errs = append(errs, fmt.Errorf(`options.headerMode: must be "none" or "retry-after", got %q`, p.HeaderMode))
	}
	if m := p.EffectiveMode(); m != ModeStrict && m != ModeAsync {
		errs = append(errs, fmt.Errorf(`options.mode: must be "strict" or "async", got %q`, p.Mode))
	}
	return errors.Join(errs...)
}

var (
	_ policy.Validator    = (*Policy)(nil)
	_ policy.Namer        = (*Policy)(nil)
	_ policy.Provisioner  = (*Policy)(nil)
	_ policy.Inbound      = (*Policy)(nil)
	_ policy.CleanerUpper = (*Policy)(nil)
)
