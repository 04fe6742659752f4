package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
	"github.com/mcpgate/mcpgate/internal/testutil/redistest"
)

// rateLimitProject has two MCP routes to one upstream, each behind one rate limit for all callers
// together: /mcp/strict (20 per 10 minutes, mode strict) and /mcp/async (10 per 10 minutes, async).
// The windows are long so that none ends during the test.
func rateLimitProject(t *testing.T, upstream string) string {
	route := func(path, id, limit string) string {
		return `"` + path + `":{"post":{"operationId":"` + id + `","x-zuplo-route":{"corsPolicy":"none",
		  "handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"` + upstream + `/mcp"}},
		  "policies":{"inbound":["` + limit + `"]}}}}`
	}
	policy := func(name, options string) string {
		return `{"name":"` + name + `","policyType":"rate-limit-inbound","handler":{"module":"$import(@zuplo/runtime)","export":"RateLimitInboundPolicy","options":` + options + `}}`
	}
	return gatewaytest.Project(t, map[string]string{
		"config/policies.json": `{"policies":[` +
			policy("strict-limit", `{"rateLimitBy":"all","requestsAllowed":20,"timeWindowMinutes":10}`) + `,` +
			policy("async-limit", `{"rateLimitBy":"all","requestsAllowed":10,"timeWindowMinutes":10,"mode":"async"}`) + `]}`,
		"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{` +
			route("/mcp/strict", "strict", "strict-limit") + `,` + route("/mcp/async", "async", "async-limit") + `}}`,
	})
}

// TestRateLimitsAcrossReplicas: three `mcpgate serve` processes on one Redis server
// (MCPGATE_REDIS_URL). Strict: of 60 concurrent requests spread over the three, exactly 20 (the
// limit) succeed; the others are 429 with Retry-After. Async: each replica counts locally, so
// together they may allow more than the limit before they sync; once synced, the Redis total is
// exactly what they allowed and every replica refuses.
func TestRateLimitsAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}))
	t.Cleanup(up.Close)
	project := rateLimitProject(t, up.URL)
	var replicas []string
	for range 3 {
		s := startServe(t, t.TempDir(), []string{"MCPGATE_REDIS_URL=" + srv.URL}, "--config", project, "--listen", "127.0.0.1:0")
		if s.log("rate limits are counted in Redis, across replicas") == nil {
			t.Errorf("serve did not say it counts in Redis:\n%s", s.output())
		}
		addr, _ := s.log("mcpgate listening")["address"].(string)
		replicas = append(replicas, "http://"+addr)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}, Timeout: 10 * time.Second}
	send := func(base, path string) (int, string) {
		resp, err := client.Post(base+path, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}

	t.Run("strict", func(t *testing.T) {
		codes := map[int]int{}
		var badRetry []string
		for i := range 60 {
			wg.Go(func() {
				code, retry := send(replicas[i%3], "/mcp/strict")
				mu.Lock()
				defer mu.Unlock()
				codes[code]++
				if code == http.StatusTooManyRequests {
					if n, err := strconv.Atoi(retry); err != nil || n < 1 || n > 600 {
						badRetry = append(badRetry, retry)
					}
				}
			})
		}
		wg.Wait()
		if codes[http.StatusOK] != 20 || codes[http.StatusTooManyRequests] != 40 {
			t.Errorf("answers %v, want exactly 20 × 200 and 40 × 429 across the three replicas", codes)
		}
		if len(badRetry) > 0 {
			t.Errorf("429s with Retry-After %q, want 1 to 600 seconds", badRetry)
		}
	})

	t.Run("async", func(t *testing.T) {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { _ = rdb.Close() })
		total := func() int {
			n, err := rdb.Get(context.Background(), "mcpgate:ratelimit:async-limit|all|").Int()
			if err != nil && !errors.Is(err, redis.Nil) {
				t.Fatal(err)
			}
			return n
		}
		allowed := 0
		count := func(base string) int {
			code, _ := send(base, "/mcp/async")
			if code == http.StatusOK {
				allowed++
			}
			return code
		}
		for _, base := range replicas {
			for range 4 {
				count(base)
			}
		}
		// No replica refuses before what it knows reaches the limit.
		if allowed < 10 {
			t.Fatalf("%d of 12 allowed, want at least the limit (10)", allowed)
		}
		// Every replica learns the total at its next sync, and refuses from then on. Until it has,
		// it may allow a request or two more, which it counts and sends like any other.
		for i, base := range replicas {
			gatewaytest.Eventually(t, 10*time.Second, "replica "+strconv.Itoa(i)+" refuses", func() bool {
				return count(base) == http.StatusTooManyRequests
			})
		}
		gatewaytest.Eventually(t, 10*time.Second, "the Redis total reaches what was allowed", func() bool { return total() == allowed })
		for i, base := range replicas {
			if code := count(base); code != http.StatusTooManyRequests {
				t.Errorf("replica %d after the sync: %d, want 429", i, code)
			}
		}
		if n := total(); n != allowed {
			t.Errorf("Redis total %d, want %d (every allowed request, and only those)", n, allowed)
		}
		t.Logf("async: %d allowed for a limit of 10 (overshoot before the replicas synced)", allowed)
	})
}

// TestServeRefusesMalformedRedisURL: a MCPGATE_REDIS_URL that does not parse stops serve, named,
// without quoting the password; an unreachable Redis does not (it is logged).
func TestServeRefusesMalformedRedisURL(t *testing.T) {
	r := runCLIExit(t, t.TempDir(), []string{"MCPGATE_REDIS_URL=redis://u:hunter2@127.0.0.1:notaport/0"}, 30*time.Second,
		"serve", "--config", serveProject(t), "--listen", "127.0.0.1:0")
	if r.code != 1 || !strings.Contains(r.stderr, "MCPGATE_REDIS_URL") || strings.Contains(r.stderr, "hunter2") {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 naming MCPGATE_REDIS_URL, without the password", r.code, r.stderr)
	}
	srv := redistest.Start(t)
	srv.Stop()
	s := startServe(t, t.TempDir(), []string{"MCPGATE_REDIS_URL=" + srv.URL}, "--config", serveProject(t), "--listen", "127.0.0.1:0")
	if s.log("rate-limit store not reachable at start; serving anyway") == nil {
		t.Errorf("no warning about the unreachable Redis:\n%s", s.output())
	}
}
