package capfilter

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// kind is a capability type.
type kind int

const (
	kindTools kind = iota
	kindPrompts
	kindResources
	kindTemplates
	numKinds
)

// kinds describes each capability type on the wire.
var kinds = [numKinds]struct {
	listMethod string // the list request
	listKey    string // the array in its result
	keyField   string // the field items are matched by
}{
	kindTools:     {"tools/list", "tools", "name"},
	kindPrompts:   {"prompts/list", "prompts", "name"},
	kindResources: {"resources/list", "resources", "uri"},
	kindTemplates: {"resources/templates/list", "resourceTemplates", "uriTemplate"},
}

// listKinds maps a list method to its capability type.
var listKinds = map[string]kind{
	"tools/list":               kindTools,
	"prompts/list":             kindPrompts,
	"resources/list":           kindResources,
	"resources/templates/list": kindTemplates,
}

// item is one compiled list entry.
type item struct {
	key           string
	public        bool
	roles, groups []string
	// replace holds fields whose value the projection replaces (description, name, mimeType),
	// already encoded; patch holds the JSON merge patches of object fields (annotations, _meta).
	replace map[string]json.RawMessage
	patch   map[string]map[string]any
	// tmpl matches the URIs a resource template expands to, by RFC 6570's rules; loose matches
	// any text in place of each expression (templates only).
	tmpl, loose *regexp.Regexp
}

func (it *item) projects() bool { return len(it.replace) > 0 || len(it.patch) > 0 }

// list is one configured capability list; a nil *list is an omitted option (pass through).
type list struct {
	items []*item
	byKey map[string]*item
}

func (l *list) lookup(key string) *item {
	if l == nil {
		return nil
	}
	return l.byKey[key]
}

// index is the compiled form of the options.
type index struct {
	lists                   [numKinds]*list
	roleMode                bool
	rolesClaim, groupsClaim string
}

// Provision implements policy.Provisioner: it compiles the options.
func (p *Policy) Provision(_ context.Context, _ *policy.Env) error {
	idx, err := p.compile()
	if err != nil {
		return err
	}
	p.idx = idx
	return nil
}

func (p *Policy) compile() (*index, error) {
	idx := &index{roleMode: p.Mode() == ModeRolesAndGroups}
	idx.rolesClaim, idx.groupsClaim = p.Claims()
	var errs []error
	add := func(k kind, it *item, a Access) {
		it.public = a.Public != nil && *a.Public
		it.roles, it.groups = a.Roles, a.Groups
		l := idx.lists[k]
		if _, dup := l.byKey[it.key]; dup {
			return // Validate reported it; the first entry wins
		}
		l.items = append(l.items, it)
		l.byKey[it.key] = it
	}
	newList := func(k kind, present bool) {
		if present {
			idx.lists[k] = &list{byKey: map[string]*item{}}
		}
	}
	newList(kindTools, p.Tools != nil)
	newList(kindPrompts, p.Prompts != nil)
	newList(kindResources, p.Resources != nil)
	newList(kindTemplates, p.ResourceTemplates != nil)
	for _, t := range p.Tools {
		it := &item{key: t.Name}
		setString(it, "description", t.Description)
		setPatch(it, "annotations", t.Annotations)
		setPatch(it, "_meta", t.Meta)
		add(kindTools, it, t.Access)
	}
	for _, t := range p.Prompts {
		it := &item{key: t.Name}
		setString(it, "description", t.Description)
		setPatch(it, "_meta", t.Meta)
		add(kindPrompts, it, t.Access)
	}
	for _, t := range p.Resources {
		it := &item{key: t.URI}
		setString(it, "name", t.Name)
		setString(it, "description", t.Description)
		setString(it, "mimeType", t.MIMEType)
		setPatch(it, "_meta", t.Meta)
		add(kindResources, it, t.Access)
	}
	for _, t := range p.ResourceTemplates {
		it := &item{key: t.URITemplate}
		setString(it, "name", t.Name)
		setString(it, "description", t.Description)
		setString(it, "mimeType", t.MIMEType)
		setPatch(it, "_meta", t.Meta)
		var err error
		if it.tmpl, err = compileTemplate(t.URITemplate, false); err == nil {
			it.loose, err = compileTemplate(t.URITemplate, true)
		}
		if err != nil {
			errs = append(errs, errors.New("capability filter: resource template "+t.URITemplate+": "+err.Error()))
			continue
		}
		add(kindTemplates, it, t.Access)
	}
	return idx, errors.Join(errs...)
}

func setString(it *item, field string, v *string) {
	if v == nil {
		return
	}
	b, _ := json.Marshal(*v)
	if it.replace == nil {
		it.replace = map[string]json.RawMessage{}
	}
	it.replace[field] = b
}

func setPatch(it *item, field string, v map[string]any) {
	if len(v) == 0 {
		return
	}
	if it.patch == nil {
		it.patch = map[string]map[string]any{}
	}
	it.patch[field] = v
}

