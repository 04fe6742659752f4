package capfilter_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy/capfilter"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// load runs the real config loader (strict decoding, then Validate) on a project whose only
// policy is a capability filter with these options, and returns its problems, one line each.
func load(t *testing.T, options string) []string {
	t.Helper()
	dir := gatewaytest.Project(t, map[string]string{
		"config/policies.json": `{"policies":[{"name":"filter","policyType":"mcp-capability-filter-inbound",
		  "handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpCapabilityFilterInboundPolicy","options":` + options + `}}]}`,
		"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{"/mcp":{"post":{"operationId":"m",
		  "x-zuplo-route":{"handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler",
		  "options":{"rewritePattern":"https://mcp.example.com/mcp"}},"policies":{"inbound":["filter"]}}}}}}`,
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
		s := p.String()
		s = strings.TrimPrefix(s, "config/policies.json: policies[0].handler.")
		s = strings.Replace(s, ` (policy "filter")`, "", 1)
		out = append(out, s)
	}
	return out
}

func TestOptionsValid(t *testing.T) {
	for _, opts := range []string{
		`{}`,
		`{"tools":[]}`,
		`{"tools":["a",{"name":"b","description":"d","annotations":{"readOnlyHint":true,"title":"T","x-custom":[1]},"_meta":{"k":1}}],
		  "prompts":["p"],"resources":["file:///a",{"uri":"file:///b","name":"B","mimeType":"text/plain"}],
		  "resourceTemplates":["file:///{x}",{"uriTemplate":"db://{table}/{id}{?fields}","description":"rows"}]}`,
		`{"accessControl":"allPublic","tools":[{"name":"a","public":true}]}`,
		`{"accessControl":"rolesAndGroups","tools":[{"name":"a","roles":["admin"]},{"name":"b","groups":["eng"]},{"name":"c","public":true}]}`,
		`{"accessControl":{"mode":"rolesAndGroups","roleClaim":"realm_access.roles","groupClaim":"grp"},"tools":[{"name":"a","roles":["r"]}]}`,
		`{"accessControl":"rolesAndGroups","rolesClaim":"app_roles","groupsClaim":"teams","tools":[{"name":"a","roles":["r"]}]}`,
		`{"accessControl":{"mode":"rolesAndGroups","roleClaim":"x"},"rolesClaim":"x","tools":[{"name":"a","roles":["r"]}]}`,
	} {
		if probs := load(t, opts); len(probs) != 0 {
			t.Errorf("%s:\n%s", opts, strings.Join(probs, "\n"))
		}
	}
}

func TestOptionsProblems(t *testing.T) {
	for _, tc := range []struct {
		name, options string
		want          []string
	}{
		{"function mode (string)", `{"accessControl":"function","tools":["a"]}`, []string{
			`options.accessControl: "function" needs custom code (a TypeScript function named by accessControl.identifier), which mcpgate does not run; use allPublic or rolesAndGroups (roles and groups of the signed-in user)`,
		}},
		{"function mode (object) with identifier", `{"accessControl":{"mode":"function","identifier":{"module":"$import(./modules/acl)","export":"canSee"}}}`, []string{
			`options.accessControl.mode: "function" needs custom code (a TypeScript function named by accessControl.identifier), which mcpgate does not run; use allPublic or rolesAndGroups (roles and groups of the signed-in user)`,
			`options.accessControl.identifier: custom code modules are not supported; remove it and use mode allPublic or rolesAndGroups`,
		}},
		{"unknown mode", `{"accessControl":{"mode":"roles"}}`, []string{
			`options.accessControl.mode: must be one of allPublic, rolesAndGroups, function, got "roles"`,
		}},
		{"missing mode", `{"accessControl":{"roleClaim":"r"}}`, []string{
			`options.accessControl.mode: required: one of allPublic, rolesAndGroups, function`,
		}},
		{"accessControl of the wrong type", `{"accessControl":true}`, []string{
			`options.accessControl: must be a mode (allPublic, rolesAndGroups, function) or an object {mode, roleClaim, groupClaim, identifier}, got true`,
		}},
		{"unknown option", `{"tool":["a"]}`, []string{
			`options.tool: unknown option "tool"; allowed: accessControl, groupsClaim, prompts, resourceTemplates, resources, rolesClaim, tools`,
		}},
		{"unknown projection key", `{"tools":[{"name":"a","uri":"x"}],"resources":[{"uri":"u","annotations":{}}]}`, []string{
			`options.tools[0].uri: unknown option "uri"; allowed: _meta, annotations, description, groups, name, public, roles`,
			`options.resources[0].annotations: unknown option "annotations"; allowed: _meta, description, groups, mimeType, name, public, roles, uri`,
		}},
		{"wrong item types", `{"tools":[5,{"name":"a","roles":"admin"}]}`, []string{
			`options.tools[0]: must be a tool name or an object {name, description, annotations, _meta, roles, groups, public}, got 5`,
			`options.tools[1].roles: must be an array, got string`,
		}},
		{"null item", `{"prompts":[null]}`, []string{
			`options.prompts[0]: must be a prompt name or an object {name, description, _meta, roles, groups, public}, got null`,
		}},
		{"keys required and unique", `{"tools":["a",{"description":"x"},"a"],"resources":[{"name":"n"}],"resourceTemplates":[""]}`, []string{
			`options.tools[1].name: required: the upstream's name of the tool`,
			`options.tools[2]: duplicate tool "a", already listed at tools[0]; list each tool once`,
			`options.resources[0].uri: required: the upstream's uri of the resource`,
			`options.resourceTemplates[0].uriTemplate: required: the upstream's uriTemplate of the resource template`,
		}},
		{"bad template and empty overrides", `{"resourceTemplates":["file:///{x"],"tools":[{"name":"a","description":" "}]}`, []string{
			`options.tools[0].description: must not be empty; leave it out to keep the upstream's`,
			`options.resourceTemplates[0].uriTemplate: must be an RFC 6570 URI template: an expression is not closed with '}', got "file:///{x"`,
		}},
		{"annotation types", `{"tools":[{"name":"a","annotations":{"readOnlyHint":"yes","title":3}}]}`, []string{
			`options.tools[0].annotations.readOnlyHint: must be a boolean or null, got string`,
			`options.tools[0].annotations.title: must be a string or null, got number`,
		}},
		{"roles under allPublic", `{"tools":[{"name":"a","roles":["admin"]},{"name":"b","groups":["g"],"public":false}]}`, []string{
			`options.tools[0].roles: only used with accessControl rolesAndGroups; with allPublic (the default) every listed item is visible to every caller: set accessControl to rolesAndGroups or remove roles`,
			`options.tools[1].groups: only used with accessControl rolesAndGroups; with allPublic (the default) every listed item is visible to every caller: set accessControl to rolesAndGroups or remove groups`,
			`options.tools[1].public: false only means something with accessControl rolesAndGroups; with allPublic (the default) every listed item is visible to every caller`,
		}},
		{"visible to nobody", `{"accessControl":"rolesAndGroups","tools":["a",{"name":"b","public":false},{"name":"c","roles":[""]}]}`, []string{
			`options.tools[0]: visible to nobody under accessControl rolesAndGroups: give it roles, groups or public: true, or remove it`,
			`options.tools[1]: visible to nobody under accessControl rolesAndGroups: give it roles, groups or public: true, or remove it`,
			`options.tools[2].roles[0]: must not be empty`,
		}},
		{"claims", `{"accessControl":{"mode":"rolesAndGroups","roleClaim":"a b","groupClaim":"g"},"groupsClaim":"h","rolesClaim":"x\"y"}`, []string{
			`options.rolesClaim: must be a claim name without spaces or quotes, got "x\"y"`,
			`options.accessControl.roleClaim: must be a claim name without spaces or quotes, got "a b"`,
			`options.groupsClaim and policies[0].handler.options.accessControl.groupClaim: conflicting claim names "h" and "g"; set the claim once`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := load(t, tc.options)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestOptionsDecodedWithoutTheLoader(t *testing.T) {
	// Decoded by encoding/json alone (no loader), a value-type error of a projection object is
	// still reported by Validate, by path.
	var p capfilter.Policy
	if err := json.Unmarshal([]byte(`{"tools":[{"name":"a","roles":"admin"}]}`), &p); err != nil {
		t.Fatal(err)
	}
	err := p.Validate()
	if err == nil || !strings.Contains(err.Error(), "options.tools[0]: roles: must be []string, got string") {
		t.Errorf("Validate = %v", err)
	}
	if p.Mode() != capfilter.ModeAllPublic {
		t.Errorf("default mode = %s", p.Mode())
	}
	if r, g := p.Claims(); r != "roles" || g != "groups" {
		t.Errorf("default claims = %s, %s", r, g)
	}
}
