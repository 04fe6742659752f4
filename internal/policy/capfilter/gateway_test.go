package capfilter_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// These tests run the whole path: the official Go SDK client, an in-process gateway
// (gatewaytest) with the capability filter on the route, and a Go SDK MCP server upstream,
// answering in JSON and in SSE.

func TestToolsFilteredAndProjected(t *testing.T) {
	const opts = `{"tools":["echo",{"name":"search","description":"Search the catalog (curated by the gateway)",
	  "annotations":{"readOnlyHint":true,"title":null},"_meta":{"example.com/owner":"search-team"}}]}`
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			up := newUpstream(t, tr.opts, nil, 0)
			gw := gatewayFor(t, up.URL, opts)
			cs := connect(t, gw.URL+"/mcp/filtered", user{})

			res, err := cs.ListTools(context.Background(), nil)
			if err != nil {
				t.Fatalf("tools/list: %v", err)
			}
			var names []string
			byName := map[string]*mcp.Tool{}
			for _, tool := range res.Tools {
				names = append(names, tool.Name)
				byName[tool.Name] = tool
			}
			slices.Sort(names)
			if got := strings.Join(names, ","); got != "echo,search" {
				t.Fatalf("tools through the filter = %s, want echo,search", got)
			}
			search := byName["search"]
			if search.Description != "Search the catalog (curated by the gateway)" {
				t.Errorf("search description = %q, want the projection's", search.Description)
			}
			a := search.Annotations
			if a == nil || !a.ReadOnlyHint || !a.IdempotentHint || a.Title != "" {
				t.Errorf("search annotations = %+v: want readOnlyHint from the projection, idempotentHint kept from the upstream, title removed (null)", a)
			}
			if search.Meta["example.com/owner"] != "search-team" {
				t.Errorf("search _meta = %v", search.Meta)
			}
			if search.InputSchema == nil {
				t.Error("the projection lost the upstream's inputSchema")
			}
			if echo := byName["echo"]; echo.Description != "upstream description of echo" {
				t.Errorf("echo (no projection) description = %q, want the upstream's", echo.Description)
			}

			// A visible tool works; a hidden one is refused before the upstream.
			out, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}})
			if err != nil || out.Content[0].(*mcp.TextContent).Text != "echo:hi" {
				t.Fatalf("tools/call echo = %+v, %v", out, err)
			}
			_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "delete_all", Arguments: map[string]any{}})
			wantCode(t, err, -32601, "tools/call of a hidden tool")
			if up.received("tools/call delete_all") {
				t.Error("the hidden tool's call reached the upstream")
			}
			if !up.received("tools/call echo") {
				t.Error("the visible tool's call did not reach the upstream")
			}

			// The same upstream on a route without the filter shows everything.
			plain := connect(t, gw.URL+"/mcp/plain", user{})
			if got := strings.Join(toolNames(t, plain), ","); got != strings.Join(upstreamTools, ",") {
				t.Errorf("tools without the filter = %s", got)
			}
		})
	}
}

func TestRolesAndGroups(t *testing.T) {
	const opts = `{"accessControl":{"mode":"rolesAndGroups"},"tools":[
	  {"name":"echo","public":true},
	  {"name":"admin_report","roles":["admin"]},
	  {"name":"search","groups":["eng"]},
	  {"name":"delete_all","roles":["admin"],"groups":["sre"]}]}`
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			up := newUpstream(t, tr.opts, nil, 0)
			gw := gatewayFor(t, up.URL, opts)
			for _, tc := range []struct {
				name    string
				u       user
				visible string
			}{
				{"anonymous", user{}, "echo"},
				{"no roles", user{name: "carol"}, "echo"},
				{"admin role", user{name: "alice", roles: "viewer,admin"}, "admin_report,delete_all,echo"},
				{"eng group", user{name: "bob", groups: "eng"}, "echo,search"},
				{"sre group", user{name: "dave", groups: "sre"}, "delete_all,echo"},
				{"role named like a group does not count", user{name: "erin", roles: "eng"}, "echo"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cs := connect(t, gw.URL+"/mcp/filtered", tc.u)
					if got := strings.Join(toolNames(t, cs), ","); got != tc.visible {
						t.Fatalf("tools/list = %s, want %s", got, tc.visible)
					}
					for _, name := range []string{"echo", "admin_report", "search", "delete_all", "secret"} {
						_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: map[string]any{}})
						if slices.Contains(strings.Split(tc.visible, ","), name) {
							if err != nil {
								t.Errorf("tools/call %s (visible): %v", name, err)
							}
							continue
						}
						wantCode(t, err, -32601, "tools/call "+name+" (hidden)")
					}
				})
			}
			if up.received("tools/call secret") {
				t.Error("an unlisted tool's call reached the upstream")
			}
		})
	}
}

