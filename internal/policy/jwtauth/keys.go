package jwtauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"golang.org/x/sync/singleflight"
)

// Limits of the JWKS fetcher.
const (
	// jwksMaxAge is how long a fetched key set is used before it is fetched again on next use.
	jwksMaxAge = 15 * time.Minute
	// jwksMinRefetch rate-limits fetches caused by an unknown kid: a flood of tokens naming
	// made-up key ids costs the identity provider at most one request per interval.
	jwksMinRefetch = 10 * time.Second
	jwksTimeout    = 10 * time.Second
	jwksMaxBody    = 1 << 20
)

// Errors of key selection.
var (
	errUnknownKey  = errors.New("no key of the issuer matches the token")
	errUnavailable = errors.New("signing keys unavailable")
)

// algorithm is an allowed signature algorithm and the key type it needs.
type algorithm struct {
	alg jwa.SignatureAlgorithm
	kty jwa.KeyType
}

// asymmetric are the algorithms accepted with a JWKS: never none, never HMAC (a public key
// used as an HMAC secret is the classic algorithm-confusion forgery).
var asymmetric = map[string]algorithm{
	"RS256": {jwa.RS256(), jwa.RSA()}, "RS384": {jwa.RS384(), jwa.RSA()}, "RS512": {jwa.RS512(), jwa.RSA()},
	"PS256": {jwa.PS256(), jwa.RSA()}, "PS384": {jwa.PS384(), jwa.RSA()}, "PS512": {jwa.PS512(), jwa.RSA()},
	"ES256": {jwa.ES256(), jwa.EC()}, "ES384": {jwa.ES384(), jwa.EC()}, "ES512": {jwa.ES512(), jwa.EC()},
	"EdDSA": {jwa.EdDSA(), jwa.OKP()},
}

// symmetric are the algorithms accepted with a shared secret, and only then.
var symmetric = map[string]algorithm{
	"HS256": {jwa.HS256(), jwa.OctetSeq()}, "HS384": {jwa.HS384(), jwa.OctetSeq()}, "HS512": {jwa.HS512(), jwa.OctetSeq()},
}

// keySource finds the verification key for a token's kid and (allowed) algorithm.
type keySource interface {
	algorithms() map[string]algorithm
	key(ctx context.Context, kid string, alg algorithm) (any, error)
}

// secretKeys verifies HS256/384/512 tokens with the configured secret.
type secretKeys struct{ secret []byte }

func (s secretKeys) algorithms() map[string]algorithm { return symmetric }

func (s secretKeys) key(context.Context, string, algorithm) (any, error) { return s.secret, nil }

// remoteKeys is an issuer's JWKS, fetched on first use, re-fetched when older than jwksMaxAge
// and, at most once per jwksMinRefetch, when a token names a kid it does not hold (key rotation).
// A failed re-fetch keeps the keys it had.
type remoteKeys struct {
	url    string
	client *http.Client
	now    func() time.Time

	mu          sync.Mutex
	set         jwk.Set
	fetchedAt   time.Time
	lastAttempt time.Time
	lastErr     error
	sf          singleflight.Group
}

func newRemoteKeys(url string) *remoteKeys {
	return &remoteKeys{
		url: url,
		client: &http.Client{
			Timeout: jwksTimeout,
			// The operator named this URL; a redirect elsewhere is not what they configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now: time.Now,
	}
}

func (k *remoteKeys) algorithms() map[string]algorithm { return asymmetric }

func (k *remoteKeys) key(ctx context.Context, kid string, alg algorithm) (any, error) {
	set, stale, mayFetch := k.snapshot()
	if set == nil || (stale && mayFetch) {
		fresh, err := k.refresh(ctx)
		switch {
		case err == nil:
			set = fresh
		case set == nil:
			return nil, err
		}
	}
	if key := pick(set, kid, alg); key != nil {
		return key, nil
	}
	// Perhaps the issuer rotated its keys: look again, unless that was done a moment ago.
	if _, _, mayFetch := k.snapshot(); !mayFetch {
		return nil, errUnknownKey
	}
	fresh, err := k.refresh(ctx)
	if err != nil {
		return nil, errUnknownKey
	}
	if key := pick(fresh, kid, alg); key != nil {
		return key, nil
	}
	return nil, errUnknownKey
}

// snapshot returns the current set, whether it is older than jwksMaxAge, and whether the rate
// limit allows a fetch now.
func (k *remoteKeys) snapshot() (set jwk.Set, stale, mayFetch bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	return k.set, k.set != nil && now.Sub(k.fetchedAt) >= jwksMaxAge, k.lastAttempt.IsZero() || now.Sub(k.lastAttempt) >= jwksMinRefetch
}

// refresh fetches the key set once for every concurrent caller.
func (k *remoteKeys) refresh(ctx context.Context) (jwk.Set, error) {
	v, err, _ := k.sf.Do("", func() (any, error) {
		k.mu.Lock()
		if !k.lastAttempt.IsZero() && k.now().Sub(k.lastAttempt) < jwksMinRefetch {
			// Another caller fetched (or failed to) a moment ago.
			set, err := k.set, k.lastErr
			k.mu.Unlock()
			if set == nil {
				return nil, err
			}
			return set, nil
		}
		k.lastAttempt = k.now()
		k.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksTimeout)
		defer cancel()
		set, err := k.fetch(ctx)

		k.mu.Lock()
		defer k.mu.Unlock()
		k.lastErr = err
		if err != nil {
			return nil, err
		}
		k.set, k.fetchedAt = set, k.now()
		return set, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(jwk.Set), nil
}

func (k *remoteKeys) fetch(ctx context.Context) (jwk.Set, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: fetching %s: %v", errUnavailable, k.url, err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: fetching %s: %v", errUnavailable, k.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: fetching %s: status %d", errUnavailable, k.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", errUnavailable, k.url, err)
	}
	if len(body) > jwksMaxBody {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", errUnavailable, k.url, jwksMaxBody)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("%w: parsing %s: %v", errUnavailable, k.url, err)
	}
	return set, nil
}

// pick selects the key for kid and alg: the key with that kid, or, for a token without kid, the
// only key that fits the algorithm. A key must have the algorithm's key type, be meant for
// signatures (use absent or "sig"), and name the same alg if it names one. Symmetric keys in a
// JWKS are never used.
func pick(set jwk.Set, kid string, alg algorithm) jwk.Key {
	if set == nil {
		return nil
	}
	var found jwk.Key
	matches := 0
	for i := range set.Len() {
		key, _ := set.Key(i)
		if key.KeyType() != alg.kty || key.KeyType() == jwa.OctetSeq() {
			continue
		}
		if use, ok := key.KeyUsage(); ok && use != "sig" {
			continue
		}
		if ka, ok := key.Algorithm(); ok && ka.String() != alg.alg.String() {
			continue
		}
		id, _ := key.KeyID()
		if kid != "" {
			if id == kid {
				return key
			}
			continue
		}
		found = key
		matches++
	}
	if matches == 1 {
		return found
	}
	return nil
}
