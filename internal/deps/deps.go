//go:build tools

// Package deps pins the modules the project builds on, so go mod tidy keeps them while packages land.
package deps

import (
	_ "github.com/spf13/cobra"
	_ "github.com/modelcontextprotocol/go-sdk/mcp"
	_ "github.com/modelcontextprotocol/go-sdk/oauthex"
	_ "github.com/modelcontextprotocol/go-sdk/auth"
	_ "golang.org/x/oauth2"
	_ "modernc.org/sqlite"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/tailscale/hujson"
	_ "github.com/lestrrat-go/jwx/v3/jwt"
	_ "golang.org/x/sync/singleflight"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/chromedp/chromedp"
	_ "golang.org/x/term"
	_ "golang.org/x/crypto/hkdf"
)