// caller is what one request may see.
type caller struct {
	idx           *index
	roles, groups []string
}

func (idx *index) caller(u *policy.User) *caller {
	c := &caller{idx: idx}
	if idx.roleMode && u != nil {
		c.roles = claimValues(u.Data, idx.rolesClaim)
		c.groups = claimValues(u.Data, idx.groupsClaim)
	}
	return c
}

// visible reports whether the caller may see a listed item.
func (c *caller) visible(it *item) bool {
	if !c.idx.roleMode || it.public {
		return true
	}
	return intersects(it.roles, c.roles) || intersects(it.groups, c.groups)
}

// allowed reports whether the caller may use the item with this key: always when the list is
// omitted, else when it is listed and visible.
func (c *caller) allowed(k kind, key string) bool {
	l := c.idx.lists[k]
	if l == nil {
		return true
	}
	it := l.byKey[key]
	return it != nil && c.visible(it)
}

// readAllowed decides a resources/read (and subscribe) of uri. A URI listed in resources is
// decided by that entry. Otherwise it may be the expansion of a resource template: a visible
// template that can expand to it allows it. What is left is a resource nobody listed: refused
// when resources is configured (an allow-list), allowed when it is omitted (resources pass
// through) unless a template hidden from this caller might have produced it (matched loosely:
// each expression stands for any text, whatever the upstream's own matching rules).
func (c *caller) readAllowed(uri string) bool {
	rs, ts := c.idx.lists[kindResources], c.idx.lists[kindTemplates]
	if rs == nil && ts == nil {
		return true
	}
	if it := rs.lookup(uri); it != nil {
		return c.visible(it)
	}
	hiddenMatch := false
	if ts != nil {
		for _, it := range ts.items {
			if c.visible(it) {
				if it.tmpl.MatchString(uri) {
					return true
				}
			} else if it.loose.MatchString(uri) {
				hiddenMatch = true
			}
		}
	}
	return rs == nil && !hiddenMatch
}

// completionResourceAllowed decides a completion/complete whose ref is a resource (or resource
// template) URI.
func (c *caller) completionResourceAllowed(uri string) bool {
	rs, ts := c.idx.lists[kindResources], c.idx.lists[kindTemplates]
	if ts == nil {
		return c.readAllowed(uri)
	}
	if it := ts.lookup(uri); it != nil {
		return c.visible(it)
	}
	if it := rs.lookup(uri); it != nil {
		return c.visible(it)
	}
	return false
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// claimValues reads a claim of request.user.data as a list of strings: an array of strings, or a
// single string. A claim name with dots that is not itself a key is looked up as a path into
// nested objects (Keycloak's realm_access.roles).
func claimValues(data map[string]any, claim string) []string {
	if data == nil {
		return nil
	}
	v, ok := data[claim]
	if !ok && strings.Contains(claim, ".") {
		cur := any(data)
		for part := range strings.SplitSeq(claim, ".") {
			m, isMap := cur.(map[string]any)
			if !isMap {
				cur = nil
				break
			}
			cur = m[part]
		}
		v = cur
	}
	switch x := v.(type) {
	case string:
		return []string{x}
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// compileTemplate turns an RFC 6570 URI template into a regexp matching the URIs it can expand
// to: each expression matches the characters its operator can produce, or, when loose, any
// text at all.
func compileTemplate(t string, loose bool) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(t); {
		switch t[i] {
		case '{':
			end := strings.IndexByte(t[i:], '}')
			if end < 0 {
				return nil, errors.New("must be an RFC 6570 URI template: an expression is not closed with '}'")
			}
			expr := t[i+1 : i+end]
			if expr == "" || strings.ContainsAny(expr, "{") {
				return nil, errors.New("must be an RFC 6570 URI template: empty or nested expression")
			}
			if loose {
				b.WriteString(`.*`)
			} else {
				b.WriteString(exprPattern(expr))
			}
			i += end + 1
		case '}':
			return nil, errors.New("must be an RFC 6570 URI template: '}' without '{'")
		default:
			j := strings.IndexAny(t[i:], "{}")
			if j < 0 {
				j = len(t) - i
			}
			b.WriteString(regexp.QuoteMeta(t[i : i+j]))
			i += j
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// exprPattern is the liberal pattern of one template expression, by its operator.
func exprPattern(expr string) string {
	switch expr[0] {
	case '+':
		return `.*`
	case '#':
		return `(?:#.*)?`
	case '.':
		return `(?:\.[^/?#]*)*`
	case '/':
		return `(?:/[^?#]*)*`
	case ';':
		return `(?:;[^/?#]*)*`
	case '?':
		return `(?:\?[^#]*)?`
	case '&':
		return `(?:&[^#]*)*`
	}
	return `[^/?#]*`
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
