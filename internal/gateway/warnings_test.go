package gateway_test

import (
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// A shared-oauth grant served to anonymous callers by explicit opt-in (allowAnonymousCallers)
// starts, and the gateway says so at start, naming the route and the policy.
func TestAnonymousSharedGrantWarnsAtStart(t *testing.T) {
	up := gatewaytest.NewFakeUpstream(t)
	dir := gatewaytest.Project(t, map[string]string{
		"config/policies.json": `{"policies":[
	 {"name":"mcp-token-exchange-wiki","policyType":"mcp-token-exchange-inbound","handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpTokenExchangeInboundPolicy",
	   "options":{"displayName":"Wiki","authMode":"shared-oauth","allowAnonymousCallers":true}}}]}`,
		"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{
	 "/mcp/wiki":{"get,post":{"operationId":"wiki-mcp","x-zuplo-route":{
	   "handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"` + up.URL + `/mcp/wiki"}},
	   "policies":{"inbound":["mcp-token-exchange-wiki"]}}}}}}`,
	})
	gw := gatewaytest.New(t, gatewaytest.Options{Dir: dir})
	var warning string
	for line := range strings.SplitSeq(gw.Logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "anonymous callers") {
			warning = line
		}
	}
	if warning == "" {
		t.Fatalf("no warning about anonymous callers at start; log:\n%s", gw.Logs.String())
	}
	for _, want := range []string{`mcp-token-exchange-wiki`, `route \"get,post /mcp/wiki\"`, "allowAnonymousCallers: true"} {
		if !strings.Contains(warning, want) {
			t.Errorf("warning %s does not name %s", warning, want)
		}
	}
}
