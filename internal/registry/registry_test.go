package registry_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/mcpgate/mcpgate/internal/registry"
	"github.com/mcpgate/mcpgate/internal/testutil/gatewaytest"
)

// longOperationID makes a name longer than registry.MaxNameLength.
var longOperationID = strings.Repeat("very-long-operation-", 12) + "end"

// wikiSummary is longer than registry.MaxDescription code points, in two-byte characters.
var wikiSummary = "Wiki " + strings.Repeat("é", 150)

// project writes a project with four listed MCP routes (linear and notes behind token exchange,
// long, wiki in a second file with a version range) and three that are not listed: a
// parameterized MCP route in each path mode and a URL-rewrite route.
func project(t *testing.T) string {
	t.Helper()
	te := func(id, display, summary string) string {
		return `{"name":"mcp-token-exchange-` + id + `","policyType":"mcp-token-exchange-inbound","handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpTokenExchangeInboundPolicy",
		 "options":{"displayName":"` + display + `","summary":"` + summary + `","authMode":"user-oauth","scopes":["mcp"],
		 "clientRegistration":{"mode":"manual","clientId":"gw-` + id + `","tokenEndpointAuthMethod":"none"}}}}`
	}
	route := func(path, methods, op, summary, export, policies string) string {
		s := ""
		if summary != "" {
			s = `"summary":"` + summary + `",`
		}
		return `"` + path + `":{"` + methods + `":{"operationId":"` + op + `",` + s + `"x-zuplo-route":{
		 "handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"` + export + `","options":{"rewritePattern":"https://upstream.example.com` + path + `"}},
		 "policies":{"inbound":[` + policies + `]}}}}`
	}
	return gatewaytest.Project(t, map[string]string{
		"config/policies.json": `{"policies":[
		 {"name":"test-user","policyType":"` + gatewaytest.TestUserPolicyType + `","handler":{"module":"$import(@zuplo/runtime)","export":"` + gatewaytest.TestUserExport + `","options":{}}},
		 ` + te("linear", "Linear", "Issues and projects") + `,` + te("notes", "Team Notes", "Notes of the team") + `]}`,
		"config/routes.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"1.2.0"},"paths":{
		 ` + route("/mcp/linear", "get,post", "linear-mcp-server", "Linear MCP Proxy", "McpProxyHandler", `"test-user","mcp-token-exchange-linear"`) + `,
		 ` + route("/mcp/notes", "post", "notes", "", "McpProxyHandler", `"test-user","mcp-token-exchange-notes"`) + `,
		 ` + route("/mcp/tenants/{tenant}", "post", "tenant-mcp", "Per tenant", "McpProxyHandler", "") + `,
		 ` + route("/mcp/long", "post", longOperationID, "Long", "McpVirtualServerHandler", "") + `}}`,
		"config/zz-more.oas.json": `{"openapi":"3.1.0","info":{"title":"t","version":"^2.0"},"paths":{
		 ` + route("/mcp/wiki", "post", "wiki", wikiSummary, "McpProxyHandler", "") + `,
		 "/mcp/by/:team":{"x-zuplo-path":{"pathMode":"url-pattern"},"post":{"operationId":"team-mcp","x-zuplo-route":{
		  "handler":{"module":"$import(@zuplo/runtime/mcp-gateway)","export":"McpProxyHandler","options":{"rewritePattern":"https://upstream.example.com/team"}}}}},
		 "/api/users":{"get":{"operationId":"users-api","summary":"Users","x-zuplo-route":{
		  "handler":{"module":"$import(@zuplo/runtime)","export":"urlRewriteHandler","options":{"rewritePattern":"https://api.example.com/users"}}}}}}}`,
	})
}

// host is the Host the tests send: names are built from it when no public URL is set.
const host = "gateway.example.com"

// start runs a gateway serving project(t) with the registry at the default path unless o says
// otherwise.
func start(t *testing.T, o gatewaytest.Options) *gatewaytest.Gateway {
	t.Helper()
	o.Dir = project(t)
	return gatewaytest.New(t, o)
}

// do sends method to url with Host host and returns the response and its body.
func do(t *testing.T, method, u string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

// list GETs a list document and decodes it strictly: a field the official shape does not have
// fails the test.
func list(t *testing.T, u string) registry.ServerList {
	t.Helper()
	res, body := do(t, "GET", u)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s = %d %s: %s", u, res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	var l registry.ServerList
	strict(t, body, &l)
	if l.Servers == nil || l.Metadata.Count != len(l.Servers) {
		t.Fatalf("GET %s: servers %v, metadata.count %d: %s", u, l.Servers, l.Metadata.Count, body)
	}
	validate(t, body)
	return l
}

func strict(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
}

// schema is the official server.json schema (testdata/README.md).
func schema(t *testing.T) *jsonschema.Resolved {
	t.Helper()
	b, err := os.ReadFile("testdata/server.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s jsonschema.Schema
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Resolve(nil)
	if err != nil {
		t.Fatalf("resolving the server.json schema: %v", err)
	}
	return rs
}

// validate checks every server document of a list or a single ServerResponse against the
// official schema.
func validate(t *testing.T, body []byte) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	servers := []any{doc}
	if l, ok := doc["servers"].([]any); ok {
		servers = l
	}
	rs := schema(t)
	for _, s := range servers {
		server := s.(map[string]any)["server"]
		if err := rs.Validate(server); err != nil {
			t.Errorf("server %v does not follow server.schema.json: %v", server, err)
		}
	}
}

func names(l registry.ServerList) []string {
	var out []string
	for _, s := range l.Servers {
		out = append(out, s.Server.Name)
	}
	return out
}

func TestList(t *testing.T) {
	gw := start(t, gatewaytest.Options{})
	res, _ := do(t, "GET", gw.Base+"/registry/v0.1/servers")
	if res.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(res.Header.Get("Vary"), "Host") {
		t.Errorf("headers %v: want CORS for any origin and Vary: Host (names come from the Host)", res.Header)
	}
	l := list(t, gw.Base+"/registry/v0.1/servers")
	if len(l.Servers) != 4 || l.Metadata.NextCursor != "" {
		t.Fatalf("servers %v, nextCursor %q: want the 4 MCP routes without path parameters on one page", names(l), l.Metadata.NextCursor)
	}
	// The whole first document, in the official v0.1 shape.
	first, _ := json.Marshal(l.Servers[0])
	want := `{"server":{"$schema":"https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",` +
		`"name":"com.example.gateway/linear-mcp-server","description":"Linear MCP Proxy","title":"Linear","version":"1.2.0",` +
		`"remotes":[{"type":"streamable-http","url":"http://gateway.example.com/mcp/linear"}]},` +
		`"_meta":{"io.modelcontextprotocol.registry/official":{"status":"active","isLatest":true}}}`
	if string(first) != want {
		t.Errorf("first server =\n%s\nwant\n%s", first, want)
	}
	notes, long, wiki := l.Servers[1].Server, l.Servers[2].Server, l.Servers[3].Server
	// Without a route summary the description is the token exchange's summary.
	if notes.Name != "com.example.gateway/notes" || notes.Title != "Team Notes" || notes.Description != "Notes of the team" {
		t.Errorf("notes = %+v", notes)
	}
	if len(long.Name) != registry.MaxNameLength || !strings.HasPrefix(long.Name, "com.example.gateway/very-long-operation-") || long.Title != "" {
		t.Errorf("long name = %q (%d bytes), title %q: want it cut to %d bytes", long.Name, len(long.Name), long.Title, registry.MaxNameLength)
	}
	if wiki.Version != "0.0.0" || utf8.RuneCountInString(wiki.Description) != registry.MaxDescription || !strings.HasPrefix(wikiSummary, wiki.Description) {
		t.Errorf("wiki version %q, description %q: want 0.0.0 for a range and the summary cut to %d code points", wiki.Version, wiki.Description, registry.MaxDescription)
	}
	for _, s := range l.Servers {
		if strings.Contains(s.Server.Name, "tenant") || strings.Contains(s.Server.Name, "team") || strings.Contains(s.Server.Name, "users") {
			t.Errorf("listed %s: routes with path parameters and non-MCP routes are not servers", s.Server.Name)
		}
	}
}

func TestPublicURL(t *testing.T) {
	gw := start(t, gatewaytest.Options{PublicURL: "https://mcp.example.com:8443"})
	res, _ := do(t, "GET", gw.Base+"/registry/v0.1/servers")
	if v := res.Header.Get("Vary"); v != "" {
		t.Errorf("Vary %q with a configured public URL: the answer does not depend on the request", v)
	}
	s := list(t, gw.Base+"/registry/v0.1/servers").Servers[0].Server
	if s.Name != "com.example.mcp/linear-mcp-server" || s.Remotes[0].URL != "https://mcp.example.com:8443/mcp/linear" {
		t.Errorf("server %+v: want the name and URL of the public URL, not of the request's Host", s)
	}
}

func TestPagination(t *testing.T) {
	gw := start(t, gatewaytest.Options{})
	all := names(list(t, gw.Base+"/registry/v0.1/servers"))
	for _, limit := range []int{1, 2, 3} {
		var got []string
		cursor := ""
		for page := 0; ; page++ {
			if page > len(all) {
				t.Fatalf("limit %d: more pages than servers", limit)
			}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			l := list(t, gw.Base+"/registry/v0.1/servers?"+q.Encode())
			if len(l.Servers) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(l.Servers))
			}
			got = append(got, names(l)...)
			if l.Metadata.NextCursor == "" {
				break
			}
			if l.Metadata.NextCursor != l.Servers[len(l.Servers)-1].Server.Name {
				t.Errorf("nextCursor %q: want the page's last name", l.Metadata.NextCursor)
			}
			cursor = l.Metadata.NextCursor
		}
		if !slices.Equal(got, all) {
			t.Errorf("limit %d: pages gave %v, want %v", limit, got, all)
		}
	}
	// A page that ends exactly at the last server has no cursor.
	if l := list(t, gw.Base+"/registry/v0.1/servers?limit=4"); l.Metadata.NextCursor != "" || len(l.Servers) != 4 {
		t.Errorf("limit=4: %v, nextCursor %q", names(l), l.Metadata.NextCursor)
	}
	if l := list(t, gw.Base+"/registry/v0.1/servers?limit=100"); len(l.Servers) != 4 {
		t.Errorf("limit=100: %v", names(l))
	}
}

func TestBadQuery(t *testing.T) {
	gw := start(t, gatewaytest.Options{})
	for _, tc := range []struct{ name, query, want string }{
		{"limit zero", "limit=0", `limit must be an integer from 1 to 100, got "0"`},
		{"limit above max", "limit=101", `limit must be an integer from 1 to 100, got "101"`},
		{"limit negative", "limit=-1", `limit must be an integer from 1 to 100, got "-1"`},
		{"limit not a number", "limit=ten", `limit must be an integer from 1 to 100, got "ten"`},
		{"updated_since not RFC 3339", "updated_since=yesterday", `updated_since must be an RFC 3339 timestamp (e.g. 2025-08-07T13:15:04Z), got "yesterday"`},
		{"include_deleted not a bool", "include_deleted=maybe", `include_deleted must be true or false, got "maybe"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := do(t, "GET", gw.Base+"/registry/v0.1/servers?"+tc.query)
			wantError(t, res, body, http.StatusBadRequest, tc.want)
		})
	}
	// A valid updated_since filters nothing: every route is as new as the configuration.
	if l := list(t, gw.Base+"/registry/v0.1/servers?updated_since=2030-01-01T00:00:00Z&include_deleted=false"); len(l.Servers) != 4 {
		t.Errorf("updated_since in the future: %v, want every server", names(l))
	}
}

