package jwtauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/policy/authcommon"
	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/publicurl"
	"github.com/mcpgate/mcpgate/internal/subject"
)

// Runtime constants.
const (
	// ClockSkew is how far exp and nbf may be off between the issuer's clock and the gateway's.
	ClockSkew = 30 * time.Second
	// maxTokenBytes bounds the token the policy parses.
	maxTokenBytes = 16 << 10
	// AdminClaimEnv names the claim that makes a JWT caller an administrator: "claim" (true or
	// "true") or "claim=value" (equal to value, or an array containing it).
	AdminClaimEnv = "MCPGATE_ADMIN_CLAIM"
	// AdminAudienceEnv names the audience a JWT must carry (in aud) to be an admin credential for
	// the setup UI and the admin API, besides the admin claim. It should differ from every MCP
	// route's audience, so that the tokens MCP clients hold are never admin credentials. Unset: no
	// JWT is an admin.
	AdminAudienceEnv = "MCPGATE_ADMIN_AUDIENCE"
	// keysRetryAfter is the Retry-After of the 503 answered when the JWKS cannot be fetched.
	keysRetryAfter = "5"
)

// state is what Provision hydrates.
type state struct {
	name      string
	keys      keySource
	audit     *audit.Recorder
	log       *slog.Logger
	urls      *publicurl.URLs
	now       func() time.Time
	adminName string // claim name; empty: no JWT caller is an admin
	adminWant string // required value; empty: true or "true"
	adminAud  string // MCPGATE_ADMIN_AUDIENCE; empty: no JWT caller is an admin
}

// Provision sets up the key source and, with oAuthResourceMetadataEnabled, serves the RFC 9728
// metadata of every route that uses the policy.
func (p *Policy) Provision(_ context.Context, env *policy.Env) error {
	host := env.Host
	if host == nil {
		host = &policy.Host{}
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	st := &state{name: env.Name, log: log, now: time.Now}
	st.audit, st.urls = host.Audit, host.URLs
	if st.urls == nil {
		st.urls = &publicurl.URLs{}
	}
	if p.JwkURL != "" {
		// One cache per JWKS URL for the whole gateway: policies of one issuer (one per route,
		// each with its audience) share fetches and the refetch rate limit.
		st.keys = policy.Shared(host, "jwtauth.jwks "+p.JwkURL, func() *remoteKeys {
			rk := newRemoteKeys(p.JwkURL)
			rk.now = func() time.Time { return st.now() }
			return rk
		})
	} else {
		st.keys = secretKeys{secret: []byte(p.Secret.Reveal())}
		if len(p.Secret.Reveal()) < 32 {
			log.Warn("the secret of open-id-jwt-auth-inbound is shorter than 32 bytes; HS256 tokens signed with it can be brute-forced")
		}
	}
	if p.Audience == "" {
		log.Warn("open-id-jwt-auth-inbound has no audience: tokens the issuer made for any other service are accepted; set options.audience to this gateway's resource URL")
	}
	if v := strings.TrimSpace(os.Getenv(AdminClaimEnv)); v != "" {
		st.adminName, st.adminWant, _ = strings.Cut(v, "=")
	}
	st.adminAud = strings.TrimSpace(os.Getenv(AdminAudienceEnv))
	if st.adminAud != "" && p.Audience != "" && sameURL(st.adminAud, p.Audience) {
		log.Warn(AdminAudienceEnv + " equals this policy's audience: every token MCP clients hold for its routes is then an admin credential too; use a distinct audience for admin tokens")
	}
	if p.OAuthResourceMetadataEnabled {
		if host.Register == nil {
			return errors.New("oAuthResourceMetadataEnabled needs the gateway's endpoint registry (Host.Register), and the gateway gave none")
		}
		ms := &authcommon.MetadataServer{URLs: st.urls, AuthorizationServers: []string{p.Issuer}, Scopes: p.ScopesSupported}
		for _, path := range ms.Register(host.Register, env.Routes) {
			log.Warn("no protected-resource metadata served for this route: its path has no single well-known URL, or another policy serves it", "route", path)
		}
	}
	p.st = st
	return nil
}

// HandleRequest authenticates the caller by a bearer JWT and sets the request user. The
// Authorization header never reaches the upstream.
func (p *Policy) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	if p.st == nil {
		return nil, problem.New(http.StatusInternalServerError, "The JWT policy is not ready.", errors.New("open-id-jwt-auth-inbound used before Provision"))
	}
	header := p.Header()
	tok, present, wellFormed := authcommon.Credential(r, header, "Bearer")
	if present && !wellFormed && !strings.EqualFold(header, "Authorization") {
		// A custom header may carry the bare token.
		tok, _, wellFormed = authcommon.Credential(r, header, "")
	}
	u, refusal, err := p.authenticate(r.Context(), tok, present, wellFormed)
	if err != nil {
		r.Header.Del(header)
		return nil, problem.New(http.StatusServiceUnavailable, "The gateway cannot verify tokens right now; try again shortly.", err).
			WithReason("jwks_unavailable").WithHeader("Retry-After", keysRetryAfter)
	}
	return nil, authcommon.Conclude(c, r, header, u, present, p.AllowUnauthenticatedRequests, func() error {
		refusal.Policy = p.st.name
		refusal.Challenge = p.challenge(r, refusal.Reason)
		if refusal.Details == nil {
			refusal.Details = map[string]any{}
		}
		refusal.Details["issuer"] = p.Issuer
		return authcommon.Refuse(c, r, p.st.audit, *refusal)
	})
}

