package upstream

import (
	"net/http"
	"sort"
	"strings"
)

// Challenge is one RFC 9110 §11.6.1 challenge: an auth-scheme followed by either a token68 or a
// list of auth-params.
type Challenge struct {
	// Scheme is lower-cased (schemes are case-insensitive).
	Scheme string
	// Token68 is set for challenges of the token68 form ("Negotiate abc==").
	Token68 string
	// Params holds the auth-params with lower-cased names; the first of duplicate names wins.
	Params map[string]string
}

// Param returns the value of the named parameter ("" when absent).
func (c Challenge) Param(name string) string { return c.Params[strings.ToLower(name)] }

// String renders the challenge back in canonical form (parameters sorted, values quoted).
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	if c.Token68 != "" {
		b.WriteString(" ")
		b.WriteString(c.Token68)
		return b.String()
	}
	keys := make([]string, 0, len(c.Params))
	for k := range c.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i == 0 {
			b.WriteString(" ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(`="`)
		v := c.Params[k]
		for i := 0; i < len(v); i++ {
			if v[i] == '"' || v[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v[i])
		}
		b.WriteString(`"`)
	}
	return b.String()
}

// ParseChallenges parses WWW-Authenticate field values (one per header line) into challenges, in
// order. It follows RFC 9110: several challenges per line separated by commas, quoted-string or
// token parameter values with backslash escapes, optional whitespace around "=", case-insensitive
// scheme and parameter names. It is lenient, like browsers: a malformed piece is skipped up to the
// next comma and parsing goes on, so one bad challenge cannot hide a good one.
func ParseChallenges(values []string) []Challenge {
	var out []Challenge
	for _, v := range values {
		p := &chParser{s: v}
		out = p.parse(out)
	}
	return out
}

// BearerChallenge is what the gateway needs from an upstream's Bearer challenge.
type BearerChallenge struct {
	ResourceMetadata string // RFC 9728 resource_metadata
	Scope            string // RFC 6750 scope (space-delimited)
	Error            string // RFC 6750 error (invalid_token, insufficient_scope)
	ErrorDescription string
}

// Scopes splits Scope on whitespace.
func (b BearerChallenge) Scopes() []string { return strings.Fields(b.Scope) }

// ParseBearerChallenge returns the first Bearer challenge of the response headers h, over all
// WWW-Authenticate lines, and whether there was one.
func ParseBearerChallenge(h http.Header) (BearerChallenge, bool) {
	for _, c := range ParseChallenges(h.Values("WWW-Authenticate")) {
		if c.Scheme == "bearer" {
			return BearerChallenge{
				ResourceMetadata: c.Param("resource_metadata"),
				Scope:            c.Param("scope"),
				Error:            c.Param("error"),
				ErrorDescription: c.Param("error_description"),
			}, true
		}
	}
	return BearerChallenge{}, false
}

