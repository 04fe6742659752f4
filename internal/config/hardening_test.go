package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
)

const sharedPolicies = `{"policies":[
 {"name":"key","policyType":"api-key-inbound","handler":{"module":"$import(@zuplo/runtime)","export":"ApiKeyInboundPolicy","options":{}}},
 {"name":"mcp-token-exchange-tracker","policyType":"mcp-token-exchange-inbound","handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpTokenExchangeInboundPolicy","options":{"displayName":"Tracker","authMode":"shared-oauth"OPTIN}}}]}`

func sharedRoutes(inbound string) string {
	return `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{` + reviewMCPRoute("/mcp/tracker", "tracker", "https://tracker.example/mcp", inbound) + `}}`
}

// A shared-oauth grant is never served to anonymous callers by accident: without a gateway auth
// policy before the token exchange the route is an error naming the route and the policy; with
// allowAnonymousCallers it loads, and the project carries a warning naming both.
func TestSharedGrantNeedsAuthOrOptIn(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }

	_, err := config.Load(reviewWriteConfig(t, strings.Replace(sharedPolicies, "OPTIN", "", 1), sharedRoutes(`"mcp-token-exchange-tracker"`)), noEnv)
	var errs config.Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("Load = %v, want one problem", err)
	}
	if s := errs[0].String(); !strings.Contains(s, `route "post /mcp/tracker"`) || !strings.Contains(s, `policy "mcp-token-exchange-tracker" (shared-oauth)`) ||
		!strings.Contains(s, "anonymous callers") || !strings.Contains(s, "allowAnonymousCallers: true") {
		t.Errorf("problem %q does not name the route, the policy and the way out", s)
	}

	p, err := config.Load(reviewWriteConfig(t, strings.Replace(sharedPolicies, "OPTIN", `,"allowAnonymousCallers":true`, 1), sharedRoutes(`"mcp-token-exchange-tracker"`)), noEnv)
	if err != nil {
		t.Fatalf("with allowAnonymousCallers: %v", err)
	}
	if len(p.Warnings) != 1 {
		t.Fatalf("warnings = %v, want one", p.Warnings)
	}
	if w := p.Warnings[0].String(); !strings.Contains(w, `route "post /mcp/tracker"`) || !strings.Contains(w, `policy "mcp-token-exchange-tracker"`) || !strings.Contains(w, "anonymous callers") {
		t.Errorf("warning %q does not name the route and the policy", w)
	}

	// Behind a gateway auth policy that requires a credential there is nothing to warn about.
	p, err = config.Load(reviewWriteConfig(t, strings.Replace(sharedPolicies, "OPTIN", `,"allowAnonymousCallers":true`, 1), sharedRoutes(`"key","mcp-token-exchange-tracker"`)), noEnv)
	if err != nil || len(p.Warnings) != 0 {
		t.Fatalf("behind api-key: err %v, warnings %v", err, p.Warnings)
	}
}

// The gateway's own variables (MCPGATE_*) are refused by name before anything is looked up: the
// loader never reads them, whatever the letter case and whichever syntax names them.
func TestGatewayEnvNeverRead(t *testing.T) {
	var asked []string
	_, err := config.Load("testdata/broken/gateway-env-name", func(name string) (string, bool) {
		asked = append(asked, name)
		return lookup(name)
	})
	var errs config.Errors
	if !errors.As(err, &errs) || len(errs) != 4 {
		t.Fatalf("Load = %v, want four problems", err)
	}
	for _, name := range asked {
		if strings.HasPrefix(strings.ToUpper(name), "MCPGATE_") {
			t.Errorf("the loader looked up %s", name)
		}
	}
	if strings.Contains(err.Error(), testEnv["MCPGATE_DEMO_UPSTREAM"]) {
		t.Errorf("a gateway variable's value appears in the messages: %v", err)
	}
}

// A value built only from config text (every variable in it unset) is shown as the config text
// where it is quoted, and does not garble the rest of the message.
func TestUnsetInterpolationKeepsMessageText(t *testing.T) {
	dir := reviewWriteConfig(t, `{"corsPolicies":[{"name":"app","allowedOrigins":"https://$env(UNSET_HOST)"}]}`,
		`{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{`+reviewMCPRoute("/mcp/a", "a", "https://a.example/mcp", "")+`}}`)
	_, err := config.Load(dir, func(string) (string, bool) { return "", false })
	want := `config/policies.json: corsPolicies[0].allowedOrigins (corsPolicy "app"): entry 0 must be "*" or an origin such as https://app.example.com, got "https://$env(UNSET_HOST)"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Load = %v\nwant a problem %s", err, want)
	}
}
