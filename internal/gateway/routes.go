package gateway

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mcpgate/mcpgate/internal/config"
)

// matcher matches a request path against one configured route path.
type matcher struct {
	literal string         // set when the path has no parameters
	re      *regexp.Regexp // otherwise
}

func (m matcher) match(path string) bool {
	if m.re == nil {
		return path == m.literal
	}
	return m.re.MatchString(path)
}

// compilePath turns a route path into a matcher. open-api mode: {name} matches one segment.
// url-pattern mode (URLPattern syntax subset): :name matches one segment, (.*) or * any rest,
// (regex) a group.
func compilePath(path, mode string) (matcher, error) {
	if !strings.ContainsAny(path, "{}:*()") {
		return matcher{literal: path}, nil
	}
	var b strings.Builder
	b.WriteString("^")
	switch mode {
	case config.PathModeURLPattern:
		for i := 0; i < len(path); {
			c := path[i]
			switch {
			case c == ':':
				j := i + 1
				for j < len(path) && (isIdent(path[j])) {
					j++
				}
				if j == i+1 {
					return matcher{}, fmt.Errorf("path %q: ':' must be followed by a parameter name", path)
				}
				b.WriteString("[^/]+")
				i = j
				// An inline group after a name constrains it, e.g. :id(\d+).
				if i < len(path) && path[i] == '(' {
					end := strings.IndexByte(path[i:], ')')
					if end < 0 {
						return matcher{}, fmt.Errorf("path %q: unclosed '('", path)
					}
					i += end + 1
				}
			case c == '(':
				end := strings.IndexByte(path[i:], ')')
				if end < 0 {
					return matcher{}, fmt.Errorf("path %q: unclosed '('", path)
				}
				b.WriteString("(?:" + path[i+1:i+end] + ")")
				i += end + 1
			case c == '*':
				b.WriteString(".*")
				i++
			default:
				b.WriteString(regexp.QuoteMeta(string(c)))
				i++
			}
		}
	default:
		for i := 0; i < len(path); {
			c := path[i]
			if c == '{' {
				end := strings.IndexByte(path[i:], '}')
				if end < 0 {
					return matcher{}, fmt.Errorf("path %q: unclosed '{'", path)
				}
				b.WriteString("[^/]+")
				i += end + 1
				continue
			}
			b.WriteString(regexp.QuoteMeta(string(c)))
			i++
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return matcher{}, fmt.Errorf("path %q: %w", path, err)
	}
	return matcher{re: re}, nil
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// standardMethods are the methods a route may name; anything else is answered 501.
var standardMethods = map[string]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true,
	"CONNECT": true, "TRACE": true,
}