type chParser struct {
	s string
	i int
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken68Char(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~+/", c) >= 0
}

func (p *chParser) eof() bool { return p.i >= len(p.s) }

func (p *chParser) skipWS() {
	for !p.eof() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *chParser) token() string {
	start := p.i
	for !p.eof() && isTchar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// skipItem skips to the next top-level comma (respecting quoted strings), leaving p at it.
func (p *chParser) skipItem() {
	for !p.eof() && p.s[p.i] != ',' {
		if p.s[p.i] == '"' {
			p.quoted()
			continue
		}
		p.i++
	}
}

// quoted reads a quoted-string starting at the opening quote; ok is false when unterminated.
func (p *chParser) quoted() (string, bool) {
	p.i++ // opening quote
	// Fast path: no escapes before the closing quote.
	if j := strings.IndexAny(p.s[p.i:], "\"\\"); j >= 0 && p.s[p.i+j] == '"' {
		v := p.s[p.i : p.i+j]
		p.i += j + 1
		return v, true
	}
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.i]
		switch {
		case c == '\\' && p.i+1 < len(p.s):
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case c == '"':
			p.i++
			return b.String(), true
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return b.String(), false
}

// atListEnd reports whether only whitespace remains before a comma or the end.
func (p *chParser) atListEnd() bool {
	j := p.i
	for j < len(p.s) && (p.s[j] == ' ' || p.s[j] == '\t') {
		j++
	}
	return j >= len(p.s) || p.s[j] == ','
}

// tryParam parses `token BWS "=" BWS (token / quoted-string)` followed by the end of the list
// item. On failure it restores the position and returns ok=false.
func (p *chParser) tryParam() (name, value string, ok bool) {
	start := p.i
	name = p.token()
	if name == "" {
		return "", "", false
	}
	p.skipWS()
	if p.eof() || p.s[p.i] != '=' {
		p.i = start
		return "", "", false
	}
	p.i++
	p.skipWS()
	switch {
	case p.eof():
		p.i = start
		return "", "", false
	case p.s[p.i] == '"':
		v, closed := p.quoted()
		if !closed {
			p.i = start
			return "", "", false
		}
		value = v
	default:
		value = p.token()
		if value == "" {
			p.i = start
			return "", "", false
		}
	}
	if !p.atListEnd() {
		p.i = start
		return "", "", false
	}
	return strings.ToLower(name), value, true
}

// tryToken68 parses a token68 that makes up the whole list item.
func (p *chParser) tryToken68() (string, bool) {
	start := p.i
	for !p.eof() && isToken68Char(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		return "", false
	}
	for !p.eof() && p.s[p.i] == '=' {
		p.i++
	}
	if !p.atListEnd() {
		p.i = start
		return "", false
	}
	return p.s[start:p.i], true
}

func (p *chParser) parse(out []Challenge) []Challenge {
	for {
		// Between challenges: empty list elements and whitespace.
		for !p.eof() && (p.s[p.i] == ',' || p.s[p.i] == ' ' || p.s[p.i] == '\t') {
			p.i++
		}
		if p.eof() {
			return out
		}
		scheme := p.token()
		if scheme == "" {
			p.i++ // not a token character: skip the garbage item
			p.skipItem()
			continue
		}
		c := Challenge{Scheme: strings.ToLower(scheme)}
		if !p.eof() && p.s[p.i] != ' ' && p.s[p.i] != '\t' && p.s[p.i] != ',' {
			// The scheme runs into something that is not a separator ("Bearer=x", "Bea\"rer").
			p.skipItem()
			continue
		}
		p.skipWS()
		// First item after the scheme: token68 or an auth-param.
		if !p.eof() && p.s[p.i] != ',' {
			if name, value, ok := p.tryParam(); ok {
				c.Params = map[string]string{name: value}
			} else if t, ok := p.tryToken68(); ok {
				c.Token68 = t
			} else {
				p.skipItem() // malformed first parameter: drop it, keep the challenge
			}
		}
		// Further auth-params, each after a comma. A list item that is not "name=" starts the
		// next challenge.
		if c.Token68 == "" {
			for {
				p.skipWS()
				if p.eof() || p.s[p.i] != ',' {
					break
				}
				save := p.i
				for !p.eof() && (p.s[p.i] == ',' || p.s[p.i] == ' ' || p.s[p.i] == '\t') {
					p.i++
				}
				if p.eof() {
					break
				}
				if !p.looksLikeParam() {
					p.i = save
					break
				}
				if name, value, ok := p.tryParam(); ok {
					if c.Params == nil {
						c.Params = map[string]string{}
					}
					if _, dup := c.Params[name]; !dup {
						c.Params[name] = value
					}
				} else {
					p.skipItem()
				}
			}
		}
		out = append(out, c)
	}
}

// looksLikeParam reports whether the text at p is `token BWS "="` (an auth-param rather than the
// next challenge's scheme).
func (p *chParser) looksLikeParam() bool {
	j := p.i
	for j < len(p.s) && isTchar(p.s[j]) {
		j++
	}
	if j == p.i {
		return false
	}
	for j < len(p.s) && (p.s[j] == ' ' || p.s[j] == '\t') {
		j++
	}
	return j < len(p.s) && p.s[j] == '='
}
