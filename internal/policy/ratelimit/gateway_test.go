package ratelimit_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/limiter"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/testutil/redistest"
)

// upstream answers every MCP request 200.
func upstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// project is one MCP route behind the test auth policy and a rate limit named "limit" with options.
func project(t *testing.T, options string) string {
	t.Helper()
	return gatewaytest.Project(t, map[string]string{
		"config/policies.json": `{"policies":[
		  {"name":"test-user","policyType":"test-user-inbound","handler":{"module":"$import(@zuplo/runtime)","export":"TestUserInboundPolicy","options":{}}},
		  {"name":"limit","policyType":"rate-limit-inbound","handler":{"module":"$import(@zuplo/runtime)","export":"RateLimitInboundPolicy","options":` + options + `}}]}`,
		"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{"/mcp":{"post":{"operationId":"m",
		  "x-zuplo-route":{"corsPolicy":"none","handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler",
		  "options":{"rewritePattern":"` + upstream(t) + `/mcp"}},"policies":{"inbound":["test-user","limit"]}}}}}}`,
	})
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// call sends one MCP request as user ("" for none) from the client address xff (through the
// trusted loopback proxy; "" for none) and returns the response with its body read.
func call(t *testing.T, gw *gatewaytest.Gateway, user, xff string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if user != "" {
		req.Header.Set(gatewaytest.UserHeader, user)
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func status(t *testing.T, gw *gatewaytest.Gateway, user, xff string) int {
	t.Helper()
	resp, _ := call(t, gw, user, xff)
	return resp.StatusCode
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// TestRateLimitByUser: each user has their own count; the one past it gets a 429 problem naming
// the policy, with Retry-After and the request id; the window ends on the gateway's clock.
func TestRateLimitByUser(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	gw := gatewaytest.New(t, gatewaytest.Options{Dir: project(t, `{"requestsAllowed":3,"timeWindowMinutes":1}`), Now: c.now})
	for i := range 3 {
		if s := status(t, gw, "alice", ""); s != http.StatusOK {
			t.Fatalf("alice's request %d: %d", i+1, s)
		}
		c.add(10 * time.Second)
	}
	resp, body := call(t, gw, "alice", "")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("alice's 4th request: %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Retry-After"); got != "30" {
		t.Errorf("Retry-After %q, want 30 (the window opened 30 s before it ends)", got)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
		Reason string `json:"reasonCode"`
		Trace  struct {
			RequestID string `json:"requestId"`
		} `json:"trace"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != 429 || p.Reason != "rate_limited" || p.Trace.RequestID == "" || p.Trace.RequestID != resp.Header.Get("X-Request-Id") ||
		p.Detail != "Rate limit exceeded: limit allows 3 requests per minute per user." {
		t.Errorf("problem %+v (X-Request-Id %q)", p, resp.Header.Get("X-Request-Id"))
	}
	if s := status(t, gw, "bob", ""); s != http.StatusOK {
		t.Errorf("bob: %d", s)
	}
	c.add(30*time.Second - time.Millisecond)
	if s := status(t, gw, "alice", ""); s != http.StatusTooManyRequests {
		t.Errorf("a millisecond before the window ends: %d", s)
	}
	c.add(time.Millisecond)
	if s := status(t, gw, "alice", ""); s != http.StatusOK {
		t.Errorf("after the window: %d", s)
	}
}

