// Package importgraph keeps the project's import graph true to docs/architecture.md#the-import-rule:
// a table of forbidden imports, each with its reason, checked against the direct imports of every
// non-test file (as Tailscale's tstest/deptest does). docs_test.go keeps the citations of
// docs/architecture.md pointing at sections that exist.
package importgraph

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/mcpgate/mcpgate/"

// rule forbids packages matching from (a package path relative to the module, or a prefix ending
// in "/...") to import packages matching to. allow lists exceptions among to.
type rule struct {
	from, to []string
	// notFrom and allow are exceptions among from and to.
	notFrom, allow []string
	why            string
}

// rules is the import rule of docs/architecture.md#the-import-rule.
var rules = []rule{
	{
		from: []string{"internal/policy/...", "internal/connect", "internal/setup", "internal/signin", "internal/proxy", "internal/telemetry", "internal/audit", "internal/web", "internal/browsersession", "internal/registry"},
		to:   []string{"internal/gateway"},
		why:  "modules and the components they use get their dependencies from the host (policy.Host, typed); they never reach up into the gateway that provisions them",
	},
	{
		from:  []string{"internal/gateway"},
		to:    []string{"internal/proxy", "internal/connect", "internal/setup", "internal/upstream", "internal/policy/..."},
		allow: []string{"internal/policy"},
		why:   "the gateway runs whatever modules the config names through the policy interfaces; it knows no module and no component by type",
	},
	{
		from: []string{"internal/proxy"},
		to:   []string{"internal/connect", "internal/upstream", "internal/store/..."},
		why:  "forwarding knows nothing of credentials: a policy sets the upstream Authorization on the policy.Context and a response hook reacts to the answer",
	},
	{
		from: []string{"internal/upstream"},
		to:   []string{"internal/store/...", "internal/connect", "internal/policy/...", "internal/gateway"},
		why:  "upstream is a stateless OAuth client: registration persistence and every other stored state live with its callers (connect)",
	},
	{
		from:  []string{"internal/store/..."},
		to:    []string{"internal/..."},
		allow: []string{"internal/store/...", "internal/vault", "internal/subject"},
		why:   "the store is a leaf: it seals secrets with the vault, may use leaf packages, and knows nothing of the code that uses it",
	},
	{
		from: []string{"internal/vault"},
		to:   []string{"internal/..."},
		why:  "the vault (key ring, sealed secrets) is a leaf every stored secret depends on; it must not depend on the store it serves",
	},
	{
		from: []string{"internal/mcpwire", "internal/problem", "internal/safehttp", "internal/requestid", "internal/publicurl", "internal/subject", "internal/certfile", "internal/limiter"},
		to:   []string{"internal/..."},
		why:  "leaf packages (wire formats, the error type, the SSRF-safe client, the request id, public URLs, subjects, the TLS certificate files, the rate limiter) import no project package, so anything may use them",
	},
	{
		from:  []string{"internal/policy"},
		to:    []string{"internal/policy/...", "internal/connect", "internal/setup", "internal/proxy", "internal/config", "internal/gateway"},
		allow: []string{"internal/policy"},
		why:   "policy defines the module interfaces and the host; the modules implement them, so policy cannot know them",
	},
	{
		from:  []string{"internal/registry"},
		to:    []string{"internal/policy/...", "internal/connect", "internal/signin", "internal/setup", "internal/store/..."},
		allow: []string{"internal/policy"},
		why:   "the registry lists what the loaded configuration says: it learns a route's upstream name through a method (registry.describer), never a module's type or stored state",
	},
	{
		from: []string{"internal/connect"},
		to:   []string{"internal/signin", "internal/setup"},
		why:  "the connect pages ask who a browser is signed in as through connect.BrowserSessions and connect.Admins; sign-in and the setup UI build on the connection manager, not the other way round",
	},
	{
		from: []string{"internal/tracing"},
		to:   []string{"internal/..."},
		why:  "tracing is a leaf every layer starts spans with (tracing.Start); it imports no project package, and only cmd/mcpgate configures it (tracing.Setup)",
	},
	{
		from:    []string{"internal/..."},
		notFrom: []string{"internal/testutil/..."},
		to:      []string{"internal/testutil/...", "cmd/..."},
		why:     "production code does not depend on test support or on the command",
	},
}

