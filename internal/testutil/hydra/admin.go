package hydra

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// ClientSpec describes a client created through Hydra's admin API. Empty
// fields take Hydra's defaults except where noted.
type ClientSpec struct {
	// ID is the client_id; empty lets Hydra choose a UUID.
	ID string
	// Secret is the client_secret; empty lets Hydra generate one (returned
	// in Client.Secret unless the client is public).
	Secret string
	Name   string
	// RedirectURIs are the allowed redirect_uri values.
	RedirectURIs []string
	// GrantTypes default to authorization_code and refresh_token.
	GrantTypes []string
	// ResponseTypes default to code.
	ResponseTypes []string
	// Scopes the client may request; default openid, offline,
	// offline_access and Options.Scopes.
	Scopes []string
	// Audience is the list of audiences the client may request or be
	// granted.
	Audience []string
	// TokenEndpointAuthMethod is client_secret_basic (Hydra's default),
	// client_secret_post, private_key_jwt or none (a public client).
	TokenEndpointAuthMethod string
}

// Client is a client Hydra created.
type Client struct {
	ID                      string
	Secret                  string
	RedirectURIs            []string
	Scopes                  []string
	Audience                []string
	TokenEndpointAuthMethod string
}

type hydraClient struct {
	ClientID                string   `json:"client_id,omitempty"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	RedirectURIs            []string `json:"redirect_uris,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	Audience                []string `json:"audience"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
}

// CreateClient creates a client with POST /admin/clients.
func (s *Server) CreateClient(t testing.TB, spec ClientSpec) Client {
	t.Helper()
	c, err := s.createClient(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *Server) createClient(ctx context.Context, spec ClientSpec) (Client, error) {
	in := hydraClient{
		ClientID:                spec.ID,
		ClientSecret:            spec.Secret,
		ClientName:              spec.Name,
		RedirectURIs:            spec.RedirectURIs,
		GrantTypes:              spec.GrantTypes,
		ResponseTypes:           spec.ResponseTypes,
		Scope:                   strings.Join(spec.Scopes, " "),
		Audience:                spec.Audience,
		TokenEndpointAuthMethod: spec.TokenEndpointAuthMethod,
	}
	if in.GrantTypes == nil {
		in.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	if in.ResponseTypes == nil {
		in.ResponseTypes = []string{"code"}
	}
	if in.Scope == "" {
		in.Scope = strings.Join(append([]string{"openid", "offline", "offline_access"}, s.opts.Scopes...), " ")
	}
	if in.Audience == nil {
		in.Audience = []string{}
	}
	var out hydraClient
	if err := s.doJSON(ctx, http.MethodPost, s.AdminURL+"/admin/clients", in, &out, http.StatusCreated); err != nil {
		return Client{}, fmt.Errorf("creating hydra client: %w", err)
	}
	return Client{
		ID:                      out.ClientID,
		Secret:                  out.ClientSecret,
		RedirectURIs:            out.RedirectURIs,
		Scopes:                  strings.Fields(out.Scope),
		Audience:                out.Audience,
		TokenEndpointAuthMethod: out.TokenEndpointAuthMethod,
	}, nil
}

// ListClients returns the ids of every OAuth client Hydra knows (GET /admin/clients): a test that
// must not register a client checks that the list did not grow.
func (s *Server) ListClients(t testing.TB) []string {
	t.Helper()
	var out []struct {
		ClientID string `json:"client_id"`
	}
	if err := s.getJSON(context.Background(), s.AdminURL+"/admin/clients", &out); err != nil {
		t.Fatalf("listing hydra clients: %v", err)
	}
	ids := make([]string, len(out))
	for i, c := range out {
		ids[i] = c.ClientID
	}
	return ids
}

// DeleteClient deletes a client with DELETE /admin/clients/{id}; its tokens
// stop working and a later token request fails with invalid_client.
func (s *Server) DeleteClient(t testing.TB, clientID string) {
	t.Helper()
	err := s.doJSON(context.Background(), http.MethodDelete, s.AdminURL+"/admin/clients/"+url.PathEscape(clientID), nil, nil, http.StatusNoContent)
	if err != nil {
		t.Fatalf("deleting hydra client %s: %v", clientID, err)
	}
}

// RevokeConsent revokes every consent subject gave, to all clients, with
// the access and refresh tokens issued under it: a refresh then fails with
// invalid_grant, as when a user revokes a grant at the authorization server.
func (s *Server) RevokeConsent(t testing.TB, subject string) {
	t.Helper()
	q := url.Values{"subject": {subject}, "all": {"true"}}
	err := s.doJSON(context.Background(), http.MethodDelete, s.AdminURL+"/admin/oauth2/auth/sessions/consent?"+q.Encode(), nil, nil, http.StatusNoContent)
	if err != nil {
		t.Fatalf("revoking consent of %s: %v", subject, err)
	}
}

// Introspection is Hydra's RFC 7662 introspection answer.
type Introspection struct {
	Active    bool           `json:"active"`
	Subject   string         `json:"sub"`
	ClientID  string         `json:"client_id"`
	Scope     string         `json:"scope"`
	Audience  []string       `json:"aud"`
	Issuer    string         `json:"iss"`
	ExpiresAt int64          `json:"exp"`
	IssuedAt  int64          `json:"iat"`
	TokenUse  string         `json:"token_use"`
	TokenType string         `json:"token_type"`
	Ext       map[string]any `json:"ext"`
}

// Introspect asks Hydra's admin introspection endpoint about token (an
// access or refresh token).
func (s *Server) Introspect(t testing.TB, token string) Introspection {
	t.Helper()
	var out Introspection
	form := url.Values{"token": {token}}
	req, err := http.NewRequest(http.MethodPost, s.AdminURL+"/admin/oauth2/introspect", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := s.do(req, &out, http.StatusOK); err != nil {
		t.Fatalf("introspecting token: %v", err)
	}
	return out
}

// OAuth2Config is an x/oauth2 config for c against this Hydra.
func (s *Server) OAuth2Config(c Client, redirectURI string, scopes ...string) *oauth2.Config {
	style := oauth2.AuthStyleInHeader
	if c.TokenEndpointAuthMethod == "client_secret_post" || c.TokenEndpointAuthMethod == "none" {
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{
		ClientID:     c.ID,
		ClientSecret: c.Secret,
		RedirectURL:  redirectURI,
		Scopes:       scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:   s.AuthURL(),
			TokenURL:  s.TokenURL(),
			AuthStyle: style,
		},
	}
}

func (s *Server) getJSON(ctx context.Context, u string, out any) error {
	return s.doJSON(ctx, http.MethodGet, u, nil, out, http.StatusOK)
}

// doJSON sends in as JSON (when not nil) and decodes the answer into out
// (when not nil), failing on any status but want.
func (s *Server) doJSON(ctx context.Context, method, u string, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	return s.do(req, out, want)
}

func (s *Server) do(req *http.Request, out any, want int) error {
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("reading %s %s: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, req.URL.Path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decoding %s %s: %w", req.Method, req.URL.Path, err)
		}
	}
	return nil
}
