// Package config loads and validates a Zuplo-style project: zuplo.jsonc, config/*.oas.json and
// config/policies.json. Load collects every problem it finds and names each by file and JSON path.
package config

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// MinCompatibilityDate is the oldest compatibilityDate that enables chained response hooks and
// therefore the MCP gateway features.
const MinCompatibilityDate = "2026-03-01"

// Project is a loaded, validated configuration.
type Project struct {
	Dir               string
	Version           int
	CompatibilityDate string
	// Routes in match order: files alphabetically, then document order; a "get,post" key is one
	// Route with two Methods.
	Routes []*Route
	// Policies by name, and their names in file order.
	Policies    map[string]*Policy
	PolicyOrder []string
	// CORSPolicies by name (the built-ins "none" and "anything-goes" are not listed).
	CORSPolicies map[string]*CORSPolicy
	// Warnings are what the configuration allows but an operator must hear about, in the form of
	// problems (a shared-oauth grant served to anonymous callers by explicit opt-in). The gateway
	// logs them when it starts; they never make Load fail.
	Warnings []Problem
}

// Path modes of x-zuplo-path.pathMode.
const (
	PathModeOpenAPI    = "open-api"    // {param}
	PathModeURLPattern = "url-pattern" // :param, (.*)
)

// Route is one operation (or one multi-method key) of an OpenAPI file.
type Route struct {
	File     string // relative to the project dir, e.g. config/routes.oas.json
	JSONPath string // e.g. paths["/mcp/linear"]["get,post"]
	Path     string
	PathMode string
	Methods  []string // upper case, e.g. GET, POST
	// OperationID and Summary come from the OpenAPI operation.
	OperationID string
	Summary     string
	// Version is the info.version of the route's OpenAPI document, as written ("" when absent).
	Version  string
	Handler  Handler
	Inbound  []string // policy names, in order
	Outbound []string
	// CORSPolicy is "none" (default), "anything-goes" or a corsPolicies[].name.
	CORSPolicy string
	// Info is what policies and handlers see; Upstream is set for rewrite handlers.
	Info *policy.RouteInfo
}

// Policy is one entry of policies.json.
type Policy struct {
	File       string
	Index      int // position in policies[]
	Name       string
	PolicyType string
	Handler    Handler
}

// Handler is a route's handler or a policy's handler object ({module, export, options}) with its decoded options.
type Handler struct {
	Module string // $import(...)
	Export string
	// Options is the options object after $env substitution, as JSON.
	Options json.RawMessage
	// Value is policy.Module.New() with Options strictly decoded into it and validated. It is
	// the instance the gateway provisions and runs.
	Value any
}

// CORSPolicy is one entry of corsPolicies.
type CORSPolicy struct {
	Name             string
	AllowedOrigins   []string
	AllowedMethods   []string
	AllowedHeaders   []string
	ExposeHeaders    []string
	MaxAge           int
	AllowCredentials bool
}

// Problem is one thing wrong with a configuration.
type Problem struct {
	File    string // relative path, e.g. config/policies.json
	Path    string // JSON path, e.g. policies[3].handler.options.authMode
	Subject string // the route or policy it concerns, e.g. `policy "mcp-token-exchange-linear"`
	Message string // what is wrong and what is allowed
}

// String formats the problem as one line: "file: path (subject): message"; the path and
// subject are left out when empty.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Path != "" {
		b.WriteString(": ")
		b.WriteString(p.Path)
	}
	if p.Subject != "" {
		b.WriteString(" (")
		b.WriteString(p.Subject)
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(p.Message)
	return b.String()
}

// Errors is every problem found in one load. It is returned as the error of Load.
type Errors []Problem

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = p.String()
	}
	return fmt.Sprintf("%d configuration problem(s):\n%s", len(e), strings.Join(lines, "\n"))
}