// wantError checks a {"error": msg} answer (the registry API's shape, not problem+json).
func wantError(t *testing.T, res *http.Response, body []byte, status int, msg string) {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if res.StatusCode != status || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %s = %d %s: %s; want %d application/json", res.Request.Method, res.Request.URL, res.StatusCode, res.Header.Get("Content-Type"), body, status)
	}
	strict(t, body, &e)
	if e.Error != msg {
		t.Errorf("%s %s: error %q, want %q", res.Request.Method, res.Request.URL, e.Error, msg)
	}
}

func TestSearchAndVersionFilter(t *testing.T) {
	gw := start(t, gatewaytest.Options{})
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"search=LINEAR", []string{"com.example.gateway/linear-mcp-server"}},
		{"search=team+notes", []string{"com.example.gateway/notes"}}, // the title
		{"search=+wiki+", []string{"com.example.gateway/wiki"}},      // trimmed
		{"search=no-such-server", nil},
		{"version=latest&limit=2", []string{"com.example.gateway/linear-mcp-server", "com.example.gateway/notes"}},
		{"version=0.0.0", []string{"com.example.gateway/wiki"}},
		{"version=1.2.0&search=notes", []string{"com.example.gateway/notes"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			if got := names(list(t, gw.Base+"/registry/v0.1/servers?"+tc.query)); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestVersions(t *testing.T) {
	gw := start(t, gatewaytest.Options{})
	base := gw.Base + "/registry/v0.1/servers/"
	// The name's slash escaped, as the API asks, or not.
	for _, name := range []string{"com.example.gateway%2Flinear-mcp-server", "com.example.gateway/linear-mcp-server"} {
		l := list(t, base+name+"/versions")
		if len(l.Servers) != 1 || l.Servers[0].Server.Name != "com.example.gateway/linear-mcp-server" || l.Servers[0].Server.Version != "1.2.0" {
			t.Errorf("versions of %s = %+v", name, l)
		}
		for _, v := range []string{"1.2.0", "latest"} {
			res, body := do(t, "GET", base+name+"/versions/"+v)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("version %s of %s = %d: %s", v, name, res.StatusCode, body)
			}
			var s registry.ServerResponse
			strict(t, body, &s)
			validate(t, body)
			if s.Server.Version != "1.2.0" || s.Meta.Official == nil || !s.Meta.Official.IsLatest {
				t.Errorf("version %s of %s = %+v", v, name, s)
			}
		}
	}
	for _, tc := range []struct{ name, path, want string }{
		{"unknown version", "com.example.gateway%2Flinear-mcp-server/versions/9.9.9", "Server version not found"},
		{"unknown server", "com.example.gateway%2Fnope/versions", "Server not found"},
		{"unknown server, latest", "com.example.gateway%2Fnope/versions/latest", "Server not found"},
		{"parameterized route", "com.example.gateway%2Ftenant-mcp/versions", "Server not found"},
		{"another host's name", "com.example.other%2Flinear-mcp-server/versions", "Server not found"},
		{"no versions segment", "com.example.gateway%2Flinear-mcp-server", "Not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := do(t, "GET", base+tc.path)
			wantError(t, res, body, http.StatusNotFound, tc.want)
		})
	}
}

