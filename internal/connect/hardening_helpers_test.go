package connect_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcpgate/mcpgate/internal/mcpwire"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
	"github.com/mcpgate/mcpgate/internal/testutil/mcpupstream"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// hardeningOptions extend clusterOptions for the hardening tests.
type hardeningOptions struct {
	clusterOptions
	// transport is the gateways' upstream transport (nil: the proxy's own).
	transport http.RoundTripper
	// upstream starts the Hydra-protected upstream and returns its MCP URL; nil starts
	// mcpupstream (with extraScope, and advertiseScopes when set).
	upstream        func(t *testing.T, h *hydra.Server) string
	advertiseScopes []string
	// forcedInterval, when set, replaces connect.ForcedRefreshInterval in every manager.
	forcedInterval time.Duration
}

// newHardeningCluster is newCluster with the hardening options: the same Hydra, shared SQLite
// store, key ring and project, one gatewaytest.Gateway per instance.
func newHardeningCluster(t *testing.T, o hardeningOptions) *cluster {
	t.Helper()
	if o.instances == 0 {
		o.instances = 2
	}
	if len(o.hydra.Scopes) == 0 {
		o.hydra.Scopes = []string{"mcp"}
	}
	h := hydra.Start(t, o.hydra)
	var up *mcpupstream.Server
	var upURL string
	if o.upstream != nil {
		upURL = o.upstream(t, h)
	} else {
		up = mcpupstream.Start(t, mcpupstream.Options{Issuer: h.PublicURL, IntrospectURL: h.AdminURL + "/admin/oauth2/introspect",
			ExtraScope: o.extraScope, AdvertiseScopes: o.advertiseScopes})
		upURL = up.URL
	}
	key, err := vault.GenerateKey("k1", func() string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ring, err := vault.ParseRing(key)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, hydra: h, upstream: up, ring: ring, ringKey: key, opts: o.clusterOptions,
		project: writeProjectMode(t, upURL, authModeOf(o.clusterOptions)), logs: &gatewaytest.Buffer{},
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}, Timeout: 60 * time.Second}}
	t.Cleanup(c.client.CloseIdleConnections)
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(c.logs.String(), "\n") {
				if !strings.Contains(l, "msg=request ") && l != "" {
					t.Log(l)
				}
			}
		}
	})
	c.dbPath = filepath.Join(t.TempDir(), "db.sqlite")
	c.open = sqliteOpener(c.dbPath, ring)
	for range o.instances {
		log := slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("instance", len(c.gws))
		g := gatewaytest.New(t, gatewaytest.Options{Dir: c.project, Store: c.open(t), Ring: ring, Metrics: true, Logger: log,
			Proxy: policy.ProxySettings{Transport: o.transport},
			BeforeStart: func(g *gatewaytest.Gateway) {
				if o.forcedInterval > 0 {
					g.Manager.SetForcedRefreshIntervalForTest(o.forcedInterval)
				}
			}})
		c.gws = append(c.gws, g)
	}
	return c
}

// refusingTransport is the gateways' upstream transport in tests that need an upstream to refuse
// one request although its token is valid (for that request's own reasons: its parameters, the
// resource it names). It is a fake in front of the real upstream, named so: the Go SDK server
// verifies every token at Hydra and cannot be told to refuse one request. It forwards every
// request to the real upstream unchanged, except that for a request it is told to refuse it
// replaces the bearer token with one Hydra never issued, so the 401 (and its WWW-Authenticate)
// is the real upstream's own answer. It refuses every request whose query has param, and the
// next `next` requests.
type refusingTransport struct {
	base    http.RoundTripper
	param   string
	next    atomic.Int64
	refused atomic.Int64
}

func newRefusingTransport(param string) *refusingTransport {
	return &refusingTransport{base: http.DefaultTransport.(*http.Transport).Clone(), param: param}
}

func (rt *refusingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	refuse := rt.param != "" && r.URL.Query().Has(rt.param)
	for !refuse {
		n := rt.next.Load()
		if n <= 0 {
			break
		}
		refuse = rt.next.CompareAndSwap(n, n-1)
	}
	if refuse {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer not-issued-by-the-authorization-server")
		rt.refused.Add(1)
	}
	return rt.base.RoundTrip(r)
}

