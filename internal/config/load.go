package config

import (
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// Files of a project, relative to its directory, as messages name them.
const (
	FileZuplo    = "zuplo.jsonc"
	FilePolicies = "config/policies.json"
	RoutesGlob   = "config/*.oas.json"
)

// Load reads and validates the project in dir. lookupEnv resolves $env(NAME) and ${env.NAME}
// (nil means os.LookupEnv). The error, when not nil, is an Errors holding every problem found.
func Load(dir string, lookupEnv func(string) (string, bool)) (*Project, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	l := &loader{
		dir:       dir,
		lookupEnv: lookupEnv,
		proj: &Project{
			Dir:          dir,
			Version:      1,
			Policies:     map[string]*Policy{},
			CORSPolicies: map[string]*CORSPolicy{},
		},
		policyMods:    map[string]policy.Module{},
		policyOptions: map[string]*node{},
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		msg := "not a directory"
		if err != nil {
			msg = errText(err)
		}
		return nil, Errors{{File: dir, Message: "reading project: " + msg}}
	}
	l.loadZuplo()
	l.loadPolicies()
	l.loadRoutes()
	l.checkProject()
	if len(l.problems) > 0 {
		return nil, l.redacted(l.problems)
	}
	l.proj.Warnings = l.redacted(l.warnings)
	return l.proj, nil
}

// loader is the state of one Load.
type loader struct {
	dir       string
	lookupEnv func(string) (string, bool)
	proj      *Project
	problems  Errors
	// warnings are what the configuration allows but an operator should hear about at start
	// (Project.Warnings).
	warnings []Problem

	// resolved maps strings produced by $env substitution back to the config text, and
	// secrets holds secret option values: neither may appear in a message.
	resolved []resolvedEnv
	secrets  []string

	zuploFound, policiesFound bool
	// zuploBroken and policiesBroken are set when the file did not parse; rules that would
	// only repeat that problem are skipped.
	zuploBroken, policiesBroken bool
	allowDuplicateRoutes        bool
	// policyMods holds the resolved module of each policy whose module resolved, by name;
	// policyOptions its options after substitution.
	policyMods    map[string]policy.Module
	policyOptions map[string]*node
	// routeAt holds where each route of proj.Routes is defined.
	routeAt []routeMeta
}

type resolvedEnv struct {
	value, text string
	// literal is set when every variable in text was unset or empty: value is then only config
	// text, with nothing from the environment to hide.
	literal bool
}

type routeMeta struct {
	path    jpath  // paths["/mcp"]["get,post"]
	subject string // route "get,post /mcp"
}

func (l *loader) add(file string, path jpath, subject, msg string) {
	l.problems = append(l.problems, Problem{File: file, Path: string(path), Subject: subject, Message: msg})
}

// remember records that value came from config text with $env() or ${env.}; literal says no
// variable contributed a character to it.
func (l *loader) remember(value, text string, literal bool) {
	if value != "" && value != text {
		l.resolved = append(l.resolved, resolvedEnv{value, text, literal})
	}
}

// redacted returns problems with every environment-derived string shown as the config text that
// produced it and every secret as REDACTED.
func (l *loader) redacted(problems []Problem) Errors {
	if len(problems) == 0 {
		return nil
	}
	envs := slices.Clone(l.resolved)
	slices.SortFunc(envs, func(a, b resolvedEnv) int { return len(b.value) - len(a.value) })
	out := make(Errors, len(problems))
	for i, p := range problems {
		for _, e := range envs {
			p.Message = strings.ReplaceAll(p.Message, strconv.Quote(e.value), strconv.Quote(e.text))
		}
		for _, s := range l.secrets {
			if len(s) >= 4 {
				p.Message = strings.ReplaceAll(p.Message, s, "REDACTED")
			}
		}
		// An environment value quoted some other way than %q is still not shown.
		for _, e := range envs {
			// A value that is only config text ("https://" from "https://$env(UNSET)") is not
			// hidden: replacing it would garble the message's own text.
			if len(e.value) >= 8 && !e.literal {
				p.Message = strings.ReplaceAll(p.Message, e.value, e.text)
			}
		}
		out[i] = p
	}
	return out
}

// read returns a project file, or found=false when it does not exist.
func (l *loader) read(rel string) (data []byte, found bool) {
	data, err := os.ReadFile(filepath.Join(l.dir, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		l.add(rel, "", "", "reading file: "+errText(err))
		return nil, false
	}
	return data, true
}

// parse reads rel as JSONC and returns its root object, or nil after reporting why not.
func (l *loader) parse(rel string, data []byte) *node {
	root, err := parseJSON(data, func(p jpath, msg string) { l.add(rel, p, "", msg) })
	if err != nil {
		l.add(rel, "", "", err.Error())
		return nil
	}
	if root.kind != kObject {
		l.add(rel, "", "", "must be a JSON object, got "+root.kind.String())
		return nil
	}
	return root
}

// loadZuplo reads zuplo.jsonc. Keys other than version, compatibilityDate and
// allowDuplicateRoutes (projectType, devPortal, …) are tolerated.
func (l *loader) loadZuplo() {
	data, found := l.read(FileZuplo)
	if !found {
		return
	}
	l.zuploFound = true
	root := l.parse(FileZuplo, data)
	if root == nil {
		l.zuploBroken = true
		return
	}
	l.forbidEnv(FileZuplo, "", "", root)
	switch v := root.get("version"); {
	case v == nil:
		l.add(FileZuplo, "version", "", "required: must be 1")
	case v.kind != kNumber || v.str != "1":
		l.add(FileZuplo, "version", "", "must be 1, got "+describe(v))
	}
	if v := root.get("compatibilityDate"); v != nil {
		if v.kind != kString {
			l.add(FileZuplo, "compatibilityDate", "", "must be a date YYYY-MM-DD, got "+v.kind.String())
		} else if strings.Contains(v.str, envOpen) {
			l.zuploBroken = true // reported by forbidEnv
		} else if _, err := time.Parse(time.DateOnly, v.str); err != nil {
			l.add(FileZuplo, "compatibilityDate", "", "must be a date YYYY-MM-DD, got "+quote(v.str))
		} else {
			l.proj.CompatibilityDate = v.str
		}
	}
	if v := root.get("allowDuplicateRoutes"); v != nil {
		if v.kind != kBool {
			l.add(FileZuplo, "allowDuplicateRoutes", "", "must be a boolean, got "+v.kind.String())
		} else {
			l.allowDuplicateRoutes = v.b
		}
	}
}

// resolveModule checks a {module, export} object at path against the registry. want is
// KindHandler for a route handler, 0 for a policy (inbound or outbound).
func (l *loader) resolveModule(file string, path jpath, subject string, h *node, want policy.Kind) (policy.Module, bool) {
	if h.isNull() {
		l.add(file, path, subject, "required: an object {module, export, options}")
		return policy.Module{}, false
	}
	if h.kind != kObject {
		l.add(file, path, subject, "must be an object {module, export, options}, got "+h.kind.String())
		return policy.Module{}, false
	}
	module, okm := l.str(file, path.key("module"), subject, h.get("module"), "required: $import(@zuplo/runtime) or $import(@zuplo/runtime/mcp-gateway)")
	export, oke := l.str(file, path.key("export"), subject, h.get("export"), "required: the export name of one of the built-in "+wanted(want))
	if !okm || !oke || strings.Contains(module, envOpen) || strings.Contains(export, envOpen) {
		return policy.Module{}, false
	}
	if !policy.IsBuiltinModule(module) {
		if strings.HasPrefix(module, "$import(") {
			l.add(file, path.key("module"), subject, "custom code modules are not supported: "+quote(module)+"; mcpgate runs only the built-ins of $import(@zuplo/runtime) and $import(@zuplo/runtime/mcp-gateway)")
		} else {
			l.add(file, path.key("module"), subject, "must be $import(@zuplo/runtime) or $import(@zuplo/runtime/mcp-gateway), got "+quote(module))
		}
		return policy.Module{}, false
	}
	m, found := policy.FindModule(export)
	switch {
	case !found:
		l.add(file, path.key("export"), subject, "unknown export "+quote(export)+"; built-in "+wanted(want)+": "+strings.Join(exportsOf(want), ", "))
		return policy.Module{}, false
	case want == policy.KindHandler && m.Kind != policy.KindHandler:
		l.add(file, path.key("export"), subject, quote(export)+" is an "+m.Kind.String()+", not a handler; name it in policies."+listName(m.Kind)+" and pick a handler: "+strings.Join(exportsOf(want), ", "))
		return policy.Module{}, false
	case want != policy.KindHandler && m.Kind == policy.KindHandler:
		l.add(file, path.key("export"), subject, quote(export)+" is a handler, not a policy; built-in policies: "+strings.Join(exportsOf(want), ", "))
		return policy.Module{}, false
	}
	return m, true
}

func wanted(k policy.Kind) string {
	if k == policy.KindHandler {
		return "handlers"
	}
	return "policies"
}

func exportsOf(k policy.Kind) []string {
	if k == policy.KindHandler {
		return policy.Exports(policy.KindHandler)
	}
	out := append(policy.Exports(policy.KindInbound), policy.Exports(policy.KindOutbound)...)
	slices.Sort(out)
	return out
}

func listName(k policy.Kind) string {
	if k == policy.KindOutbound {
		return "outbound"
	}
	return "inbound"
}

// str returns n as a non-empty string, reporting missing (with the given message) or wrong type.
func (l *loader) str(file string, path jpath, subject string, n *node, missing string) (string, bool) {
	switch {
	case n.isNull():
		l.add(file, path, subject, missing)
	case n.kind != kString:
		l.add(file, path, subject, "must be a string, got "+n.kind.String())
	case strings.TrimSpace(n.str) == "":
		l.add(file, path, subject, "must not be empty")
	default:
		return n.str, true
	}
	return "", false
}

// describe shows a config value in a message: literals as written, strings quoted, containers
// by kind.
func describe(n *node) string {
	switch n.kind {
	case kString:
		return quote(n.str)
	case kNumber:
		return n.str
	case kBool:
		return strconv.FormatBool(n.b)
	}
	return n.kind.String()
}

func quote(s string) string { return strconv.Quote(s) }

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// errText is an error's text without the directory the project lives in.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}