func TestEmptyListHidesAllOmittedPassesThrough(t *testing.T) {
	// tools: [] hides every tool; prompts, resources and templates are omitted: untouched.
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			up := newUpstream(t, tr.opts, nil, 0)
			gw := gatewayFor(t, up.URL, `{"tools":[]}`)
			cs := connect(t, gw.URL+"/mcp/filtered", user{})
			if got := toolNames(t, cs); len(got) != 0 {
				t.Errorf("tools/list with tools: [] = %v, want none", got)
			}
			_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{}})
			wantCode(t, err, -32601, "tools/call with tools: []")

			prompts, err := cs.ListPrompts(context.Background(), nil)
			if err != nil || len(prompts.Prompts) != len(upstreamPrompts) {
				t.Errorf("prompts/list (omitted) = %+v, %v: want every upstream prompt", prompts, err)
			}
			if _, err := cs.GetPrompt(context.Background(), &mcp.GetPromptParams{Name: "internal_prompt"}); err != nil {
				t.Errorf("prompts/get (omitted): %v", err)
			}
			res, err := cs.ListResources(context.Background(), nil)
			if err != nil || len(res.Resources) != len(upstreamResources) {
				t.Errorf("resources/list (omitted) = %+v, %v", res, err)
			}
			if _, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "file:///secret.txt"}); err != nil {
				t.Errorf("resources/read (omitted): %v", err)
			}
		})
	}
}

func TestPromptsResourcesAndTemplates(t *testing.T) {
	const opts = `{
	  "prompts":[{"name":"greet","description":"Say hello (curated)"}],
	  "resources":[{"uri":"file:///public.txt","name":"Public notes","mimeType":"text/markdown"}],
	  "resourceTemplates":[{"uriTemplate":"file:///docs/{name}","description":"Team documents"}]}`
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			up := newUpstream(t, tr.opts, nil, 0)
			gw := gatewayFor(t, up.URL, opts)
			cs := connect(t, gw.URL+"/mcp/filtered", user{})
			ctx := context.Background()

			prompts, err := cs.ListPrompts(ctx, nil)
			if err != nil || len(prompts.Prompts) != 1 || prompts.Prompts[0].Name != "greet" || prompts.Prompts[0].Description != "Say hello (curated)" {
				t.Errorf("prompts/list = %s, %v", dump(prompts), err)
			}
			if _, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "greet"}); err != nil {
				t.Errorf("prompts/get greet: %v", err)
			}
			_, err = cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "internal_prompt"})
			wantCode(t, err, -32601, "prompts/get of a hidden prompt")

			res, err := cs.ListResources(ctx, nil)
			if err != nil || len(res.Resources) != 1 {
				t.Fatalf("resources/list = %s, %v", dump(res), err)
			}
			if r := res.Resources[0]; r.URI != "file:///public.txt" || r.Name != "Public notes" || r.MIMEType != "text/markdown" {
				t.Errorf("projected resource = %+v", r)
			}
			if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///public.txt"}); err != nil {
				t.Errorf("resources/read of a visible resource: %v", err)
			}
			_, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///secret.txt"})
			wantCode(t, err, -32601, "resources/read of a hidden resource")

			tmpls, err := cs.ListResourceTemplates(ctx, nil)
			if err != nil || len(tmpls.ResourceTemplates) != 1 || tmpls.ResourceTemplates[0].URITemplate != "file:///docs/{name}" ||
				tmpls.ResourceTemplates[0].Description != "Team documents" {
				t.Errorf("resources/templates/list = %s, %v", dump(tmpls), err)
			}
			// A URI of a visible template may be read; one of the hidden template may not.
			if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///docs/plan.txt"}); err != nil {
				t.Errorf("resources/read of a visible template's URI: %v", err)
			}
			_, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///private/salaries.txt"})
			wantCode(t, err, -32601, "resources/read of a hidden template's URI")
			if up.received("resources/read file:///private/salaries.txt") || up.received("resources/read file:///secret.txt") ||
				up.received("prompts/get internal_prompt") {
				t.Error("a hidden item's call reached the upstream")
			}
		})
	}
}

