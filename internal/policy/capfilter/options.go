// Package capfilter is the mcp-capability-filter-inbound policy (export
// McpCapabilityFilterInboundPolicy): a per-route allow-list of the tools, prompts, resources and
// resource templates an upstream MCP server exposes through the gateway, with projections that
// override what clients are told about an item and, optionally, who may see it (roles and
// groups of the authenticated caller).
//
// The policy works on both sides of the proxied request. On the way in it reads the JSON-RPC
// body and answers a call of a hidden item (tools/call, prompts/get, resources/read, …) itself
// with -32601, before the upstream sees it; a batch with any hidden call is refused whole. For a
// list request (tools/list, prompts/list, resources/list, resources/templates/list) it registers
// a response hook that removes hidden items from the answer and applies projections, in JSON
// answers and in SSE streams alike (an SSE stream is rewritten event by event as it flows).
package capfilter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// Export and PolicyType are how config names this policy.
const (
	Export     = "McpCapabilityFilterInboundPolicy"
	PolicyType = "mcp-capability-filter-inbound"
)

// Access-control modes.
const (
	ModeAllPublic      = "allPublic"
	ModeRolesAndGroups = "rolesAndGroups"
	// ModeFunction needs custom code (accessControl.identifier): a configuration error here.
	ModeFunction = "function"
)

// Default claims of request.user.data that hold the caller's roles and groups.
const (
	DefaultRolesClaim  = "roles"
	DefaultGroupsClaim = "groups"
)

var (
	modes        = []string{ModeAllPublic, ModeRolesAndGroups, ModeFunction}
	claimPattern = regexp.MustCompile(`^[^\s"\\]+$`)
)

// Policy holds the options of mcp-capability-filter-inbound. A nil list (the option omitted)
// passes that capability type through untouched; an empty list hides every item of it.
type Policy struct {
	// Tools are matched by name.
	Tools []ToolItem `json:"tools"`
	// Prompts are matched by name.
	Prompts []PromptItem `json:"prompts"`
	// Resources are matched by uri.
	Resources []ResourceItem `json:"resources"`
	// ResourceTemplates are matched by uriTemplate.
	ResourceTemplates []TemplateItem `json:"resourceTemplates"`
	// AccessControl is a mode string or {mode, roleClaim, groupClaim, identifier}; default
	// allPublic (every listed item is visible to every caller).
	AccessControl *AccessControl `json:"accessControl,omitempty"`
	// RolesClaim and GroupsClaim (mcpgate spellings of accessControl.roleClaim and
	// accessControl.groupClaim) name the request.user.data claims holding the caller's roles and
	// groups; default roles and groups.
	RolesClaim  string `json:"rolesClaim,omitempty"`
	GroupsClaim string `json:"groupsClaim,omitempty"`

	// idx is the compiled form of the options; set by Provision.
	idx *index
}

// Access says who sees an item under accessControl rolesAndGroups: everyone when Public, else a
// caller with one of Roles or one of Groups.
type Access struct {
	Roles  []string `json:"roles,omitempty"`
	Groups []string `json:"groups,omitempty"`
	Public *bool    `json:"public,omitempty"`
}

// ToolItem is one entry of options.tools: a name, or a projection object.
type ToolItem struct {
	Name        string         `json:"name"`
	Description *string        `json:"description,omitempty"`
	Annotations map[string]any `json:"annotations,omitempty"`
	Meta        map[string]any `json:"_meta,omitempty"`
	Access
	// decodeErr keeps an error of the object form for Validate (see decodeItem).
	decodeErr error
}

// PromptItem is one entry of options.prompts: a name, or a projection object.
type PromptItem struct {
	Name        string         `json:"name"`
	Description *string        `json:"description,omitempty"`
	Meta        map[string]any `json:"_meta,omitempty"`
	Access
	decodeErr error
}

// ResourceItem is one entry of options.resources: a URI, or a projection object. Name and
// MIMEType override the upstream's; the URI is the identity and never changes.
type ResourceItem struct {
	URI         string         `json:"uri"`
	Name        *string        `json:"name,omitempty"`
	Description *string        `json:"description,omitempty"`
	MIMEType    *string        `json:"mimeType,omitempty"`
	Meta        map[string]any `json:"_meta,omitempty"`
	Access
	decodeErr error
}

// TemplateItem is one entry of options.resourceTemplates: a URI template, or a projection object.
type TemplateItem struct {
	URITemplate string         `json:"uriTemplate"`
	Name        *string        `json:"name,omitempty"`
	Description *string        `json:"description,omitempty"`
	MIMEType    *string        `json:"mimeType,omitempty"`
	Meta        map[string]any `json:"_meta,omitempty"`
	Access
	decodeErr error
}