// matches reports whether pkg (relative to the module) matches pattern.
func matches(pattern, pkg string) bool {
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == p || strings.HasPrefix(pkg, p+"/")
	}
	return pkg == pattern
}

func matchesAny(patterns []string, pkg string) bool {
	for _, p := range patterns {
		if matches(p, pkg) {
			return true
		}
	}
	return false
}

// violations returns one line per forbidden import in graph (package → its direct imports, all
// relative to the module), sorted.
func violations(graph map[string][]string) []string {
	var out []string
	for pkg, imports := range graph {
		for _, rl := range rules {
			if !matchesAny(rl.from, pkg) || matchesAny(rl.notFrom, pkg) {
				continue
			}
			for _, imp := range imports {
				if imp == pkg || !matchesAny(rl.to, imp) || matchesAny(rl.allow, imp) {
					continue
				}
				out = append(out, fmt.Sprintf("%s imports %s: forbidden because %s", pkg, imp, rl.why))
			}
		}
	}
	sort.Strings(out)
	return out
}

// projectGraph lists the direct imports of the non-test files of every package of the module.
func projectGraph(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], module) {
			continue
		}
		pkg := strings.TrimPrefix(f[0], module)
		graph[pkg] = nil
		for _, imp := range f[1:] {
			if rel, ok := strings.CutPrefix(imp, module); ok {
				graph[pkg] = append(graph[pkg], rel)
			}
		}
	}
	return graph
}

func TestImportGraph(t *testing.T) {
	graph := projectGraph(t)
	for _, pkg := range []string{"internal/gateway", "internal/policy", "internal/connect", "internal/store"} {
		if _, ok := graph[pkg]; !ok {
			t.Fatalf("go list did not list %s: the graph is incomplete", pkg)
		}
	}
	for _, v := range violations(graph) {
		t.Error(v)
	}
}

// TestRulesCatchForbiddenImports: each rule, given a graph with one forbidden edge, reports it by
// name and reason — the check cannot pass vacuously.
func TestRulesCatchForbiddenImports(t *testing.T) {
	cases := []struct{ from, to string }{
		{"internal/policy/apikey", "internal/gateway"},
		{"internal/connect", "internal/gateway"},
		{"internal/setup", "internal/gateway"},
		{"internal/proxy", "internal/gateway"},
		{"internal/gateway", "internal/proxy"},
		{"internal/proxy", "internal/connect"},
		{"internal/proxy", "internal/upstream"},
		{"internal/upstream", "internal/store"},
		{"internal/store", "internal/audit"},
		{"internal/store/sqlstore", "internal/policy"},
		{"internal/vault", "internal/store"},
		{"internal/mcpwire", "internal/policy"},
		{"internal/problem", "internal/requestid"},
		{"internal/safehttp", "internal/vault"},
		{"internal/limiter", "internal/telemetry"},
		{"internal/policy", "internal/connect"},
		{"internal/connect", "internal/testutil/gatewaytest"},
		{"internal/registry", "internal/gateway"},
		{"internal/registry", "internal/policy/tokenexchange"},
		{"internal/tracing", "internal/problem"},
	}
	for _, tc := range cases {
		got := violations(map[string][]string{tc.from: {tc.to}})
		if len(got) == 0 || !strings.HasPrefix(got[0], tc.from+" imports "+tc.to+": forbidden because ") {
			t.Errorf("%s → %s: got %q, want a violation naming the import and its reason", tc.from, tc.to, got)
		}
	}
	allowed := []struct{ from, to string }{
		{"internal/store/sqlite", "internal/store/sqlstore"},
		{"internal/store", "internal/vault"},
		{"internal/gateway", "internal/policy"},
		{"internal/connect", "internal/policy"},
		{"internal/testutil/gatewaytest", "internal/gateway"},
		{"internal/registry", "internal/config"},
		{"internal/registry", "internal/policy"},
	}
	for _, tc := range allowed {
		if got := violations(map[string][]string{tc.from: {tc.to}}); len(got) != 0 {
			t.Errorf("%s → %s is allowed, got %q", tc.from, tc.to, got)
		}
	}
}
