// Package policy defines what a built-in policy or handler is, the per-request Context they share,
// and the registry that config names them from (by their Zuplo export, e.g. ApiKeyInboundPolicy).
//
// Lifecycle: New() (no side effects) → strict JSON decode of options → SetName (if implemented) →
// Validate() → Provision(ctx, env) (hydrate) → use → Cleanup(). Every stage but New is an optional
// one-method interface. Caddy runs Provision before Validate; here Validate comes first because
// it is offline and config.Load runs it, so `mcpgate validate` reports every problem of a project
// without touching a store, a network or a key ring. Whatever Provision needs to check beyond the
// options (a host component, a route's upstream URL) it checks itself. When Provision fails, the
// gateway calls Cleanup on that module and on every module provisioned before it.
package policy

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
)

// Kind says where in the pipeline a module runs.
type Kind int

// Kinds of module.
const (
	KindInbound Kind = iota + 1
	KindOutbound
	KindHandler
)

func (k Kind) String() string {
	switch k {
	case KindInbound:
		return "inbound policy"
	case KindOutbound:
		return "outbound policy"
	case KindHandler:
		return "handler"
	}
	return "unknown"
}

// Module describes one built-in export.
type Module struct {
	// Export is the Zuplo export name config uses (handler.export).
	Export string
	// Aliases are older export names that resolve to the same module.
	Aliases []string
	// PolicyType is the policies.json policyType (policies only; empty for handlers).
	PolicyType string
	Kind       Kind
	// Authenticates marks a gateway auth policy: it sets the request user. The config loader
	// requires one before a policy that needs a user (user-oauth token exchange).
	Authenticates bool
	// TokenExchange marks a policy that applies an upstream credential (mcp-token-exchange-inbound):
	// at most one per route, on MCP routes only, each serving one upstream URL.
	TokenExchange bool
	// New returns a fresh value that options are strictly decoded into. It must be a pointer.
	New func() any
}

var (
	regMu    sync.RWMutex
	registry = map[string]Module{}
)

// Register adds a built-in module. It panics on an empty or duplicate name: both are programming
// errors caught at init.
func Register(m Module) {
	if m.Export == "" || m.New == nil || m.Kind == 0 {
		panic("policy: Register needs Export, Kind and New")
	}
	regMu.Lock()
	defer regMu.Unlock()
	for _, name := range append([]string{m.Export}, m.Aliases...) {
		if _, dup := registry[name]; dup {
			panic(fmt.Sprintf("policy: module %q registered twice", name))
		}
		registry[name] = m
	}
}

// FindModule finds a module by export name or alias.
func FindModule(export string) (Module, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	m, ok := registry[export]
	return m, ok
}

// Exports lists registered export names of one kind, sorted, for error messages.
func Exports(kind Kind) []string {
	regMu.RLock()
	defer regMu.RUnlock()
	var out []string
	for name, m := range registry {
		if m.Kind == kind && name == m.Export {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// PolicyTypes lists the registered policyType values, sorted.
func PolicyTypes() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	seen := map[string]bool{}
	var out []string
	for _, m := range registry {
		if m.PolicyType != "" && !seen[m.PolicyType] {
			seen[m.PolicyType] = true
			out = append(out, m.PolicyType)
		}
	}
	sort.Strings(out)
	return out
}

// IsBuiltinModule reports whether a handler.module string selects the built-ins.
func IsBuiltinModule(module string) bool {
	return module == "$import(@zuplo/runtime)" || module == "$import(@zuplo/runtime/mcp-gateway)"
}

// Namer is implemented by modules that need the name they are configured under (the token
// exchange policy infers its upstream id from "mcp-token-exchange-{id}").
type Namer interface{ SetName(name string) }

// Validator checks decoded options without side effects or I/O. Errors name the option by its JSON
// path under options, e.g. "options.authMode: must be one of user-oauth, shared-oauth, got \"oauth\"";
// return several with errors.Join.
type Validator interface{ Validate() error }

// Provisioner hydrates a module for serving (opens caches, reads keys). It runs once at start.
type Provisioner interface {
	Provision(ctx context.Context, env *Env) error
}

// CleanerUpper releases what Provision acquired. It is also called when Provision failed, so it
// must cope with a partly provisioned module.
type CleanerUpper interface{ Cleanup() error }

// Inbound runs before the handler. It continues by returning (nil, nil), possibly after changing
// r's headers; it answers (stops the pipeline) with a response or an error. A *problem.Error is
// rendered as problem+json; any other error is a 500 whose cause is only logged.
type Inbound interface {
	HandleRequest(c *Context, r *http.Request) (*http.Response, error)
}

// Outbound runs on the handler's response before the response hooks.
type Outbound interface {
	HandleResponse(c *Context, r *http.Request, resp *http.Response) (*http.Response, error)
}

// Handler produces the response for a route. A proxying handler must pass the upstream's response
// through c.ProcessResponse before writing it, so outbound policies and response hooks see it.
type Handler interface {
	Handle(c *Context, w http.ResponseWriter, r *http.Request) error
}

// ResponseHook sees the response of the previous hook (compatibilityDate ≥ 2026-03-01: hooks
// chain) and returns the one to send, which may be the same.
type ResponseHook func(c *Context, r *http.Request, resp *http.Response) (*http.Response, error)

// IsMCPHandler reports whether a handler export is the MCP proxy (or one of its historical aliases).
func IsMCPHandler(export string) bool {
	m, ok := FindModule(export)
	return ok && m.Export == "McpProxyHandler"
}
