package config

import (
	"regexp"
	"strings"
)

// Environment variable syntax: $env(NAME) inside options and CORS policies, resolved at load;
// ${env.NAME} as the whole rewritePattern.
const (
	envOpen       = "$env("
	msgEnvNotHere = "an $env() statement is not expected at this location; $env(NAME) is only allowed inside handler and policy options and corsPolicies"
)

var (
	envName          = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	reservedPrefixes = []string{"ZUPLO_", "__ZUPLO", "ZUDOKU_"}
	// gatewayPrefix names the gateway's own settings and secrets (MCPGATE_ENCRYPTION_KEYS,
	// MCPGATE_DATABASE_URL, …). Configuration must not read them: a header value or an option
	// would carry them to an upstream or into a page.
	gatewayPrefix = "MCPGATE_"
	// templateEnv is the only template a rewritePattern may be.
	templateEnv = regexp.MustCompile(`^\$\{env\.([^}]*)\}$`)
)

// checkEnvName returns what is wrong with a variable name, or "".
func checkEnvName(name string) string {
	if !envName.MatchString(name) {
		return "invalid environment variable name " + quote(name) + ": names contain only letters, digits and _"
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return "environment variable name " + quote(name) + " is reserved: names starting with ZUPLO_, __ZUPLO or ZUDOKU_ belong to the platform"
		}
	}
	// Case-insensitively: on Windows the environment is, so mcpgate_encryption_keys is the key ring.
	if strings.HasPrefix(strings.ToUpper(name), gatewayPrefix) {
		return "environment variable name " + quote(name) + " is reserved: names starting with MCPGATE_ hold the gateway's own settings and secrets (encryption keys, database URL), which configuration must not read"
	}
	return ""
}

// forbidEnv reports every string under n that contains $env(; used for every part of the
// config where substitution does not happen.
func (l *loader) forbidEnv(file string, path jpath, subject string, n *node) {
	if n == nil {
		return
	}
	switch n.kind {
	case kString:
		if strings.Contains(n.str, envOpen) {
			l.add(file, path, subject, msgEnvNotHere)
		}
	case kArray:
		for i, v := range n.vals {
			l.forbidEnv(file, path.index(i), subject, v)
		}
	case kObject:
		for i, k := range n.keys {
			l.forbidEnv(file, path.key(k), subject, n.vals[i])
		}
	}
}

// substEnv returns a copy of n with $env(NAME) resolved in every string at any depth. A string
// that is exactly $env(NAME) becomes the raw value, or undefined (nil) when NAME is unset: an
// object member or array element drops out (so optional list entries need no placeholder).
// Inside other text an unset variable is "". Every resolved string is remembered so messages can show the config text instead.
func (l *loader) substEnv(file string, path jpath, subject string, n *node) *node {
	if n == nil {
		return nil
	}
	switch n.kind {
	case kString:
		return l.substString(file, path, subject, n)
	case kArray:
		out := &node{kind: kArray}
		for i, v := range n.vals {
			if v := l.substEnv(file, path.index(i), subject, v); v != nil {
				out.vals = append(out.vals, v)
			}
		}
		return out
	case kObject:
		out := &node{kind: kObject}
		for i, k := range n.keys {
			if v := l.substEnv(file, path.key(k), subject, n.vals[i]); v != nil {
				out.keys = append(out.keys, k)
				out.vals = append(out.vals, v)
			}
		}
		return out
	}
	return n
}

func (l *loader) substString(file string, path jpath, subject string, n *node) *node {
	s := n.str
	if !strings.Contains(s, envOpen) {
		return n
	}
	var b strings.Builder
	whole := strings.HasPrefix(s, envOpen) && strings.Index(s, ")") == len(s)-1
	literal := true // no variable has contributed a character yet
	rest := s
	for {
		i := strings.Index(rest, envOpen)
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		rest = rest[i+len(envOpen):]
		j := strings.IndexByte(rest, ')')
		if j < 0 {
			l.add(file, path, subject, "unterminated $env( statement: write $env(NAME)")
			return n
		}
		name := rest[:j]
		rest = rest[j+1:]
		if msg := checkEnvName(name); msg != "" {
			l.add(file, path, subject, msg)
			return n
		}
		v, ok := l.lookupEnv(name)
		if whole {
			if !ok {
				return nil
			}
			l.remember(v, s, false)
			return &node{kind: kString, str: v}
		}
		b.WriteString(v)
		literal = literal && v == ""
	}
	l.remember(b.String(), s, literal)
	return &node{kind: kString, str: b.String()}
}

// resolveRewritePattern applies the ${env.NAME} rule to a handler's rewritePattern. It returns
// the resolved value, or ok=false after reporting a problem.
func (l *loader) resolveRewritePattern(file string, path jpath, subject string, s string) (string, bool) {
	if strings.Contains(s, envOpen) {
		l.add(file, path, subject, "an $env() statement is not expected at this location; a rewritePattern reads a variable as exactly ${env.NAME}")
		return "", false
	}
	if m := templateEnv.FindStringSubmatch(s); m != nil {
		name := m[1]
		if msg := checkEnvName(name); msg != "" {
			l.add(file, path, subject, msg)
			return "", false
		}
		v, ok := l.lookupEnv(name)
		if !ok || v == "" {
			l.add(file, path, subject, "environment variable "+name+" is not set; the route's upstream URL comes from ${env."+name+"}")
			return "", false
		}
		l.remember(v, s, false)
		if !isHTTPURL(v) {
			l.add(file, path, subject, "${env."+name+"} must hold an absolute http(s) URL such as https://mcp.example.com/mcp; its value is not one")
			return "", false
		}
		return v, true
	}
	if strings.Contains(s, "${") {
		l.add(file, path, subject, "must be a literal http(s) URL or exactly ${env.NAME}; request-dependent patterns (${params…}, ${headers…}, ${query…}) are not supported, got "+quote(s))
		return "", false
	}
	if !isHTTPURL(s) {
		l.add(file, path, subject, "must be an absolute http(s) URL such as https://mcp.example.com/mcp, or exactly ${env.NAME}, got "+quote(s))
		return "", false
	}
	return s, true
}
