package config

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// Built-in CORS policy names a route may use without defining them.
const (
	CORSNone         = "none"
	CORSAnythingGoes = "anything-goes"
)

// loadPolicies reads config/policies.json: policies[] and corsPolicies[].
func (l *loader) loadPolicies() {
	const file = FilePolicies
	data, found := l.read(file)
	if !found {
		return
	}
	l.policiesFound = true
	root := l.parse(file, data)
	if root == nil {
		l.policiesBroken = true
		return
	}
	for i, k := range root.keys {
		if k != "policies" && k != "corsPolicies" {
			l.forbidEnv(file, jpath(k), "", root.vals[i])
		}
	}
	if ps := root.get("policies"); !ps.isNull() {
		if ps.kind != kArray {
			l.add(file, "policies", "", "must be an array, got "+ps.kind.String())
		} else {
			first := map[string]jpath{}
			for i, p := range ps.vals {
				l.loadPolicy(file, jpath("policies").index(i), i, p, first)
			}
		}
	}
	if cs := root.get("corsPolicies"); !cs.isNull() {
		if cs.kind != kArray {
			l.add(file, "corsPolicies", "", "must be an array, got "+cs.kind.String())
		} else {
			for i, c := range cs.vals {
				l.loadCORS(file, jpath("corsPolicies").index(i), c)
			}
		}
	}
}

func (l *loader) loadPolicy(file string, path jpath, index int, p *node, first map[string]jpath) {
	if p.kind != kObject {
		l.add(file, path, "", "must be an object {name, policyType, handler}, got "+p.kind.String())
		return
	}
	early := ""
	if n := p.get("name"); n != nil && n.kind == kString && n.str != "" && !strings.Contains(n.str, envOpen) {
		early = "policy " + quote(n.str)
	}
	for i, k := range p.keys {
		if k != "handler" {
			l.forbidEnv(file, path.key(k), early, p.vals[i])
		}
	}
	h := p.get("handler")
	if h != nil && h.kind == kObject {
		for i, k := range h.keys {
			if k != "options" {
				l.forbidEnv(file, path.key("handler").key(k), early, h.vals[i])
			}
		}
	}
	name, ok := l.str(file, path.key("name"), "", p.get("name"), "required: the name routes use in policies.inbound/outbound")
	if !ok || strings.Contains(name, envOpen) {
		return
	}
	subject := "policy " + quote(name)
	if prev, dup := first[name]; dup {
		l.add(file, path.key("name"), subject, "duplicate policy name: "+string(prev)+" has the same name; names must be unique")
		return
	}
	first[name] = path
	pol := &Policy{File: file, Index: index, Name: name}
	l.proj.Policies[name] = pol
	l.proj.PolicyOrder = append(l.proj.PolicyOrder, name)

	ptype, okType := l.str(file, path.key("policyType"), subject, p.get("policyType"), "required: the policy's type, e.g. api-key-inbound")
	pol.PolicyType = ptype
	mod, ok := l.resolveModule(file, path.key("handler"), subject, h, 0)
	if !ok {
		return
	}
	l.policyMods[name] = mod
	pol.Handler.Module = h.get("module").str
	pol.Handler.Export = h.get("export").str
	if okType && !strings.Contains(ptype, envOpen) && ptype != mod.PolicyType {
		l.add(file, path.key("policyType"), subject, "must be "+quote(mod.PolicyType)+" for export "+mod.Export+", got "+quote(ptype))
	}
	optPath := path.key("handler").key("options")
	options := l.substEnv(file, optPath, subject, h.get("options"))
	l.policyOptions[name] = options
	before := len(l.problems)
	pol.Handler.Options = rawOptions(options)
	pol.Handler.Value = l.decodeOptions(file, path.key("handler"), subject, name, mod, options, before)
}

// rawOptions is the options object as JSON ({} when absent).
func rawOptions(n *node) json.RawMessage {
	if n.isNull() {
		return json.RawMessage("{}")
	}
	b, _ := n.MarshalJSON()
	return b
}

// corsKeys are the properties of a corsPolicies entry.
var corsKeys = []string{"allowCredentials", "allowedHeaders", "allowedMethods", "allowedOrigins", "exposeHeaders", "maxAge", "name"}

