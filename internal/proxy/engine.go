package proxy

import (
	"net/http"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/problem"
)

// engine is the shared forwarding engine (work in progress).
type engine struct{}

// Handle serves one request.
func (p *MCPProxy) Handle(c *policy.Context, w http.ResponseWriter, r *http.Request) error {
	return problem.New(http.StatusNotImplemented, "The proxy is not available yet.", nil)
}

// Handle serves one request.
func (p *URLRewrite) Handle(c *policy.Context, w http.ResponseWriter, r *http.Request) error {
	return problem.New(http.StatusNotImplemented, "The proxy is not available yet.", nil)
}

var (
	_ policy.Handler   = (*MCPProxy)(nil)
	_ policy.Handler   = (*URLRewrite)(nil)
	_ policy.Validator = (*MCPProxy)(nil)
	_ policy.Validator = (*URLRewrite)(nil)
)