// challenge is the WWW-Authenticate of a refusal. With oAuthResourceMetadataEnabled it points MCP
// clients at the route's protected-resource metadata (RFC 9728 §5.1), from which they discover
// the issuer and start OAuth.
func (p *Policy) challenge(r *http.Request, reason string) string {
	var params []authcommon.Param
	if p.OAuthResourceMetadataEnabled {
		params = append(params,
			authcommon.Param{Name: "resource_metadata", Value: authcommon.MetadataURL(p.st.urls, r)},
			// The scopes to ask for (MCP authorization: clients treat the challenge's scope as
			// authoritative).
			authcommon.Param{Name: "scope", Value: strings.Join(p.ScopesSupported, " ")})
	} else {
		params = append(params, authcommon.Param{Name: "realm", Value: "mcpgate"})
	}
	if reason != authcommon.ReasonMissingToken {
		params = append(params, authcommon.Param{Name: "error", Value: "invalid_token"})
	}
	return authcommon.Challenge("Bearer", params...)
}

func refuse(reason, detail string, cause error) *authcommon.Refusal {
	return &authcommon.Refusal{Reason: reason, Detail: detail, Cause: cause}
}

// authenticate verifies tok and returns its user, or why it was refused, or an error that is the
// gateway's fault (the JWKS cannot be fetched).
func (p *Policy) authenticate(ctx context.Context, tok string, present, wellFormed bool) (*policy.User, *authcommon.Refusal, error) {
	switch {
	case !present:
		return nil, refuse(authcommon.ReasonMissingToken, "No access token was sent. Send it in the "+p.Header()+" header as \"Bearer YOUR_TOKEN\".", nil), nil
	case !wellFormed:
		return nil, refuse(authcommon.ReasonInvalidToken, "The "+p.Header()+" header does not carry a Bearer token.", nil), nil
	}
	return p.authenticateAudience(ctx, tok, p.Audience)
}

// authenticateAudience verifies tok with aud checked against audience ("": not checked).
func (p *Policy) authenticateAudience(ctx context.Context, tok, audience string) (*policy.User, *authcommon.Refusal, error) {
	if len(tok) > maxTokenBytes || strings.Count(tok, ".") != 2 {
		return nil, refuse(authcommon.ReasonInvalidToken, "The access token is not a JWT.", nil), nil
	}
	payload, refusal, err := p.verify(ctx, tok)
	if refusal != nil || err != nil {
		return nil, refusal, err
	}
	claims := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&claims); err != nil {
		return nil, refuse(authcommon.ReasonInvalidToken, "The access token's claims are not a JSON object.", err), nil
	}
	return p.checkClaims(claims, audience)
}

