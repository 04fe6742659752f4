// Package demo is a small MCP server the gateway can start by itself (mcpgate serve --demo), so the
// quickstart shows a real tools/call answered through the gateway with nothing else installed.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// EchoArgs are the arguments of the echo tool.
type EchoArgs struct {
	Text string `json:"text" jsonschema:"the text to echo back"`
}

// AddArgs are the arguments of the add tool.
type AddArgs struct {
	A float64 `json:"a" jsonschema:"first addend"`
	B float64 `json:"b" jsonschema:"second addend"`
}

// AddResult is the structured result of add.
type AddResult struct {
	Sum float64 `json:"sum"`
}

// CountdownArgs are the arguments of the countdown tool.
type CountdownArgs struct {
	From    int `json:"from" jsonschema:"count down from this number (1-20)"`
	DelayMs int `json:"delayMs,omitempty" jsonschema:"pause between steps in milliseconds (default 200)"`
}

// NewServer returns the demo MCP server: echo, add and countdown (which streams progress).
func NewServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "mcpgate-demo", Version: "1.0.0"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echo the text back."},
		func(_ context.Context, _ *mcp.CallToolRequest, in EchoArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "add", Description: "Add two numbers."},
		func(_ context.Context, _ *mcp.CallToolRequest, in AddArgs) (*mcp.CallToolResult, AddResult, error) {
			return nil, AddResult{Sum: in.A + in.B}, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "countdown", Description: "Count down, sending a progress notification per step."},
		func(ctx context.Context, req *mcp.CallToolRequest, in CountdownArgs) (*mcp.CallToolResult, any, error) {
			if in.From < 1 || in.From > 20 {
				return nil, nil, errors.New("from must be between 1 and 20")
			}
			delay := time.Duration(in.DelayMs) * time.Millisecond
			if in.DelayMs <= 0 {
				delay = 200 * time.Millisecond
			}
			token := req.Params.GetProgressToken()
			for i := in.From; i > 0; i-- {
				if token != nil {
					_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
						ProgressToken: token, Progress: float64(in.From - i + 1), Total: float64(in.From),
						Message: fmt.Sprintf("%d…", i),
					})
				}
				select {
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				case <-time.After(delay):
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "liftoff"}}}, nil, nil
		})
	return s
}

// NewOAuthServer is the demo server with one more tool, whoami, which names the user the caller's
// upstream token belongs to.
func NewOAuthServer() *mcp.Server {
	s := NewServer()
	mcp.AddTool(s, &mcp.Tool{Name: "whoami", Description: "Say which demo user this call's upstream token belongs to."},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			user := "unknown"
			if ti := req.Extra.TokenInfo; ti != nil {
				user = ti.UserID
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "You are " + user + " at the demo upstream."}}}, nil, nil
		})
	return s
}

// Handler serves the demo server over stateless Streamable HTTP.
func Handler(logger *slog.Logger) http.Handler {
	s := NewServer()
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
		&mcp.StreamableHTTPOptions{Stateless: true, Logger: logger})
}

// Start serves the demo upstream on addr (host:port; port 0 picks a free one) and returns its base
// URL: a public MCP server at /mcp, and at /mcp-oauth the same server (plus whoami) protected by
// the demo's own OAuth authorization server at the base URL. It stops when ctx is done.
func Start(ctx context.Context, addr string, logger *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("starting demo upstream: %w", err)
	}
	base := "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("/mcp", Handler(logger))
	as := newAuthServer(base, base+"/mcp-oauth")
	as.routes(mux)
	as.protectedHandler(NewOAuthServer(), mux, "/mcp-oauth")
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	return base, nil
}