func (l *loader) loadCORS(file string, path jpath, c *node) {
	if c.kind != kObject {
		l.add(file, path, "", "must be an object {name, allowedOrigins, …}, got "+c.kind.String())
		return
	}
	l.forbidEnv(file, path.key("name"), "", c.get("name"))
	name, ok := l.str(file, path.key("name"), "", c.get("name"), "required: the name routes use as corsPolicy")
	if !ok || strings.Contains(name, envOpen) {
		return
	}
	subject := "corsPolicy " + quote(name)
	switch {
	case name == CORSNone || name == CORSAnythingGoes:
		l.add(file, path.key("name"), subject, "the name is reserved for the built-in policy "+quote(name)+"; pick another")
		return
	case l.proj.CORSPolicies[name] != nil:
		l.add(file, path.key("name"), subject, "duplicate corsPolicy name; names must be unique")
		return
	}
	cp := &CORSPolicy{Name: name}
	l.proj.CORSPolicies[name] = cp
	c = l.substEnv(file, path, subject, c)
	for i, k := range c.keys {
		if !slices.Contains(corsKeys, k) {
			l.add(file, path.key(k), subject, "unknown property "+quote(k)+"; allowed: "+strings.Join(corsKeys, ", "))
			continue
		}
		v, p := c.vals[i], path.key(k)
		if v.isNull() {
			continue
		}
		switch k {
		case "allowedOrigins":
			cp.AllowedOrigins = l.stringList(file, p, subject, v)
			for j, o := range cp.AllowedOrigins {
				if !isOrigin(o) {
					l.add(file, p, subject, "entry "+strconv.Itoa(j)+" must be \"*\" or an origin such as https://app.example.com, got "+quote(o))
				}
			}
		case "allowedMethods":
			cp.AllowedMethods = l.stringList(file, p, subject, v)
			for j, m := range cp.AllowedMethods {
				cp.AllowedMethods[j] = strings.ToUpper(m)
			}
		case "allowedHeaders":
			cp.AllowedHeaders = l.stringList(file, p, subject, v)
		case "exposeHeaders":
			cp.ExposeHeaders = l.stringList(file, p, subject, v)
		case "maxAge":
			// A whole $env(X) yields a string, so digits in a string are accepted too.
			n, err := strconv.Atoi(v.str)
			if (v.kind != kNumber && v.kind != kString) || err != nil || n < 0 {
				l.add(file, p, subject, "must be a whole number of seconds, got "+describe(v))
			}
			cp.MaxAge = n
		case "allowCredentials":
			switch {
			case v.kind == kBool:
				cp.AllowCredentials = v.b
			case v.kind == kString && (v.str == "true" || v.str == "false"):
				cp.AllowCredentials = v.str == "true"
			default:
				l.add(file, p, subject, "must be a boolean, got "+describe(v))
			}
		}
	}
	if c.get("allowedOrigins").isNull() {
		l.add(file, path.key("allowedOrigins"), subject, "required: the origins allowed to call the route, e.g. [\"https://app.example.com\"] or \"*\"")
	}
}

// stringList reads a string[] or a comma-separated string.
func (l *loader) stringList(file string, path jpath, subject string, n *node) []string {
	var out []string
	switch n.kind {
	case kString:
		for s := range strings.SplitSeq(n.str, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	case kArray:
		for i, e := range n.vals {
			if e.kind != kString {
				l.add(file, path.index(i), subject, "must be a string, got "+e.kind.String())
				continue
			}
			out = append(out, strings.TrimSpace(e.str))
		}
	default:
		l.add(file, path, subject, "must be a string or an array of strings, got "+n.kind.String())
	}
	return out
}

// isOrigin accepts "*" and scheme://host[:port], where host may start with a "*." wildcard.
func isOrigin(s string) bool {
	if s == "*" {
		return true
	}
	u, err := url.Parse(strings.Replace(s, "://*.", "://wildcard.", 1))
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		(u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.Fragment == ""
}

// policyKindName says what kind of module a policy is, for messages.
func policyKindName(m policy.Module) string { return m.Kind.String() + " (" + m.Export + ")" }