// hcall posts body as user to instance i's /mcp/up (with query, "" for none) with the extra
// headers hdr. Safe from any goroutine.
func (c *cluster) hcall(i int, user, query, body string, hdr map[string]string) answer {
	u := c.gws[i].URL + "/mcp/up"
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest("POST", u, strings.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	req.Header.Set(gatewaytest.UserHeader, user)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func toolsCall(tool string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
}

const initializeBody = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",` +
	`"capabilities":{"elicitation":{"url":{}}},"clientInfo":{"name":"hardening-test","version":"1"}}}`

// upstreamSessionOf reads the upstream's own session id out of a gateway session id (its payload
// is signed, not encrypted: anyone holding the gateway id can read it).
func upstreamSessionOf(t *testing.T, sid string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(sid, mcpwire.SessionPrefix)
	if !ok {
		t.Fatalf("%q is not a gateway session id", sid)
	}
	payload, _, _ := strings.Cut(rest, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		U string `json:"u"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return p.U
}

// startSessionUpstream starts a stateful Go SDK Streamable HTTP server (it issues its own
// Mcp-Session-Id on initialize and binds each session to the token's user, as the SDK does) behind
// the SDK's bearer-token middleware, verifying every token by introspection at Hydra, audience
// included. Requests without a session id other than initialize are served statelessly by the
// same server, so the cluster's connect helper (a bare tools/call) works. Tools: whoami
// ("subject=<sub>") and session (the id of the session the call ran in).
func startSessionUpstream(t *testing.T, h *hydra.Server) string {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mcpURL := srv.URL + "/mcp"
	prmURL := srv.URL + "/.well-known/oauth-protected-resource/mcp"
	mux.Handle("/.well-known/oauth-protected-resource/mcp", auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource: mcpURL, AuthorizationServers: []string{h.PublicURL}, ScopesSupported: []string{"mcp"}, BearerMethodsSupported: []string{"header"},
	}))
	server := mcp.NewServer(&mcp.Implementation{Name: "session-upstream", Version: "1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "The subject of the caller's upstream token."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "subject=" + req.Extra.TokenInfo.UserID}}}, nil, nil
		})
	mcp.AddTool(server, &mcp.Tool{Name: "session", Description: "The session this call ran in."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "session=" + req.Session.ID()}}}, nil, nil
		})
	stateful := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{JSONResponse: true})
	stateless := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	both := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if r.Header.Get(mcpwire.SessionHeader) == "" && !strings.Contains(string(body), `"initialize"`) {
			stateless.ServeHTTP(w, r)
			return
		}
		stateful.ServeHTTP(w, r)
	})
	mux.Handle("/mcp", auth.RequireBearerToken(introspectVerifier(h, mcpURL), &auth.RequireBearerTokenOptions{ResourceMetadataURL: prmURL, Scopes: []string{"mcp"}})(both))
	return mcpURL
}

// introspectVerifier verifies an upstream's bearer tokens with Hydra's introspection: active, for
// the resource mcpURL.
func introspectVerifier(h *hydra.Server, mcpURL string) auth.TokenVerifier {
	introspectURL := h.AdminURL + "/admin/oauth2/introspect"
	return func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, introspectURL, strings.NewReader(url.Values{"token": {token}}.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var in struct {
			Active   bool     `json:"active"`
			Subject  string   `json:"sub"`
			Scope    string   `json:"scope"`
			Audience []string `json:"aud"`
			Exp      int64    `json:"exp"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&in) != nil {
			return nil, fmt.Errorf("introspection: HTTP %d", resp.StatusCode)
		}
		if !in.Active || !slices.Contains(in.Audience, mcpURL) {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{Scopes: strings.Fields(in.Scope), Expiration: time.Unix(in.Exp, 0), UserID: in.Subject}, nil
	}
}

// wantRefusedFresh asserts the answer to a request the upstream refused with a fresh token: a
// JSON-RPC error naming the upstream, no link, never a connect-required.
func wantRefusedFresh(t *testing.T, a answer) {
	t.Helper()
	e, _ := a.json()["error"].(map[string]any)
	if a.err != nil || a.status != 200 || e == nil || e["code"] != float64(-32004) {
		t.Fatalf("want JSON-RPC error -32004, got %v", a)
	}
	msg, _ := e["message"].(string)
	if !strings.Contains(msg, "Hydra Upstream refused this request with a fresh token") {
		t.Errorf("message %q", msg)
	}
	if d := a.errorData(); d["reasonCode"] != "upstream_refused_fresh_token" || d["upstreamServerId"] != "hydra-up" || d["authUrl"] != nil {
		t.Errorf("error data %v", d)
	}
	if strings.Contains(string(a.body), "browserTicket") {
		t.Error("the answer carries a connect link")
	}
}
