package ratelimit_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// load runs the real config loader (strict decoding, then Validate) on a project whose only
// policy is a rate limit named "limit" with these options, and returns its problems, one line each.
func load(t *testing.T, options string) []string {
	t.Helper()
	dir := gatewaytest.Project(t, map[string]string{
		"config/policies.json": `{"policies":[{"name":"limit","policyType":"rate-limit-inbound",
		  "handler":{"module":"$import(@zuplo/runtime)","export":"RateLimitInboundPolicy","options":` + options + `}}]}`,
		"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{"/mcp":{"post":{"operationId":"m",
		  "x-zuplo-route":{"handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler",
		  "options":{"rewritePattern":"https://mcp.example.com/mcp"}},"policies":{"inbound":["limit"]}}}}}}`,
	})
	_, err := config.Load(dir, func(string) (string, bool) { return "", false })
	if err == nil {
		return nil
	}
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load = %v", err)
	}
	var out []string
	for _, p := range errs {
		out = append(out, p.String())
	}
	return out
}

func TestOptionsValid(t *testing.T) {
	for _, opts := range []string{
		`{"requestsAllowed":100,"timeWindowMinutes":1}`,
		`{"rateLimitBy":"user","requestsAllowed":1,"timeWindowMinutes":0.5,"headerMode":"none","throwOnFailure":true,"mode":"async"}`,
		`{"rateLimitBy":"ip","requestsAllowed":5,"timeWindowMinutes":60,"headerMode":"retry-after","mode":"strict"}`,
		`{"rateLimitBy":"all","requestsAllowed":1000,"timeWindowMinutes":1440}`,
	} {
		if probs := load(t, opts); len(probs) != 0 {
			t.Errorf("%s:\n%s", opts, strings.Join(probs, "\n"))
		}
	}
}

// TestOptionErrors: every problem is named by file, JSON path and policy, with what to do.
func TestOptionErrors(t *testing.T) {
	const at = `config/policies.json: policies[0].handler.options.`
	const pol = ` (policy "limit"): `
	tests := []struct {
		name, options string
		want          []string
	}{
		{"function", `{"rateLimitBy":"function","identifier":{"module":"$import(./modules/id)","export":"id"},"requestsAllowed":1,"timeWindowMinutes":1}`, []string{
			at + `rateLimitBy` + pol + `"function" (a custom identifier function) is not supported by mcpgate; use "user", "ip" or "all"`,
		}},
		{"identifier without function", `{"identifier":{"module":"m","export":"e"},"requestsAllowed":1,"timeWindowMinutes":1}`, []string{
			at + `identifier` + pol + `is only read with rateLimitBy "function", which mcpgate does not support; remove it`,
		}},
		{"missing numbers", `{}`, []string{
			at + `requestsAllowed` + pol + `is required (how many requests a window allows, 1 or more)`,
			at + `timeWindowMinutes` + pol + `is required (the window's length in minutes, e.g. 1 or 0.5)`,
		}},
		{"bad values", `{"rateLimitBy":"subject","requestsAllowed":0,"timeWindowMinutes":-1,"headerMode":"x-ratelimit","mode":"eventual"}`, []string{
			at + `rateLimitBy` + pol + `must be one of user, ip, all, got "subject"`,
			at + `requestsAllowed` + pol + `must be 1 or more, got 0`,
			at + `timeWindowMinutes` + pol + `must be more than 0 and at most 527040 (a year), got -1`,
			at + `headerMode` + pol + `must be "none" or "retry-after", got "x-ratelimit"`,
			at + `mode` + pol + `must be "strict" or "async", got "eventual"`,
		}},
		{"window too long", `{"requestsAllowed":1,"timeWindowMinutes":1e9}`, []string{
			at + `timeWindowMinutes` + pol + `must be more than 0 and at most 527040 (a year), got 1e+09`,
		}},
		{"fractional requests", `{"requestsAllowed":1.5,"timeWindowMinutes":1}`, nil}, // reported by the loader's type check
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := load(t, tt.options)
			if tt.want == nil {
				if len(got) != 1 || !strings.Contains(got[0], "options.requestsAllowed") || !strings.Contains(got[0], `(policy "limit")`) {
					t.Errorf("got:\n%s\nwant one problem naming options.requestsAllowed and the policy", strings.Join(got, "\n"))
				}
				return
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