// verify checks the token's header against the algorithm allow-list, finds its key and checks
// the signature. It returns the payload.
func (p *Policy) verify(ctx context.Context, tok string) ([]byte, *authcommon.Refusal, error) {
	msg, err := jws.ParseString(tok)
	if err != nil {
		return nil, refuse(authcommon.ReasonInvalidToken, "The access token is not a JWT.", err), nil
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 {
		return nil, refuse(authcommon.ReasonInvalidToken, "The access token is not a JWT.", fmt.Errorf("%d signatures", len(sigs))), nil
	}
	h := sigs[0].ProtectedHeaders()
	algName := ""
	if a, ok := h.Algorithm(); ok {
		algName = a.String()
	}
	alg, allowed := p.st.keys.algorithms()[algName]
	if !allowed {
		return nil, refuse(authcommon.ReasonUnsupportedAlg, "The access token is signed with an algorithm this gateway does not accept.",
			fmt.Errorf("alg %q not allowed", algName)), nil
	}
	if crit, ok := h.Critical(); ok && len(crit) > 0 {
		return nil, refuse(authcommon.ReasonInvalidToken, "The access token has critical header parameters this gateway does not understand.",
			fmt.Errorf("crit %v", crit)), nil
	}
	kid, _ := h.KeyID()
	key, err := p.st.keys.key(ctx, kid, alg)
	switch {
	case errors.Is(err, errUnknownKey):
		return nil, refuse(authcommon.ReasonUnknownKey, "The access token is signed with a key the issuer does not publish.", fmt.Errorf("kid %q: %w", kid, err)), nil
	case err != nil:
		return nil, nil, err
	}
	payload, err := jws.Verify([]byte(tok), jws.WithKey(alg.alg, key), jws.WithCompact())
	if err != nil {
		return nil, refuse(authcommon.ReasonInvalidSignature, "The access token's signature is not valid.", err), nil
	}
	return payload, nil, nil
}

// checkClaims enforces iss, aud (against audience; "" accepts any), exp and nbf and builds the user.
func (p *Policy) checkClaims(claims map[string]any, audience string) (*policy.User, *authcommon.Refusal, error) {
	iss, _ := claims["iss"].(string)
	if !sameURL(iss, p.Issuer) {
		return nil, refuse(authcommon.ReasonInvalidIssuer, "The access token was issued by another issuer.", fmt.Errorf("iss %q", iss)), nil
	}
	sub, _ := claims[p.SubClaim()].(string)
	var who string
	if sub != "" {
		who = subject.JWT(p.Issuer, sub).String()
	}
	withSubject := func(r *authcommon.Refusal) *authcommon.Refusal { r.Subject = who; return r }
	if audience != "" && !audienceContains(claims["aud"], audience) {
		return nil, withSubject(refuse(authcommon.ReasonInvalidAudience, "The access token was not issued for this gateway.", fmt.Errorf("aud %v", claims["aud"]))), nil
	}
	now := p.st.now()
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return nil, withSubject(refuse(authcommon.ReasonInvalidToken, "The access token has no valid expiry (exp).", nil)), nil
	}
	if !now.Before(exp.Add(ClockSkew)) {
		return nil, withSubject(refuse(authcommon.ReasonExpired, "The access token expired.", fmt.Errorf("exp %s", exp.UTC().Format(time.RFC3339)))), nil
	}
	if v, present := claims["nbf"]; present {
		nbf, ok := numericDate(v)
		if !ok {
			return nil, withSubject(refuse(authcommon.ReasonInvalidToken, "The access token's nbf is not a date.", nil)), nil
		}
		if now.Add(ClockSkew).Before(nbf) {
			return nil, withSubject(refuse(authcommon.ReasonNotYetValid, "The access token is not valid yet.", fmt.Errorf("nbf %s", nbf.UTC().Format(time.RFC3339)))), nil
		}
	}
	if sub == "" {
		return nil, refuse(authcommon.ReasonInvalidToken, "The access token names no subject ("+p.SubClaim()+").", nil), nil
	}
	return &policy.User{Sub: sub, Data: claims, Namespace: subject.JWTPrefix + p.Issuer, Admin: p.st.isAdminToken(claims)}, nil, nil
}

