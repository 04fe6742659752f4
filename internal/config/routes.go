package config

import (
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// methods are the operation keys a path item may have, alone or comma-separated ("get,post").
var methods = []string{"get", "post", "put", "patch", "delete", "head", "options"}

// unsupportedMethods are operation keys OpenAPI knows but the gateway does not route; they are
// reported rather than silently ignored.
var unsupportedMethods = []string{"trace", "connect"}

// loadRoutes reads config/*.oas.json in alphabetical order.
func (l *loader) loadRoutes() {
	// ReadDir rather than Glob: a project directory may contain glob metacharacters.
	entries, _ := os.ReadDir(filepath.Join(l.dir, "config"))
	var files []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".oas.json") {
			files = append(files, e.Name())
		}
	}
	slices.Sort(files)
	if len(files) == 0 {
		l.add(RoutesGlob, "", "", "no route files found: add config/routes.oas.json with at least one x-zuplo-route operation")
		return
	}
	for _, f := range files {
		rel := "config/" + f
		data, found := l.read(rel)
		if !found {
			continue
		}
		if root := l.parse(rel, data); root != nil {
			l.loadRouteFile(rel, root)
		}
	}
}

func (l *loader) loadRouteFile(file string, root *node) {
	for i, k := range root.keys {
		if k != "paths" {
			l.forbidEnv(file, jpath(k), "", root.vals[i])
		}
	}
	paths := root.get("paths")
	if paths.isNull() {
		return
	}
	if paths.kind != kObject {
		l.add(file, "paths", "", "must be an object, got "+paths.kind.String())
		return
	}
	before := len(l.proj.Routes)
	for i, p := range paths.keys {
		l.loadPathItem(file, jpath("paths").key(p), p, paths.vals[i])
	}
	// info.version is kept as written: only the MCP registry reads it, and it decides what to make
	// of a range or a non-semantic version.
	if v := root.get("info").get("version"); v != nil && v.kind == kString {
		for _, r := range l.proj.Routes[before:] {
			r.Version = v.str
		}
	}
}

func (l *loader) loadPathItem(file string, path jpath, p string, item *node) {
	switch {
	case strings.Contains(p, envOpen):
		l.add(file, path, "", msgEnvNotHere)
		return
	case !strings.HasPrefix(p, "/"):
		l.add(file, path, "", "a path must start with /, got "+quote(p))
		return
	case item.kind != kObject:
		l.add(file, path, "", "must be an object (an OpenAPI path item), got "+item.kind.String())
		return
	}
	mode := PathModeOpenAPI
	if xp := item.get("x-zuplo-path"); !xp.isNull() {
		if m := xp.get("pathMode"); !m.isNull() {
			if m.kind != kString || (m.str != PathModeOpenAPI && m.str != PathModeURLPattern) {
				l.add(file, path.key("x-zuplo-path").key("pathMode"), "", "must be "+PathModeOpenAPI+" or "+PathModeURLPattern+", got "+describe(m))
			} else {
				mode = m.str
			}
		}
	}
	if mode == PathModeOpenAPI && strings.Count(p, "{") != strings.Count(p, "}") {
		l.add(file, path, "", "unbalanced { } in an open-api path; parameters look like {id} (or set x-zuplo-path.pathMode to url-pattern)")
	}
	for i, k := range item.keys {
		ms, isOp := operationMethods(k)
		if !isOp {
			// summary, description, parameters, servers, x-zuplo-path, x-*: tolerated.
			l.forbidEnv(file, path.key(k), "", item.vals[i])
			continue
		}
		l.loadOperation(file, path.key(k), p, mode, k, ms, item.vals[i])
	}
}

// operationMethods reports whether a path-item key names operations, and which.
func operationMethods(k string) ([]string, bool) {
	lk := strings.ToLower(k)
	if !strings.Contains(lk, ",") && !slices.Contains(methods, lk) && !slices.Contains(unsupportedMethods, lk) {
		return nil, false
	}
	var out []string
	for m := range strings.SplitSeq(lk, ",") {
		out = append(out, strings.TrimSpace(m))
	}
	return out, true
}

