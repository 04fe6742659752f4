package hydra

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
)

// tokenPath is Hydra's token endpoint.
const tokenPath = "/oauth2/token"

// maxTokenBody bounds how much of a token request the proxy reads to find
// its grant_type.
const maxTokenBody = 1 << 20

// TokenInterceptor sees every token-endpoint request after it was counted,
// with its body intact. Returning true means it wrote the response itself and
// the request does not reach Hydra: tests use it to inject 503s, hangs or
// resets (panic(http.ErrAbortHandler)).
type TokenInterceptor func(w http.ResponseWriter, r *http.Request, grantType string) bool

type counter struct {
	mu        sync.Mutex
	calls     map[string]int // by grant_type
	errors    map[string]int // non-2xx answers by grant_type
	intercept TokenInterceptor
}

type grantKey struct{}

// servePublic forwards everything to Hydra's public port and counts token
// requests.
func (s *Server) servePublic(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == tokenPath && r.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxTokenBody))
		if err != nil {
			http.Error(w, "reading token request: "+err.Error(), http.StatusBadRequest)
			return
		}
		_ = r.Body.Close()
		form, _ := url.ParseQuery(string(body))
		grant := form.Get("grant_type")
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))

		s.count.mu.Lock()
		s.count.calls[grant]++
		intercept := s.count.intercept
		s.count.mu.Unlock()

		if intercept != nil && intercept(w, r, grant) {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r = r.WithContext(context.WithValue(r.Context(), grantKey{}, grant))
	}
	s.forward(w, r, s.rp.Load())
}

// serveAdmin forwards everything to Hydra's admin port.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	s.forward(w, r, s.rpAdmin.Load())
}

func (s *Server) forward(w http.ResponseWriter, r *http.Request, rp *httputil.ReverseProxy) {
	if rp == nil {
		http.Error(w, "hydra is not running", http.StatusBadGateway)
		return
	}
	if s.serialize {
		s.gate.Lock()
		defer s.gate.Unlock()
	}
	rp.ServeHTTP(w, r)
}

// newReverseProxy forwards to Hydra's public port at upstream and counts
// non-2xx token answers.
func (s *Server) newReverseProxy(upstream string, keepHost bool) *httputil.ReverseProxy {
	target, _ := url.Parse(upstream)
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			if keepHost {
				pr.Out.Host = pr.In.Host
			}
		},
		// Quiet: refused connections while Hydra starts are expected.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "hydra proxy: "+err.Error(), http.StatusBadGateway)
		},
		ModifyResponse: func(resp *http.Response) error {
			grant, ok := resp.Request.Context().Value(grantKey{}).(string)
			if ok && resp.StatusCode/100 != 2 {
				s.count.mu.Lock()
				s.count.errors[grant]++
				s.count.mu.Unlock()
			}
			return nil
		},
	}
}

// TokenCalls is how many token-endpoint requests with this grant_type
// ("authorization_code", "refresh_token", "client_credentials", …) reached
// the proxy, whatever their outcome; "" counts all of them.
func (s *Server) TokenCalls(grantType string) int {
	return s.sum(s.count.calls, grantType)
}

// TokenErrors is how many of TokenCalls Hydra answered with a non-2xx
// status (for example invalid_grant); intercepted requests are not counted.
func (s *Server) TokenErrors(grantType string) int {
	return s.sum(s.count.errors, grantType)
}

func (s *Server) sum(m map[string]int, grantType string) int {
	s.count.mu.Lock()
	defer s.count.mu.Unlock()
	if grantType != "" {
		return m[grantType]
	}
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// ResetTokenCalls sets TokenCalls and TokenErrors back to zero.
func (s *Server) ResetTokenCalls() {
	s.count.mu.Lock()
	defer s.count.mu.Unlock()
	s.count.calls = map[string]int{}
	s.count.errors = map[string]int{}
}

// SetTokenInterceptor installs (or, with nil, removes) a TokenInterceptor.
func (s *Server) SetTokenInterceptor(f TokenInterceptor) {
	s.count.mu.Lock()
	defer s.count.mu.Unlock()
	s.count.intercept = f
}
