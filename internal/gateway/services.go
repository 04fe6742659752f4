package gateway

import (
	"log/slog"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/audit"
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
	Logger   *slog.Logger
}

// ServicesFrom returns the *Services in env.Services, or nil.
func ServicesFrom(v any) *Services {
	s, _ := v.(*Services)
	return s
}
