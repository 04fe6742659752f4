package connect_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcpgate/mcpgate/internal/mcpwire"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
)

// startResumableUpstream is a Hydra-protected Go SDK server with an event store whose "poll" tool
// ends the call's SSE stream before answering (SEP-1699) and answers, with the subject of the
// caller's token, only once the client resumed the stream (GET with Last-Event-ID). resumed
// receives the Authorization and session id of each resumption.
func startResumableUpstream(resumed chan<- http.Header) func(t *testing.T, h *hydra.Server) string {
	return func(t *testing.T, h *hydra.Server) string {
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		mcpURL := srv.URL + "/mcp"
		prmURL := srv.URL + "/.well-known/oauth-protected-resource/mcp"
		mux.Handle("/.well-known/oauth-protected-resource/mcp", auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
			Resource: mcpURL, AuthorizationServers: []string{h.PublicURL}, ScopesSupported: []string{"mcp"}, BearerMethodsSupported: []string{"header"},
		}))
		gotResumption := make(chan struct{})
		server := mcp.NewServer(&mcp.Implementation{Name: "resumable-upstream", Version: "1"}, nil)
		mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "The subject of the caller's upstream token."},
			func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "subject=" + req.Extra.TokenInfo.UserID}}}, nil, nil
			})
		mcp.AddTool(server, &mcp.Tool{Name: "poll", Description: "Closes its stream, answers on the resumed one."},
			func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
				if req.Extra.CloseSSEStream == nil {
					return nil, nil, errors.New("no event store")
				}
				req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: time.Millisecond})
				select {
				case <-gotResumption:
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				}
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "subject=" + req.Extra.TokenInfo.UserID}}}, nil, nil
			})
		stateful := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{EventStore: mcp.NewMemoryEventStore(nil)})
		// The connect flow's calls of whoami are lone tools/calls outside any session: served
		// statelessly. Everything else goes to the stateful handler with the event store.
		stateless := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
		first := true
		record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.Header.Get(mcpwire.SessionHeader) == "" {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				if strings.Contains(string(body), `"whoami"`) {
					stateless.ServeHTTP(w, r)
					return
				}
			}
			if mcpwire.IsResumption(r.Method, r.Header) {
				resumed <- r.Header.Clone()
				if first {
					first = false
					close(gotResumption)
				}
			}
			stateful.ServeHTTP(w, r)
		})
		mux.Handle("/mcp", auth.RequireBearerToken(introspectVerifier(h, mcpURL), &auth.RequireBearerTokenOptions{ResourceMetadataURL: prmURL, Scopes: []string{"mcp"}})(record))
		return mcpURL
	}
}

// replicaSplit sends a user's POSTs to one gateway instance and the resumptions to another: the
// gateway's session ids are stateless, so any replica resumes any stream.
type replicaSplit struct {
	user      string
	resumeURL *url.URL
}

func (s replicaSplit) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(gatewaytest.UserHeader, s.user)
	if mcpwire.IsResumption(r.Method, r.Header) {
		r.URL.Scheme, r.URL.Host, r.Host = s.resumeURL.Scheme, s.resumeURL.Host, s.resumeURL.Host
	}
	return http.DefaultTransport.RoundTrip(r)
}

// A user-oauth route in front of a server that ends a call's SSE stream early: the Go SDK client's
// resumption (GET + Last-Event-ID, sent to the other replica) goes through the token exchange — the
// user's own upstream token injected, the gateway's session id opened into the upstream's — and the
// result, computed from alice's token, arrives.
func TestStreamResumptionThroughTokenExchange(t *testing.T) {
	resumed := make(chan http.Header, 16)
	c := newHardeningCluster(t, hardeningOptions{clusterOptions: clusterOptions{instances: 2}, upstream: startResumableUpstream(resumed)})
	c.connect("alice")

	other, _ := url.Parse(c.gws[1].URL)
	client := mcp.NewClient(&mcp.Implementation{Name: "resume-client", Version: "v1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: c.gws[0].URL + "/mcp/up",
		HTTPClient: &http.Client{Transport: replicaSplit{user: "alice", resumeURL: other}}}, nil)
	if err != nil {
		t.Fatalf("alice connects her SDK client: %v", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "poll", Arguments: map[string]any{}})
	if err != nil || len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "subject=alice" {
		t.Fatalf("poll through the gateway: %+v, %v", res, err)
	}
	select {
	case h := <-resumed:
		if !strings.HasPrefix(h.Get("Authorization"), "Bearer ") || strings.Contains(h.Get("Authorization"), "mcpgate") {
			t.Errorf("the resumption reached the upstream with Authorization %q, want alice's upstream token", h.Get("Authorization"))
		}
		if sid := h.Get(mcpwire.SessionHeader); sid == "" || strings.HasPrefix(sid, mcpwire.SessionPrefix) {
			t.Errorf("the resumption carried session id %q, want the upstream's own", sid)
		}
	default:
		t.Fatal("the result arrived, but no resumption reached the upstream")
	}
}
