// Package mcpupstream is an OAuth-protected upstream MCP server for tests: a Go SDK Streamable HTTP
// server behind the SDK's bearer-token middleware, publishing RFC 9728 protected-resource metadata
// that names a real authorization server (Ory Hydra in the tests), and verifying every token by
// introspection at that server, audience included. It records what it saw so tests can assert
// which user's token arrived and that no gateway credential ever did.
package mcpupstream

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// Options configures the server.
type Options struct {
	// Issuer is the authorization server (its issuer URL, named in the metadata).
	Issuer string
	// IntrospectURL is the authorization server's token introspection endpoint (Hydra admin).
	IntrospectURL string
	// Scopes are required for every request ("mcp" by default) and advertised.
	Scopes []string
	// ExtraScope, when set, is required by the tool "admin_report" only: a token without it gets
	// 403 insufficient_scope (the step-up case).
	ExtraScope string
	// AdvertiseScopes lists scopes_supported in the metadata (default Scopes).
	AdvertiseScopes []string
}

// Server is a running upstream.
type Server struct {
	URL string // the MCP endpoint, e.g. http://127.0.0.1:1234/mcp
	srv *httptest.Server

	mu      sync.Mutex
	seen    []Seen
	headers []http.Header
}

// Seen is one authorized request.
type Seen struct {
	Subject string
	Scopes  []string
	Token   string
}

// Start starts the upstream for the test.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if len(o.Scopes) == 0 {
		o.Scopes = []string{"mcp"}
	}
	if o.AdvertiseScopes == nil {
		o.AdvertiseScopes = o.Scopes
		if o.ExtraScope != "" {
			o.AdvertiseScopes = append(slices.Clone(o.Scopes), o.ExtraScope)
		}
	}
	s := &Server{}
	mux := http.NewServeMux()
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL + "/mcp"
	prmURL := s.srv.URL + "/.well-known/oauth-protected-resource/mcp"

	mux.Handle("/.well-known/oauth-protected-resource/mcp", auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource: s.URL, AuthorizationServers: []string{o.Issuer}, ScopesSupported: o.AdvertiseScopes,
		BearerMethodsSupported: []string{"header"},
	}))

	server := mcp.NewServer(&mcp.Implementation{Name: "test-upstream", Version: "1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "The subject of the caller's upstream token."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			ti := req.Extra.TokenInfo
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "subject=" + ti.UserID}}}, nil, nil
		})
	mcp.AddTool(server, &mcp.Tool{Name: "admin_report", Description: "Needs the extra scope."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "report for " + req.Extra.TokenInfo.UserID}}}, nil, nil
		})
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})

	verify := func(ctx context.Context, token string, r *http.Request) (*auth.TokenInfo, error) {
		in, err := introspect(ctx, o.IntrospectURL, token)
		if err != nil {
			return nil, err
		}
		if !in.Active {
			return nil, auth.ErrInvalidToken
		}
		// Audience check stays on: the token must have been issued for this resource.
		if !slices.Contains(in.Audience, s.URL) {
			return nil, fmt.Errorf("%w: audience %v does not include %s", auth.ErrInvalidToken, in.Audience, s.URL)
		}
		s.mu.Lock()
		s.seen = append(s.seen, Seen{Subject: in.Subject, Scopes: strings.Fields(in.Scope), Token: token})
		s.mu.Unlock()
		return &auth.TokenInfo{Scopes: strings.Fields(in.Scope), Expiration: time.Unix(in.ExpiresAt, 0), UserID: in.Subject}, nil
	}
	protected := auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{ResourceMetadataURL: prmURL, Scopes: o.Scopes})(handler)
	mux.Handle("/mcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
		if o.ExtraScope != "" && r.Method == http.MethodPost {
			// Per-tool scope: peek at the call and demand the extra scope for admin_report.
			body, _ := readAndRestore(r)
			if strings.Contains(string(body), `"admin_report"`) {
				tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
				if in, err := introspect(r.Context(), o.IntrospectURL, tok); err == nil && in.Active && !slices.Contains(strings.Fields(in.Scope), o.ExtraScope) {
					w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope="%s", resource_metadata="%s"`,
						strings.Join(append(slices.Clone(o.Scopes), o.ExtraScope), " "), prmURL))
					http.Error(w, "insufficient scope", http.StatusForbidden)
					return
				}
			}
		}
		protected.ServeHTTP(w, r)
	}))
	return s
}

// Seen returns the authorized requests so far.
func (s *Server) Seen() []Seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// Headers returns the headers of every request that reached /mcp.
func (s *Server) Headers() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.headers)
}

type introspection struct {
	Active    bool     `json:"active"`
	Subject   string   `json:"sub"`
	Scope     string   `json:"scope"`
	Audience  []string `json:"aud"`
	ExpiresAt int64    `json:"exp"`
}

func introspect(ctx context.Context, endpoint, token string) (*introspection, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspection: HTTP %d", resp.StatusCode)
	}
	var in introspection
	if err := json.NewDecoder(resp.Body).Decode(&in); err != nil {
		return nil, err
	}
	return &in, nil
}
