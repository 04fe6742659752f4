package config

import (
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// upstreamIDer is what the token-exchange policy tells the loader about its upstream.
type upstreamIDer interface{ UpstreamID() string }

// checkProject applies the rules that span files: unique routes, operation ids and upstream
// ids, and the compatibility date that gateway features need.
func (l *loader) checkProject() {
	l.checkDuplicateRoutes()
	l.checkOperationIDs()
	l.checkUpstreamIDs()
	l.checkUpstreamURLs()
	l.checkCORSRefs()
	l.checkCompatibility()
}

func (l *loader) checkDuplicateRoutes() {
	if l.allowDuplicateRoutes {
		return
	}
	type at struct {
		file string
		path jpath
	}
	first := map[string]at{}
	for i, r := range l.proj.Routes {
		here := at{r.File, l.routeAt[i].path}
		var dups []string
		var prev at
		for _, m := range r.Methods {
			k := m + " " + routeKey(r.Path)
			if p, seen := first[k]; seen {
				dups, prev = append(dups, m), p
				continue
			}
			first[k] = here
		}
		if len(dups) > 0 {
			l.add(r.File, here.path, l.routeAt[i].subject, strings.Join(dups, ",")+" "+r.Path+" is already routed by "+prev.file+" "+string(prev.path)+"; each path and method may be defined once (or set allowDuplicateRoutes in zuplo.jsonc)")
		}
	}
}

func (l *loader) checkOperationIDs() {
	l.checkMCPPaths()
	first := map[string]int{}
	for i, r := range l.proj.Routes {
		if r.OperationID == "" || !policy.IsMCPHandler(r.Handler.Export) {
			continue
		}
		if j, seen := first[r.OperationID]; seen {
			o := l.proj.Routes[j]
			l.add(r.File, l.routeAt[i].path.key("operationId"), l.routeAt[i].subject, "operationId "+quote(r.OperationID)+" is already used by "+l.routeAt[j].subject+" ("+o.File+" "+string(l.routeAt[j].path)+"); MCP routes need unique operationIds")
			continue
		}
		first[r.OperationID] = i
	}
}

// checkMCPPaths keeps MCP routes on distinct paths: a route's OAuth metadata and connect URLs
// are per path, so two MCP operations on one path (say get and post written apart) would share
// them. Overlapping methods are already reported as duplicates.
func (l *loader) checkMCPPaths() {
	first := map[string]int{}
	for i, r := range l.proj.Routes {
		if !policy.IsMCPHandler(r.Handler.Export) {
			continue
		}
		k := routeKey(r.Path)
		j, seen := first[k]
		if !seen {
			first[k] = i
			continue
		}
		if o := l.proj.Routes[j]; !overlap(o.Methods, r.Methods) {
			l.add(r.File, l.routeAt[i].path, l.routeAt[i].subject, "path "+r.Path+" is already used by MCP "+l.routeAt[j].subject+" ("+o.File+" "+string(l.routeAt[j].path)+"); an MCP route is one operation per path, e.g. \"get,post\"")
		}
	}
}

func overlap(a, b []string) bool {
	for _, m := range a {
		if slices.Contains(b, m) {
			return true
		}
	}
	return false
}

func (l *loader) checkUpstreamIDs() {
	first := map[string]*Policy{}
	for _, name := range l.proj.PolicyOrder {
		p := l.proj.Policies[name]
		u, ok := p.Handler.Value.(upstreamIDer)
		if !ok || u.UpstreamID() == "" || !l.policyMods[name].TokenExchange {
			continue
		}
		id := u.UpstreamID()
		if o, seen := first[id]; seen {
			path := jpath("policies").index(p.Index)
			how := "(inferred from the policy name)"
			if l.policyOptions[name].get("id") != nil {
				path, how = path.key("handler").key("options").key("id"), ""
			} else {
				path = path.key("name")
			}
			msg := "upstream id " + quote(id) + " " + how + " is already used by policy " + quote(o.Name) + " (policies[" + strconv.Itoa(o.Index) + "]); each token-exchange policy needs its own id"
			l.add(p.File, path, "policy "+quote(name), strings.Replace(msg, "  ", " ", 1))
			continue
		}
		first[id] = p
	}
}

func (l *loader) checkCORSRefs() {
	for i, r := range l.proj.Routes {
		name := r.CORSPolicy
		if name == CORSNone || name == CORSAnythingGoes || l.proj.CORSPolicies[name] != nil {
			continue
		}
		allowed := []string{CORSNone, CORSAnythingGoes}
		for _, c := range l.proj.CORSPolicies {
			allowed = append(allowed, c.Name)
		}
		slices.Sort(allowed[2:])
		l.add(r.File, l.routeAt[i].path.key("x-zuplo-route").key("corsPolicy"), l.routeAt[i].subject, "unknown corsPolicy "+quote(name)+"; allowed: "+strings.Join(allowed, ", ")+" (corsPolicies are defined in "+FilePolicies+")")
	}
}

// checkCompatibility requires zuplo.jsonc with a compatibilityDate of at least
// MinCompatibilityDate once any gateway feature is used: chained response hooks are what the
// token exchange's retry and connect-required answers rely on.
func (l *loader) checkCompatibility() {
	feature := l.gatewayFeature()
	if feature == "" {
		return
	}
	switch {
	case l.zuploBroken:
		// The file's own problem is reported.
	case !l.zuploFound:
		l.add(FileZuplo, "", "", "file not found; it is required because "+feature+": write {\"version\": 1, \"compatibilityDate\": \""+MinCompatibilityDate+"\"}")
	case l.proj.CompatibilityDate == "" && !l.reported(FileZuplo, "compatibilityDate"):
		l.add(FileZuplo, "compatibilityDate", "", "required because "+feature+"; use "+MinCompatibilityDate+" or later")
	case l.proj.CompatibilityDate != "" && l.proj.CompatibilityDate < MinCompatibilityDate:
		l.add(FileZuplo, "compatibilityDate", "", "must be "+MinCompatibilityDate+" or later because "+feature+", got "+quote(l.proj.CompatibilityDate))
	}
}

// gatewayFeature names the first use of an MCP gateway feature (an McpProxyHandler route or an
// mcp-* policy), or "".
func (l *loader) gatewayFeature() string {
	for i, r := range l.proj.Routes {
		if policy.IsMCPHandler(r.Handler.Export) {
			return l.routeAt[i].subject + " uses McpProxyHandler"
		}
	}
	for _, name := range l.proj.PolicyOrder {
		if t := l.proj.Policies[name].PolicyType; strings.HasPrefix(t, "mcp-") {
			return "policy " + quote(name) + " is an " + t + " policy"
		}
	}
	return ""
}

func (l *loader) reported(file, path string) bool {
	for _, p := range l.problems {
		if p.File == file && p.Path == path {
			return true
		}
	}
	return false
}

// userNeeder is implemented by the token-exchange policy: user-oauth needs a request user.
type userNeeder interface{ NeedsUser() bool }

// authPolicyTypes lists the policyTypes of the registered gateway auth policies, for messages.
func authPolicyTypes() []string {
	var out []string
	wrappers := false
	for _, t := range policy.PolicyTypes() {
		for _, e := range policy.Exports(policy.KindInbound) {
			m, _ := policy.FindModule(e)
			if m.PolicyType != t || !m.Authenticates || slices.Contains(out, t) {
				continue
			}
			// mcp-oauth-inbound's provider wrappers (mcp-auth0-oauth-inbound, …) are named once.
			if strings.HasPrefix(t, "mcp-") && strings.HasSuffix(t, "-oauth-inbound") && t != "mcp-oauth-inbound" {
				wrappers = true
				continue
			}
			out = append(out, t)
		}
	}
	if wrappers {
		for i, t := range out {
			if t == "mcp-oauth-inbound" {
				out[i] = "mcp-oauth-inbound or one of its provider wrappers"
			}
		}
	}
	return out
}

// checkUpstreamURLs keeps one upstream URL per token-exchange policy: its connections, discovery
// and refresh are bound to one resource, so routes forwarding elsewhere need their own policy.
func (l *loader) checkUpstreamURLs() {
	type use struct {
		route int
		url   string
	}
	first := map[string]use{}
	for i, r := range l.proj.Routes {
		if r.Info == nil || r.Info.UpstreamURL == nil {
			continue
		}
		for _, name := range r.Inbound {
			m, ok := l.policyMods[name]
			if !ok || !m.TokenExchange {
				continue
			}
			u := r.Info.UpstreamURL.String()
			f, seen := first[name]
			if !seen {
				first[name] = use{i, u}
				continue
			}
			if f.url != u {
				l.add(r.File, l.routeAt[i].path, l.routeAt[i].subject, "policy "+quote(name)+" is also used by "+l.routeAt[f.route].subject+", which forwards to "+f.url+" while this route forwards to "+u+"; one "+m.PolicyType+" policy serves one upstream URL — give this route its own policy (and upstream id)")
			}
		}
	}
}

// sharedGrant is implemented by the token-exchange policy: in shared-oauth mode every caller of
// its routes acts upstream with one grant an administrator connected, unless the operator opted
// in to serving it to anonymous callers (allowAnonymousCallers).
type sharedGrant interface {
	SharesGrant() bool
	AnonymousCallersAllowed() bool
}

// checkAnonymousSharedGrant reports a shared-oauth token exchange that anonymous callers reach
// (no gateway auth policy before it, or only ones with allowUnauthenticatedRequests: true): an
// error, or a warning when the policy opted in with allowAnonymousCallers: true.
func (l *loader) checkAnonymousSharedGrant(file string, path jpath, subject, name string, sg sharedGrant, authSeen bool, lenient []string) {
	if sg.AnonymousCallersAllowed() {
		l.warnings = append(l.warnings, Problem{File: file, Path: string(path), Subject: subject,
			Message: "policy " + quote(name) + " (shared-oauth) serves the gateway's one shared upstream grant to anonymous callers (allowAnonymousCallers: true): anyone who can reach this route acts upstream as the account an administrator connected"})
		return
	}
	why := "no gateway auth policy runs before it"
	if authSeen {
		why = "every gateway auth policy before it (" + strings.Join(quoteAll(lenient), ", ") + ") sets allowUnauthenticatedRequests: true"
	}
	l.add(file, path, subject, "policy "+quote(name)+" (shared-oauth) would serve the gateway's one shared upstream grant to anonymous callers: "+why+
		"; put a gateway auth policy ("+strings.Join(authPolicyTypes(), ", ")+") that requires a credential before it in policies.inbound,"+
		" or set allowAnonymousCallers: true in the policy's options if the upstream is meant to be public")
}

// allowsUnauthenticated reports whether a gateway auth policy's decoded options let requests
// without a credential continue (allowUnauthenticatedRequests: true), read from the option's
// JSON name so every auth policy that has the option is covered.
func allowsUnauthenticated(v any) bool {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return false
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return false
	}
	f, ok := fieldByJSONName(rv, "allowUnauthenticatedRequests")
	return ok && f.Kind() == reflect.Bool && f.Bool()
}

// fieldByJSONName finds the field of struct value rv whose JSON name is name, embedded structs
// included.
func fieldByJSONName(rv reflect.Value, name string) (reflect.Value, bool) {
	t := rv.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if sf.Anonymous && tag == "" && sf.Type.Kind() == reflect.Struct {
			if f, ok := fieldByJSONName(rv.Field(i), name); ok {
				return f, true
			}
			continue
		}
		if sf.IsExported() && (tag == name || (tag == "" && sf.Name == name)) {
			return rv.Field(i), true
		}
	}
	return reflect.Value{}, false
}
