package hydra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"testing"
	"time"
)

// maxHops bounds the redirects AuthorizeHeadless follows.
const maxHops = 20

// AuthorizeHeadless plays a browser for an authorization request: it GETs
// authURL with a fresh cookie jar, follows Hydra → login app → Hydra →
// consent app → Hydra redirects, and returns the URL of the first redirect
// that leaves Hydra and its login app — the client's redirect_uri with code
// and state, or with error=… — without requesting it. subject, when not
// empty, is who logs in (sent as SubjectCookie to the login app). Any page
// that is not a redirect fails the test with its body.
func (s *Server) AuthorizeHeadless(t testing.TB, authURL, subject string) *url.URL {
	t.Helper()
	u, err := s.AuthorizeHeadlessE(context.Background(), authURL, subject)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// AuthorizeHeadlessE is AuthorizeHeadless returning its error, for use off
// the test goroutine.
func (s *Server) AuthorizeHeadlessE(ctx context.Context, authURL, subject string) (*url.URL, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	if subject != "" {
		app, _ := url.Parse(s.LoginURL)
		jar.SetCookies(app, []*http.Cookie{{Name: SubjectCookie, Value: subject, Path: "/"}})
	}
	client := &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	next, err := url.Parse(authURL)
	if err != nil {
		return nil, fmt.Errorf("parsing authorization URL: %w", err)
	}
	for range maxHops {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("authorizing: GET %s: %w", shortURL(next), errors.Unwrap(err))
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		loc, err := resp.Location()
		if resp.StatusCode/100 != 3 || err != nil {
			return nil, fmt.Errorf("authorizing: GET %s: status %d, not a redirect: %s", shortURL(next), resp.StatusCode, body)
		}
		if !s.ownsHost(loc) {
			return loc, nil
		}
		next = loc
	}
	return nil, errors.New("authorizing: too many redirects")
}

// ownsHost reports whether u points at this Hydra (proxy or real public
// port) or its login app.
func (s *Server) ownsHost(u *url.URL) bool {
	for _, base := range []string{s.PublicURL, s.upstream, s.LoginURL} {
		b, err := url.Parse(base)
		if err == nil && b.Scheme == u.Scheme && b.Host == u.Host {
			return true
		}
	}
	return false
}

// shortURL is u without its query, which holds long challenges and
// verifiers.
func shortURL(u *url.URL) string {
	v := *u
	v.RawQuery, v.Fragment = "", ""
	return v.String()
}
