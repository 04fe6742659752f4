package proxy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
)

// TestHandleBeforeProvisionRefuses: a proxy handler that was never provisioned would forward
// without the host's settings (timeouts, body limit), so it refuses with a configuration error
// instead of silently using defaults.
func TestHandleBeforeProvisionRefuses(t *testing.T) {
	for _, h := range []policy.Handler{&MCPProxy{Options: Options{RewritePattern: "http://127.0.0.1:9/mcp"}},
		&URLRewrite{Options: Options{RewritePattern: "http://127.0.0.1:9/"}}} {
		req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(`{}`))
		err := h.Handle(&policy.Context{}, httptest.NewRecorder(), req)
		var pe *problem.Error
		if !errors.As(err, &pe) || pe.Status != http.StatusInternalServerError || pe.Reason != "gateway_configuration" {
			t.Errorf("%T.Handle before Provision: %v", h, err)
		}
	}
}
