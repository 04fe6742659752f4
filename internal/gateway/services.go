package gateway

import (
	"log/slog"
	"net/http"
	"sync"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/proxy"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// Services are the gateway-wide components a module may use. The gateway passes *Services as
// policy.Env.Services; a module type-asserts it in Provision and keeps the fields it needs.
type Services struct {
	Store store.Store
	Ring  *vault.Ring
	Audit *audit.Recorder
	// URLs derives public URLs (redirect URIs, connect links, metadata documents). New fills it.
	URLs *URLs
	// SafeHTTPAllow lists hosts/CIDRs for which outbound OAuth calls may use http and private
	// addresses (MCPGATE_SAFEHTTP_ALLOW; development and tests).
	SafeHTTPAllow []string
	// Register adds a gateway endpoint (pattern as http.ServeMux). New fills it.
	Register func(pattern string, h http.Handler)
	// Authenticate authenticates a gateway endpoint's request as a route would (see
	// Authenticator). New fills it.
	Authenticate Authenticator
	Logger       *slog.Logger
	// Proxy holds the MCP proxy's gateway-level settings (header timeout, body limit); zero
	// fields take the proxy's defaults.
	Proxy proxy.Settings

	mu     sync.Mutex
	shared map[string]any
}

// Shared returns the gateway-wide component named name, building it on first use. Modules use it
// for state that must exist once per gateway however many policies use it (the connection manager).
func (s *Services) Shared(name string, build func() (any, error)) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.shared[name]; ok {
		return v, nil
	}
	v, err := build()
	if err != nil {
		return nil, err
	}
	if s.shared == nil {
		s.shared = map[string]any{}
	}
	s.shared[name] = v
	return v, nil
}

// ProxySettings implements proxy.SettingsProvider.
func (s *Services) ProxySettings() proxy.Settings { return s.Proxy }

// ServicesFrom returns the *Services in env.Services, or nil.
func ServicesFrom(v any) *Services {
	s, _ := v.(*Services)
	return s
}