func TestPaginationThroughFilter(t *testing.T) {
	// The SDK server pages tools/list (PageSize 2): the filter keeps each page's nextCursor as
	// the upstream sent it, so the client walks every page and sees exactly the visible tools,
	// even across pages the filter emptied.
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			up := newUpstream(t, tr.opts, &mcp.ServerOptions{PageSize: 2}, 0)
			gw := gatewayFor(t, up.URL, `{"tools":["delete_all","search"]}`)
			cs := connect(t, gw.URL+"/mcp/filtered", user{})
			if got := strings.Join(toolNames(t, cs), ","); got != "delete_all,search" {
				t.Fatalf("tools across pages = %s", got)
			}
			// Page by page: the first page (admin_report, delete_all) keeps delete_all; the cursors
			// are the upstream's.
			direct := connect(t, up.URL, user{})
			var pages, emptied int
			cursor, directCursor := "", ""
			for {
				p, err := cs.ListTools(context.Background(), &mcp.ListToolsParams{Cursor: cursor})
				if err != nil {
					t.Fatal(err)
				}
				d, err := direct.ListTools(context.Background(), &mcp.ListToolsParams{Cursor: directCursor})
				if err != nil {
					t.Fatal(err)
				}
				if p.NextCursor != d.NextCursor {
					t.Fatalf("page %d: nextCursor through the filter %q, upstream's %q", pages, p.NextCursor, d.NextCursor)
				}
				pages++
				if len(p.Tools) == 0 {
					emptied++
				}
				if p.NextCursor == "" {
					break
				}
				cursor, directCursor = p.NextCursor, d.NextCursor
			}
			if pages != 3 || emptied != 1 {
				t.Errorf("pages = %d (emptied %d), want 3 pages of which the last (secret) is emptied", pages, emptied)
			}
		})
	}
}

func TestBatchWithHiddenCallRefusedWhole(t *testing.T) {
	up := newUpstream(t, jsonStateless, nil, 0)
	gw := gatewayFor(t, up.URL, `{"tools":["echo","search"]}`)
	batch := `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}},
	  {"jsonrpc":"2.0","id":"two","method":"tools/call","params":{"name":"delete_all","arguments":{}}},
	  {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"x","progress":1}}]`
	resp, body := post(t, gw.URL+"/mcp/filtered", batch, user{}, "")
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	var answers []struct {
		ID    any `json:"id"`
		Error struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &answers); err != nil {
		t.Fatalf("answer %s: %v", body, err)
	}
	if len(answers) != 2 || answers[0].ID != float64(1) || answers[1].ID != "two" || answers[0].Error.Code != -32601 || answers[1].Error.Code != -32601 {
		t.Errorf("batch answer = %s: want -32601 for both requests (the visible one too)", body)
	}
	if n := up.requests(); n != 0 {
		t.Errorf("the upstream received %d messages of a refused batch", n)
	}

	// One hidden call alone gets Zuplo's answer.
	_, body = post(t, gw.URL+"/mcp/filtered", `{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"secret"}}`, user{}, "")
	if want := `{"jsonrpc":"2.0","id":"1","error":{"code":-32601,"message":"Method not found"}}`; body != want {
		t.Errorf("single refusal = %s, want %s", body, want)
	}
}

func TestListChangedNotificationsPass(t *testing.T) {
	up := newUpstream(t, jsonStateless, nil, 0)
	gw := gatewayFor(t, up.URL, `{"tools":[]}`)
	// The filter lets them through whatever the upstream then makes of them (the SDK server
	// refuses list_changed, a server-to-client notification, with its own 400).
	for _, m := range []string{"notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed", "notifications/initialized"} {
		_, body := post(t, gw.URL+"/mcp/filtered", `{"jsonrpc":"2.0","method":"`+m+`"}`, user{}, "")
		if !up.received(m) || strings.Contains(body, "-32601") {
			t.Errorf("%s: %s; reached the upstream: %v", m, body, up.received(m))
		}
	}
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
