package tokenexchange

import (
	"net/http"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
)

// HandleRequest is a placeholder until the runtime lands; delete this file then.
func (p *Policy) HandleRequest(*policy.Context, *http.Request) (*http.Response, error) {
	return nil, problem.New(http.StatusInternalServerError, "policy "+Export+" is not available in this build yet", nil)
}