// TestRateLimitByIP: counted per client address, as --trusted-proxies reveals it (an IPv6 /64 as
// one), whoever the user; a caller cannot pick its own address through an untrusted hop.
func TestRateLimitByIP(t *testing.T) {
	gw := gatewaytest.New(t, gatewaytest.Options{Dir: project(t, `{"rateLimitBy":"ip","requestsAllowed":2,"timeWindowMinutes":1}`), TrustedProxies: loopback})
	for _, user := range []string{"alice", "bob"} {
		if s := status(t, gw, user, "192.0.2.1"); s != http.StatusOK {
			t.Fatalf("%s from 192.0.2.1: %d", user, s)
		}
	}
	if s := status(t, gw, "carol", "192.0.2.1"); s != http.StatusTooManyRequests {
		t.Errorf("a third user from the same address: %d, want 429", s)
	}
	if s := status(t, gw, "", "192.0.2.1, 192.0.2.2"); s != http.StatusOK {
		t.Errorf("another address: %d", s)
	}
	// The nearest untrusted hop is the client: what it put to the left does not count.
	if s := status(t, gw, "", "203.0.113.9, 192.0.2.1"); s != http.StatusTooManyRequests {
		t.Errorf("a spoofed hop left of the client's address: %d, want 429", s)
	}
	status(t, gw, "", "2001:db8:1:2::1")
	status(t, gw, "", "2001:db8:1:2::2")
	if s := status(t, gw, "", "2001:db8:1:2:ffff::3"); s != http.StatusTooManyRequests {
		t.Errorf("a third address of one IPv6 /64: %d, want 429", s)
	}
}

// TestRateLimitByAll: one count for every caller, no Retry-After with headerMode none.
func TestRateLimitByAll(t *testing.T) {
	gw := gatewaytest.New(t, gatewaytest.Options{Dir: project(t, `{"rateLimitBy":"all","requestsAllowed":2,"timeWindowMinutes":0.5,"headerMode":"none"}`), TrustedProxies: loopback})
	status(t, gw, "alice", "192.0.2.1")
	status(t, gw, "bob", "192.0.2.2")
	resp, body := call(t, gw, "carol", "192.0.2.3")
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "allows 2 requests per 30 seconds for all callers together") {
		t.Fatalf("third caller: %d %s", resp.StatusCode, body)
	}
	if v, ok := resp.Header["Retry-After"]; ok {
		t.Errorf("headerMode none sent Retry-After %q", v)
	}
}

// TestRateLimitByUserWithoutUser: a request no policy authenticated is counted by its address.
func TestRateLimitByUserWithoutUser(t *testing.T) {
	gw := gatewaytest.New(t, gatewaytest.Options{Dir: project(t, `{"requestsAllowed":1,"timeWindowMinutes":1}`), TrustedProxies: loopback})
	if s := status(t, gw, "", "192.0.2.1"); s != http.StatusOK {
		t.Fatal(s)
	}
	if s := status(t, gw, "", "192.0.2.1"); s != http.StatusTooManyRequests {
		t.Errorf("second anonymous request from one address: %d", s)
	}
	if s := status(t, gw, "", "192.0.2.2"); s != http.StatusOK {
		t.Errorf("anonymous request from another address: %d", s)
	}
	if s := status(t, gw, "alice", "192.0.2.1"); s != http.StatusOK {
		t.Errorf("a user from that address: %d", s)
	}
}

// TestRateLimitStoreUnavailable: when Redis does not answer, the request goes on by default (the
// gateway keeps serving); with throwOnFailure it is refused 503 with Retry-After.
func TestRateLimitStoreUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		options string
		want    int
	}{
		{`{"requestsAllowed":1,"timeWindowMinutes":1}`, http.StatusOK},
		{`{"requestsAllowed":1,"timeWindowMinutes":1,"throwOnFailure":true}`, http.StatusServiceUnavailable},
		{`{"requestsAllowed":1,"timeWindowMinutes":1,"mode":"async","throwOnFailure":true}`, http.StatusOK}, // async never waits on Redis: it counts locally
	} {
		rl, err := limiter.OpenRedis(srv.URL, limiter.RedisOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rl.Close() })
		gw := gatewaytest.New(t, gatewaytest.Options{Dir: project(t, tc.options), RateLimits: rl})
		if s := status(t, gw, "alice", ""); s != http.StatusOK {
			t.Fatalf("%s with Redis up: %d", tc.options, s)
		}
		srv.Stop()
		resp, body := call(t, gw, "bob", "")
		if resp.StatusCode != tc.want {
			t.Errorf("%s with Redis down: %d %s, want %d", tc.options, resp.StatusCode, body, tc.want)
		}
		if tc.want == http.StatusServiceUnavailable && (resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"reasonCode":"rate_limit_unavailable"`)) {
			t.Errorf("503 without Retry-After or reason: %v %s", resp.Header, body)
		}
		srv = redistest.Start(t)
	}
}