// AccessControl is the accessControl option in either of its shapes.
type AccessControl struct {
	Mode       string      `json:"mode"`
	RoleClaim  string      `json:"roleClaim,omitempty"`
	GroupClaim string      `json:"groupClaim,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	// ModeOnly is true when config wrote the string shape ("accessControl": "rolesAndGroups").
	ModeOnly  bool `json:"-"`
	decodeErr error
}

// Identifier names custom code ({module, export}); accepted by shape only, always refused.
type Identifier struct {
	Module string `json:"module"`
	Export string `json:"export"`
}

// decodeItem decodes the string shape into *key, or the object shape into obj. The config
// loader checks an object's keys and value types itself, each by its path, after calling
// UnmarshalJSON; so a value-type error of the object shape is kept in *keep for Validate (it is
// reported by Validate only when the options were decoded without the loader) instead of
// hiding the loader's precise messages behind one generic one.
func decodeItem(b []byte, key *string, obj any, keep *error, what string) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		// The loader skips null values; Validate names the path.
		*keep = errors.New("must be " + what + ", got null")
		return nil
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, key)
	case len(b) > 0 && b[0] == '{':
		if err := json.Unmarshal(b, obj); err != nil {
			if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
				*keep = err
				return nil
			}
			return err
		}
		return nil
	}
	return errors.New("must be " + what)
}

// UnmarshalJSON accepts a name or the projection object.
func (t *ToolItem) UnmarshalJSON(b []byte) error {
	type plain ToolItem
	var p plain
	err := decodeItem(b, &p.Name, &p, &p.decodeErr, "a tool name or an object {name, description, annotations, _meta, roles, groups, public}")
	*t = ToolItem(p)
	return err
}

// UnmarshalJSON accepts a name or the projection object.
func (t *PromptItem) UnmarshalJSON(b []byte) error {
	type plain PromptItem
	var p plain
	err := decodeItem(b, &p.Name, &p, &p.decodeErr, "a prompt name or an object {name, description, _meta, roles, groups, public}")
	*t = PromptItem(p)
	return err
}

// UnmarshalJSON accepts a URI or the projection object.
func (t *ResourceItem) UnmarshalJSON(b []byte) error {
	type plain ResourceItem
	var p plain
	err := decodeItem(b, &p.URI, &p, &p.decodeErr, "a resource URI or an object {uri, name, description, mimeType, _meta, roles, groups, public}")
	*t = ResourceItem(p)
	return err
}

// UnmarshalJSON accepts a URI template or the projection object.
func (t *TemplateItem) UnmarshalJSON(b []byte) error {
	type plain TemplateItem
	var p plain
	err := decodeItem(b, &p.URITemplate, &p, &p.decodeErr, "a URI template or an object {uriTemplate, name, description, mimeType, _meta, roles, groups, public}")
	*t = TemplateItem(p)
	return err
}

// UnmarshalJSON accepts a mode string or the object shape.
func (a *AccessControl) UnmarshalJSON(b []byte) error {
	type plain AccessControl
	var p plain
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		p.ModeOnly = true
	}
	err := decodeItem(b, &p.Mode, &p, &p.decodeErr, "a mode ("+strings.Join(modes, ", ")+") or an object {mode, roleClaim, groupClaim, identifier}")
	*a = AccessControl(p)
	return err
}

func init() {
	policy.Register(policy.Module{
		Export:     Export,
		PolicyType: PolicyType,
		Kind:       policy.KindInbound,
		New:        func() any { return new(Policy) },
	})
}

// Mode returns the effective access-control mode.
func (p *Policy) Mode() string {
	if p.AccessControl == nil || p.AccessControl.Mode == "" {
		return ModeAllPublic
	}
	return p.AccessControl.Mode
}

// Claims returns the effective roles and groups claim names.
func (p *Policy) Claims() (roles, groups string) {
	roles, groups = DefaultRolesClaim, DefaultGroupsClaim
	if p.RolesClaim != "" {
		roles = p.RolesClaim
	}
	if p.GroupsClaim != "" {
		groups = p.GroupsClaim
	}
	if a := p.AccessControl; a != nil {
		if a.RoleClaim != "" {
			roles = a.RoleClaim
		}
		if a.GroupClaim != "" {
			groups = a.GroupClaim
		}
	}
	return roles, groups
}

// problems collects every problem of a Validate, each "options.<path>: message".
type problems struct{ errs []error }

func (ps *problems) add(format string, a ...any) { ps.errs = append(ps.errs, fmt.Errorf(format, a...)) }

// Validate checks the options without I/O; every problem is named by its path under options.
func (p *Policy) Validate() error {
	var ps problems
	p.validateAccessControl(&ps)
	v := itemValidator{p: p, ps: &ps, roleMode: p.Mode() == ModeRolesAndGroups}
	v.list("tools", "name", "tool", len(p.Tools), func(i int, path string) (string, Access, error) {
		t := p.Tools[i]
		checkText(&ps, path+".description", t.Description)
		checkAnnotations(&ps, path+".annotations", t.Annotations)
		return t.Name, t.Access, t.decodeErr
	})
	v.list("prompts", "name", "prompt", len(p.Prompts), func(i int, path string) (string, Access, error) {
		t := p.Prompts[i]
		checkText(&ps, path+".description", t.Description)
		return t.Name, t.Access, t.decodeErr
	})
	v.list("resources", "uri", "resource", len(p.Resources), func(i int, path string) (string, Access, error) {
		t := p.Resources[i]
		checkText(&ps, path+".name", t.Name)
		checkText(&ps, path+".description", t.Description)
		checkText(&ps, path+".mimeType", t.MIMEType)
		return t.URI, t.Access, t.decodeErr
	})
	v.list("resourceTemplates", "uriTemplate", "resource template", len(p.ResourceTemplates), func(i int, path string) (string, Access, error) {
		t := p.ResourceTemplates[i]
		if t.URITemplate != "" && t.decodeErr == nil {
			if _, err := compileTemplate(t.URITemplate, false); err != nil {
				ps.add("%s.uriTemplate: %v, got %q", path, err, t.URITemplate)
			}
		}
		checkText(&ps, path+".name", t.Name)
		checkText(&ps, path+".description", t.Description)
		checkText(&ps, path+".mimeType", t.MIMEType)
		return t.URITemplate, t.Access, t.decodeErr
	})
	return errors.Join(ps.errs...)
}

// itemValidator checks the entries of the capability lists.
type itemValidator struct {
	p        *Policy
	ps       *problems
	roleMode bool
}

// list checks each entry of one list, in order: its shape, its key (required, unique), what
// check reports about its overrides, and its access settings.
func (v itemValidator) list(name, keyName, what string, n int, check func(i int, path string) (key string, a Access, decodeErr error)) {
	seen := map[string]int{}
	for i := range n {
		path := fmt.Sprintf("options.%s[%d]", name, i)
		// The key's problems come before the overrides'.
		mark := len(v.ps.errs)
		key, a, decodeErr := check(i, path)
		overrides := append([]error(nil), v.ps.errs[mark:]...)
		v.ps.errs = v.ps.errs[:mark]
		if decodeErr != nil {
			v.ps.add("%s: %s", path, typeErrorText(decodeErr))
			continue
		}
		if key == "" {
			v.ps.add("%s.%s: required: the upstream's %s of the %s", path, keyName, keyName, what)
		} else if j, dup := seen[key]; dup {
			v.ps.add("%s: duplicate %s %q, already listed at %s[%d]; list each %s once", path, what, key, name, j, what)
		} else {
			seen[key] = i
		}
		v.ps.errs = append(v.ps.errs, overrides...)
		v.p.validateAccess(v.ps, path, a, v.roleMode)
	}
}

func (p *Policy) validateAccessControl(ps *problems) {
	for _, c := range []struct{ path, v string }{{"options.rolesClaim", p.RolesClaim}, {"options.groupsClaim", p.GroupsClaim}} {
		if c.v != "" && !claimPattern.MatchString(c.v) {
			ps.add("%s: must be a claim name without spaces or quotes, got %q", c.path, c.v)
		}
	}
	a := p.AccessControl
	if a == nil {
		return
	}
	if a.decodeErr != nil {
		ps.add("options.accessControl: %s", typeErrorText(a.decodeErr))
		return
	}
	modePath := "options.accessControl"
	if !a.ModeOnly {
		modePath += ".mode"
	}
	switch {
	case a.Mode == "" && a.ModeOnly:
		ps.add("%s: must be one of %s, got \"\"", modePath, strings.Join(modes, ", "))
	case a.Mode == "":
		ps.add("%s: required: one of %s", modePath, strings.Join(modes, ", "))
	case a.Mode == ModeFunction:
		ps.add("%s: %q needs custom code (a TypeScript function named by accessControl.identifier), which mcpgate does not run; use %s or %s (roles and groups of the signed-in user)",
			modePath, ModeFunction, ModeAllPublic, ModeRolesAndGroups)
	case !oneOf(a.Mode, modes):
		ps.add("%s: must be one of %s, got %q", modePath, strings.Join(modes, ", "), a.Mode)
	}
	if a.Identifier != nil {
		ps.add("options.accessControl.identifier: custom code modules are not supported; remove it and use mode %s or %s", ModeAllPublic, ModeRolesAndGroups)
	}
	for _, c := range []struct{ path, v, other, otherPath string }{
		{"options.accessControl.roleClaim", a.RoleClaim, p.RolesClaim, "options.rolesClaim"},
		{"options.accessControl.groupClaim", a.GroupClaim, p.GroupsClaim, "options.groupsClaim"},
	} {
		switch {
		case c.v != "" && !claimPattern.MatchString(c.v):
			ps.add("%s: must be a claim name without spaces or quotes, got %q", c.path, c.v)
		case c.v != "" && c.other != "" && c.v != c.other:
			ps.add("%s and %s: conflicting claim names %q and %q; set the claim once", c.otherPath, c.path, c.other, c.v)
		}
	}
}

// validateAccess checks an item's roles, groups and public against the mode: under allPublic
// they would be silently ignored (every listed item is visible to everyone), which is never what
// someone who wrote roles meant; under rolesAndGroups an item nobody could see is a mistake.
func (p *Policy) validateAccess(ps *problems, path string, a Access, roleMode bool) {
	for _, l := range []struct {
		name string
		vs   []string
	}{{"roles", a.Roles}, {"groups", a.Groups}} {
		for j, v := range l.vs {
			if strings.TrimSpace(v) == "" {
				ps.add("%s.%s[%d]: must not be empty", path, l.name, j)
			}
		}
	}
	if !roleMode {
		if p.Mode() != ModeAllPublic {
			return // an invalid mode is reported once, above
		}
		if len(a.Roles) > 0 {
			ps.add("%s.roles: only used with accessControl %s; with %s (the default) every listed item is visible to every caller: set accessControl to %s or remove roles", path, ModeRolesAndGroups, ModeAllPublic, ModeRolesAndGroups)
		}
		if len(a.Groups) > 0 {
			ps.add("%s.groups: only used with accessControl %s; with %s (the default) every listed item is visible to every caller: set accessControl to %s or remove groups", path, ModeRolesAndGroups, ModeAllPublic, ModeRolesAndGroups)
		}
		if a.Public != nil && !*a.Public {
			ps.add("%s.public: false only means something with accessControl %s; with %s (the default) every listed item is visible to every caller", path, ModeRolesAndGroups, ModeAllPublic)
		}
		return
	}
	if len(a.Roles) == 0 && len(a.Groups) == 0 && (a.Public == nil || !*a.Public) {
		ps.add("%s: visible to nobody under accessControl %s: give it roles, groups or public: true, or remove it", path, ModeRolesAndGroups)
	}
}

func checkText(ps *problems, path string, v *string) {
	if v != nil && strings.TrimSpace(*v) == "" {
		ps.add("%s: must not be empty; leave it out to keep the upstream's", path)
	}
}

// annotationTypes are the ToolAnnotations fields of MCP and the JSON type each takes.
var annotationTypes = map[string]string{
	"title": "string", "readOnlyHint": "boolean", "destructiveHint": "boolean",
	"idempotentHint": "boolean", "openWorldHint": "boolean",
}

// checkAnnotations checks the known annotation fields' types; null removes a field (JSON merge
// patch), other fields pass as written.
func checkAnnotations(ps *problems, path string, a map[string]any) {
	for _, k := range sortedKeys(a) {
		want, known := annotationTypes[k]
		v := a[k]
		if !known || v == nil {
			continue
		}
		ok := false
		switch want {
		case "string":
			_, ok = v.(string)
		case "boolean":
			_, ok = v.(bool)
		}
		if !ok {
			ps.add("%s.%s: must be a %s or null, got %s", path, k, want, jsonKind(v))
		}
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64, json.Number:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
}

// typeErrorText describes a decoding error of an item's object shape without echoing values.
func typeErrorText(err error) string {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if f := strings.TrimPrefix(te.Field, "Access."); f != "" {
			return f + ": must be " + te.Type.String() + ", got " + te.Value
		}
		return "must be " + te.Type.String() + ", got " + te.Value
	}
	return err.Error()
}

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

var (
	_ policy.Validator   = (*Policy)(nil)
	_ policy.Provisioner = (*Policy)(nil)
	_ policy.Inbound     = (*Policy)(nil)
)