func (l *loader) loadOperation(file string, path jpath, p, mode, key string, ms []string, op *node) {
	subject := "route " + quote(key+" "+p)
	var upper []string
	for _, m := range ms {
		switch {
		case !slices.Contains(methods, m):
			l.add(file, path, subject, "unsupported method "+quote(m)+"; allowed: "+strings.Join(methods, ", ")+" (alone or comma-separated, e.g. \"get,post\")")
			return
		case slices.Contains(upper, strings.ToUpper(m)):
			l.add(file, path, subject, "method "+m+" is listed twice")
			return
		}
		upper = append(upper, strings.ToUpper(m))
	}
	if op.kind != kObject {
		l.add(file, path, subject, "must be an object (an OpenAPI operation), got "+op.kind.String())
		return
	}
	for i, k := range op.keys {
		if k != "x-zuplo-route" {
			l.forbidEnv(file, path.key(k), subject, op.vals[i])
		}
	}
	zr := op.get("x-zuplo-route")
	if zr.isNull() {
		l.add(file, path, subject, "operation has no x-zuplo-route; every operation needs x-zuplo-route.handler")
		return
	}
	zrPath := path.key("x-zuplo-route")
	if zr.kind != kObject {
		l.add(file, zrPath, subject, "must be an object {handler, policies, corsPolicy}, got "+zr.kind.String())
		return
	}
	h := zr.get("handler")
	for i, k := range zr.keys {
		if k != "handler" {
			l.forbidEnv(file, zrPath.key(k), subject, zr.vals[i])
		}
	}
	if h != nil && h.kind == kObject {
		for i, k := range h.keys {
			if k != "options" {
				l.forbidEnv(file, zrPath.key("handler").key(k), subject, h.vals[i])
			}
		}
	}

	r := &Route{
		File:       file,
		JSONPath:   string(path),
		Path:       p,
		PathMode:   mode,
		Methods:    upper,
		CORSPolicy: CORSNone,
	}
	if v := op.get("operationId"); !v.isNull() {
		r.OperationID, _ = l.str(file, path.key("operationId"), subject, v, "")
	}
	if v := op.get("summary"); v != nil && v.kind == kString {
		r.Summary = v.str
	}
	r.Info = &policy.RouteInfo{Path: p, Methods: upper, OperationID: r.OperationID, Summary: r.Summary, File: file}
	l.proj.Routes = append(l.proj.Routes, r)
	l.routeAt = append(l.routeAt, routeMeta{path, subject})

	hPath := zrPath.key("handler")
	mod, ok := l.resolveModule(file, hPath, subject, h, policy.KindHandler)
	if ok {
		r.Handler.Module = h.get("module").str
		r.Handler.Export = h.get("export").str
		l.loadHandlerOptions(file, hPath, subject, r, mod, h.get("options"))
	}
	mcp := ok && policy.IsMCPHandler(r.Handler.Export)
	if mcp && r.OperationID == "" && op.get("operationId").isNull() {
		l.add(file, path.key("operationId"), subject, "required on an McpProxyHandler route: it names the MCP server in connect-required answers and keys its connections")
	}
	l.loadRoutePolicies(file, zrPath, subject, r, zr.get("policies"), ok, mcp)
	if cp := zr.get("corsPolicy"); !cp.isNull() {
		if name, ok := l.str(file, zrPath.key("corsPolicy"), subject, cp, ""); ok && !strings.Contains(name, envOpen) {
			r.CORSPolicy = name
		}
	}
}

// loadHandlerOptions substitutes $env in a handler's options, applies the rewritePattern rule
// and decodes them.
func (l *loader) loadHandlerOptions(file string, hPath jpath, subject string, r *Route, mod policy.Module, options *node) {
	optPath := hPath.key("options")
	before := len(l.problems)
	if options != nil && options.kind == kObject {
		out := &node{kind: kObject}
		for i, k := range options.keys {
			v := options.vals[i]
			if k == "rewritePattern" && v.kind == kString {
				if u, ok := l.resolveRewritePattern(file, optPath.key(k), subject, v.str); ok {
					v = &node{kind: kString, str: u}
					r.Info.UpstreamURL, _ = url.Parse(u)
				}
			} else {
				v = l.substEnv(file, optPath.key(k), subject, v)
			}
			if v != nil {
				out.keys = append(out.keys, k)
				out.vals = append(out.vals, v)
			}
		}
		options = out
	}
	if takesRewritePattern(mod) && (options.isNull() || options.kind == kObject) && options.get("rewritePattern") == nil {
		l.add(file, optPath.key("rewritePattern"), subject, "required: the upstream URL, a literal https://… URL or exactly ${env.NAME}")
	}
	r.Handler.Options = rawOptions(options)
	r.Handler.Value = l.decodeOptions(file, hPath, subject, r.OperationID, mod, options, before)
}