func TestWriteRoutes(t *testing.T) {
	gw := start(t, gatewaytest.Options{})
	v := gw.Base + "/registry/v0.1"
	server := v + "/servers/com.example.gateway%2Flinear-mcp-server"
	for _, tc := range []struct {
		method, url string
		status      int
		want        string
	}{
		{"POST", v + "/publish", http.StatusNotImplemented, "this registry is read-only: its servers are the gateway's MCP routes"},
		{"PUT", server + "/versions/1.2.0", http.StatusNotImplemented, "this registry is read-only: server versions cannot be updated or deleted"},
		{"DELETE", server + "/versions/1.2.0", http.StatusNotImplemented, "this registry is read-only: server versions cannot be updated or deleted"},
		{"PATCH", server + "/versions/1.2.0/status", http.StatusForbidden, "this registry is read-only: server status cannot be changed"},
		{"PATCH", server + "/status", http.StatusForbidden, "this registry is read-only: server status cannot be changed"},
		{"GET", v + "/publish", http.StatusMethodNotAllowed, "method GET is not allowed here"},
		{"POST", v + "/servers", http.StatusMethodNotAllowed, "method POST is not allowed here"},
		{"POST", server + "/versions", http.StatusMethodNotAllowed, "method POST is not allowed here"},
	} {
		t.Run(tc.method+" "+strings.TrimPrefix(tc.url, v), func(t *testing.T) {
			res, body := do(t, tc.method, tc.url)
			wantError(t, res, body, tc.status, tc.want)
		})
	}
}

