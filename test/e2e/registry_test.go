package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestRegistry: a real `mcpgate serve` lists its MCP routes in the MCP registry at the default
// path, named after its public URL's host and pointing at the routes' public URLs.
func TestRegistry(t *testing.T) {
	gw := startGateway(t, gatewayOptions{fixedPublicURL: true},
		mcpRoute{Path: "/mcp/alpha", OperationID: "alpha", Upstream: "https://alpha.example.com/mcp"},
		mcpRoute{Path: "/mcp/beta", OperationID: "beta", Upstream: "https://beta.example.com/mcp"},
		mcpRoute{Path: "/mcp/{tenant}", OperationID: "tenant", Upstream: "https://tenant.example.com/mcp"})

	res, err := http.Get(gw.URL("/__mcpgate/registry/v0.1/servers?limit=1"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var page struct {
		Servers []struct {
			Server struct {
				Name    string `json:"name"`
				Version string `json:"version"`
				Remotes []struct{ Type, URL string }
			} `json:"server"`
		} `json:"servers"`
		Metadata struct {
			NextCursor string `json:"nextCursor"`
			Count      int    `json:"count"`
		} `json:"metadata"`
	}
	if err := json.NewDecoder(res.Body).Decode(&page); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET servers = %d, %v", res.StatusCode, err)
	}
	// The public URL is http://127.0.0.1:PORT: its host reversed is the namespace.
	s := page.Servers[0].Server
	if page.Metadata.Count != 1 || page.Metadata.NextCursor != "1.0.0.127/alpha" || s.Name != "1.0.0.127/alpha" ||
		s.Version != "1" || len(s.Remotes) != 1 || s.Remotes[0].URL != gw.URL("/mcp/alpha") || s.Remotes[0].Type != "streamable-http" {
		t.Fatalf("first page = %+v", page)
	}

	// The next page is the last: the parameterized route is not a server.
	res, err = http.Get(gw.URL("/__mcpgate/registry/v0.1/servers?limit=1&cursor=" + url.QueryEscape(page.Metadata.NextCursor)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	page.Servers, page.Metadata.NextCursor = nil, ""
	if err := json.NewDecoder(res.Body).Decode(&page); err != nil || len(page.Servers) != 1 ||
		page.Servers[0].Server.Name != "1.0.0.127/beta" || page.Metadata.NextCursor != "" {
		t.Fatalf("second page = %+v, %v", page, err)
	}

	res, err = http.Post(gw.URL("/__mcpgate/registry/v0.1/publish"), "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e struct{ Error string }
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil || res.StatusCode != http.StatusNotImplemented || e.Error == "" {
		t.Errorf("POST publish = %d %+v %v, want 501 with an error", res.StatusCode, e, err)
	}
}