// takesRewritePattern reports whether a handler's options have a rewritePattern.
func takesRewritePattern(mod policy.Module) bool {
	_, ok := jsonFields(reflect.TypeOf(mod.New()).Elem())["rewritePattern"]
	return ok
}

// loadRoutePolicies checks the route's policies.inbound and policies.outbound names.
func (l *loader) loadRoutePolicies(file string, zrPath jpath, subject string, r *Route, ps *node, handlerOK, mcp bool) {
	if ps.isNull() {
		return
	}
	pPath := zrPath.key("policies")
	if ps.kind != kObject {
		l.add(file, pPath, subject, "must be an object {inbound: [names], outbound: [names]}, got "+ps.kind.String())
		return
	}
	var exchanges []string
	var exchangeType string
	// authSeen: a gateway auth policy runs earlier in policies.inbound; authRequired: one of them
	// refuses callers without a credential (allowUnauthenticatedRequests is not true), so no
	// anonymous request gets past it.
	authSeen, authRequired := false, false
	var lenient []string // auth policies before this point that let anonymous callers through
	for _, list := range []struct {
		key  string
		kind policy.Kind
		dst  *[]string
	}{{"inbound", policy.KindInbound, &r.Inbound}, {"outbound", policy.KindOutbound, &r.Outbound}} {
		n, lPath := ps.get(list.key), pPath.key(list.key)
		if n.isNull() {
			continue
		}
		if n.kind != kArray {
			l.add(file, lPath, subject, "must be an array of policy names, got "+n.kind.String())
			continue
		}
		for i, e := range n.vals {
			if e.kind != kString {
				l.add(file, lPath.index(i), subject, "must be a policy name (a string), got "+e.kind.String())
				continue
			}
			name := e.str
			*list.dst = append(*list.dst, name)
			if _, defined := l.proj.Policies[name]; !defined && !l.policiesBroken {
				msg := "policy " + quote(name) + " is not defined in " + FilePolicies
				if !l.policiesFound {
					msg += " (the file does not exist)"
				}
				l.add(file, lPath.index(i), subject, msg)
				continue
			}
			m, resolved := l.policyMods[name]
			if !resolved {
				continue // its own problem is reported where it is defined
			}
			if m.Kind != list.kind {
				l.add(file, lPath.index(i), subject, "policy "+quote(name)+" is an "+policyKindName(m)+" and cannot run in policies."+list.key)
				continue
			}
			if m.Authenticates && list.key == "inbound" {
				authSeen = true
				if allowsUnauthenticated(l.proj.Policies[name].Handler.Value) {
					lenient = append(lenient, name)
				} else {
					authRequired = true
				}
			}
			if m.TokenExchange {
				exchangeType = m.PolicyType
				exchanges = append(exchanges, name)
				if nu, ok := l.proj.Policies[name].Handler.Value.(userNeeder); ok && nu.NeedsUser() && !authSeen && list.key == "inbound" && mcp {
					l.add(file, lPath.index(i), subject, "policy "+quote(name)+" (user-oauth) needs to know the user: put a gateway auth policy ("+strings.Join(authPolicyTypes(), ", ")+") before it in policies.inbound")
				}
				if sg, ok := l.proj.Policies[name].Handler.Value.(sharedGrant); ok && sg.SharesGrant() && !authRequired && list.key == "inbound" && mcp {
					l.checkAnonymousSharedGrant(file, lPath.index(i), subject, name, sg, authSeen, lenient)
				}
				if handlerOK && !mcp {
					l.add(file, lPath.index(i), subject, "policy "+quote(name)+" ("+m.PolicyType+") only works on a route whose handler is McpProxyHandler, got "+r.Handler.Export)
				}
			}
		}
	}
	if len(exchanges) > 1 {
		l.add(file, pPath.key("inbound"), subject, "at most one "+exchangeType+" policy per route, got "+strings.Join(quoteAll(exchanges), ", "))
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = quote(s)
	}
	return out
}

// routeParam matches a path parameter in either path mode, for duplicate detection.
var routeParam = regexp.MustCompile(`\{[^}/]*\}|:[A-Za-z0-9_]+(\([^)]*\))?`)

// routeKey is a path with its parameter names erased: /a/{id} and /a/:x route the same.
func routeKey(p string) string { return routeParam.ReplaceAllString(p, "{}") }