func TestPreflight(t *testing.T) {
	gw := start(t, gatewaytest.Options{})
	for _, p := range []string{"/registry/v0.1/servers", "/registry/v0.1/servers/com.example.gateway%2Fnotes/versions/latest"} {
		res, body := do(t, "OPTIONS", gw.Base+p)
		h := res.Header
		if res.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
			h.Get("Access-Control-Allow-Methods") != "GET, HEAD, OPTIONS" || len(body) != 0 {
			t.Errorf("OPTIONS %s = %d %v %q", p, res.StatusCode, h, body)
		}
	}
}

func TestPathSetting(t *testing.T) {
	t.Run("off", func(t *testing.T) {
		gw := start(t, gatewaytest.Options{RegistryPath: registry.Off})
		res, body := do(t, "GET", gw.Base+"/registry/v0.1/servers")
		// No endpoint: the gateway's own 404 (problem+json), as for any unknown path.
		if res.StatusCode != http.StatusNotFound || !strings.Contains(res.Header.Get("Content-Type"), "problem+json") {
			t.Errorf("registry off: %d %s: %s", res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	})
	t.Run("moved", func(t *testing.T) {
		gw := start(t, gatewaytest.Options{RegistryPath: "/mcp-registry/"})
		if l := list(t, gw.URL+"/mcp-registry/v0.1/servers"); len(l.Servers) != 4 {
			t.Errorf("moved registry: %v", names(l))
		}
		if res, _ := do(t, "GET", gw.Base+"/registry/v0.1/servers"); res.StatusCode != http.StatusNotFound {
			t.Errorf("default path still answers %d after moving", res.StatusCode)
		}
	})
	t.Run("root", func(t *testing.T) {
		gw := start(t, gatewaytest.Options{RegistryPath: "/"})
		if l := list(t, gw.URL+"/v0.1/servers?limit=1"); len(l.Servers) != 1 {
			t.Errorf("registry at the root: %v", names(l))
		}
	})
}

// TestHead answers HEAD like GET without a body.
func TestHead(t *testing.T) {
	gw := start(t, gatewaytest.Options{})
	res, body := do(t, "HEAD", gw.Base+"/registry/v0.1/servers")
	if res.StatusCode != http.StatusOK || len(body) != 0 || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("HEAD = %d %v %q", res.StatusCode, res.Header, body)
	}
}

// TestSchemaCatchesBadDocuments proves the schema check can fail: documents the official schema
// rejects are rejected.
func TestSchemaCatchesBadDocuments(t *testing.T) {
	rs := schema(t)
	good := func() map[string]any {
		return map[string]any{"name": "com.example/ok", "description": "d", "version": "1.0.0",
			"remotes": []any{map[string]any{"type": "streamable-http", "url": "https://example.com/mcp"}}}
	}
	if err := rs.Validate(good()); err != nil {
		t.Fatalf("a good document: %v", err)
	}
	for _, tc := range []struct {
		name  string
		field string
		value any
	}{
		{"name without a slash", "name", "com.example.ok"},
		{"name with a space", "name", "com.example/o k"},
		{"name too long", "name", "com.example/" + strings.Repeat("a", 200)},
		{"description too long", "description", strings.Repeat("a", 101)},
		{"remote without a URL", "remotes", []any{map[string]any{"type": "streamable-http"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := good()
			doc[tc.field] = tc.value
			if err := rs.Validate(doc); err == nil {
				t.Errorf("schema accepted %s = %v", tc.field, tc.value)
			}
		})
	}
}