// Reasons AdminToken refuses a token that is otherwise valid.
const (
	// AdminAudienceUnset: MCPGATE_ADMIN_AUDIENCE is not set, so no JWT is an admin.
	AdminAudienceUnset = "admin_audience_unset"
	// AdminWrongAudience: the token's aud does not contain MCPGATE_ADMIN_AUDIENCE.
	AdminWrongAudience = authcommon.ReasonInvalidAudience
	// AdminNoClaim: the token lacks the MCPGATE_ADMIN_CLAIM claim.
	AdminNoClaim = "not_admin"
)

// AdminToken checks tok as an admin credential for the setup UI and the admin API: signed by this
// policy's issuer with an accepted key and algorithm, iss, exp and nbf valid as on the policy's
// routes, and then — instead of the routes' audience — aud containing MCPGATE_ADMIN_AUDIENCE and
// the MCPGATE_ADMIN_CLAIM claim present. It returns the user (Admin set) when all hold; else the
// reason: AdminAudienceUnset, AdminWrongAudience or AdminNoClaim for a token this issuer did sign,
// or the refusal reason (invalid_token, invalid_issuer, expired, …) for one it did not. err is a
// failure of the gateway (the JWKS cannot be fetched).
func (p *Policy) AdminToken(ctx context.Context, tok string) (u *policy.User, reason string, err error) {
	if p.st == nil {
		return nil, "", errors.New("open-id-jwt-auth-inbound used before Provision")
	}
	u, refusal, err := p.authenticateAudience(ctx, tok, "")
	switch {
	case err != nil:
		return nil, "", err
	case refusal != nil:
		return nil, refusal.Reason, nil
	case p.st.adminAud == "":
		return nil, AdminAudienceUnset, nil
	case !audienceContains(u.Data["aud"], p.st.adminAud):
		return nil, AdminWrongAudience, nil
	case !p.st.isAdmin(u.Data):
		return nil, AdminNoClaim, nil
	}
	u.Admin = true
	return u, "", nil
}

// AdminAudience is MCPGATE_ADMIN_AUDIENCE as the policy read it at Provision ("": no JWT is an admin).
func (p *Policy) AdminAudience() string {
	if p.st == nil {
		return ""
	}
	return p.st.adminAud
}

// isAdminToken reports whether claims make an admin credential: the admin claim and the admin audience.
func (s *state) isAdminToken(claims map[string]any) bool {
	return s.adminAud != "" && audienceContains(claims["aud"], s.adminAud) && s.isAdmin(claims)
}

// isAdmin applies MCPGATE_ADMIN_CLAIM.
func (s *state) isAdmin(claims map[string]any) bool {
	if s.adminName == "" {
		return false
	}
	v, ok := claims[s.adminName]
	if !ok {
		return false
	}
	if s.adminWant == "" {
		return v == true || v == "true"
	}
	switch v := v.(type) {
	case string:
		return v == s.adminWant
	case []any:
		return slices.Contains(v, any(s.adminWant))
	}
	return false
}

// numericDate reads a JWT NumericDate (seconds since the epoch, possibly fractional).
func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// audienceContains reports whether aud (a string or an array of strings) names want.
func audienceContains(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return sameURL(a, want)
	case []any:
		for _, v := range a {
			if s, ok := v.(string); ok && sameURL(s, want) {
				return true
			}
		}
	}
	return false
}

// sameURL compares issuers and audiences exactly, except that one trailing slash is ignored:
// "https://idp.example.com/" and "https://idp.example.com" name the same issuer in practice.
func sameURL(a, b string) bool {
	return a != "" && strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

var (
	_ policy.Provisioner = (*Policy)(nil)
	_ policy.Inbound     = (*Policy)(nil)
	_ keySource          = (*remoteKeys)(nil)
	_ keySource          = secretKeys{}
)
