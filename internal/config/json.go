package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/tailscale/hujson"
)

// node is a parsed JSON value that keeps object members in document order, which route matching
// and messages depend on.
type node struct {
	kind kind
	str  string // string value, or the literal of a number
	b    bool
	keys []string // object member names
	vals []*node  // object member values or array elements
}

type kind byte

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kArray
	kObject
)

func (k kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

// get returns the member named key of an object, or nil.
func (n *node) get(key string) *node {
	if n == nil || n.kind != kObject {
		return nil
	}
	for i, k := range n.keys {
		if k == key {
			return n.vals[i]
		}
	}
	return nil
}

// isNull reports whether n is absent or JSON null; both mean "not set".
func (n *node) isNull() bool { return n == nil || n.kind == kNull }

// MarshalJSON writes n back as standard JSON.
func (n *node) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	n.write(&b)
	return b.Bytes(), nil
}

func (n *node) write(b *bytes.Buffer) {
	switch n.kind {
	case kNull:
		b.WriteString("null")
	case kBool:
		b.WriteString(strconv.FormatBool(n.b))
	case kNumber:
		b.WriteString(n.str)
	case kString:
		s, _ := json.Marshal(n.str)
		b.Write(s)
	case kArray:
		b.WriteByte('[')
		for i, v := range n.vals {
			if i > 0 {
				b.WriteByte(',')
			}
			v.write(b)
		}
		b.WriteByte(']')
	case kObject:
		b.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			s, _ := json.Marshal(k)
			b.Write(s)
			b.WriteByte(':')
			n.vals[i].write(b)
		}
		b.WriteByte('}')
	}
}

// parseJSON parses JSON with comments and trailing commas (JSONC). A syntax error is reported
// with its line and column; duplicate object keys are reported by path.
func parseJSON(data []byte, report func(path jpath, msg string)) (*node, error) {
	v, err := hujson.Parse(data)
	if err != nil {
		return nil, syntaxError(err)
	}
	return convert(v.Value, "", report), nil
}

// invalidLiteral matches the part of a hujson message that would echo config text.
var invalidLiteral = regexp.MustCompile(`invalid literal: .*`)

// syntaxError rewrites a hujson error into "invalid JSON at line L, column C: …" without echoing
// the offending text, which may be a secret someone forgot to quote.
func syntaxError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "hujson: ")
	msg = invalidLiteral.ReplaceAllString(msg, "invalid literal (strings must be quoted)")
	if line, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(line, "line ") {
		return fmt.Errorf("invalid JSON at %s: %s", line, rest)
	}
	return fmt.Errorf("invalid JSON: %s", msg)
}

func convert(v hujson.ValueTrimmed, path jpath, report func(jpath, string)) *node {
	switch v := v.(type) {
	case *hujson.Object:
		n := &node{kind: kObject}
		seen := map[string]bool{}
		for _, m := range v.Members {
			k := m.Name.Value.(hujson.Literal).String()
			if seen[k] {
				report(path.key(k), "duplicate key: each key may appear once in an object")
				continue
			}
			seen[k] = true
			n.keys = append(n.keys, k)
			n.vals = append(n.vals, convert(m.Value.Value, path.key(k), report))
		}
		return n
	case *hujson.Array:
		n := &node{kind: kArray}
		for i, e := range v.Elements {
			n.vals = append(n.vals, convert(e.Value, path.index(i), report))
		}
		return n
	case hujson.Literal:
		switch v.Kind() {
		case 'n':
			return &node{kind: kNull}
		case 't', 'f':
			return &node{kind: kBool, b: v.Bool()}
		case '0':
			return &node{kind: kNumber, str: string(v)}
		default:
			return &node{kind: kString, str: v.String()}
		}
	}
	return &node{kind: kNull}
}

// jpath is a JSON path in JavaScript notation: policies[3].handler.options.authMode,
// paths["/mcp/linear"]["get,post"].
type jpath string

var identifier = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

func (p jpath) key(k string) jpath {
	if identifier.MatchString(k) {
		if p == "" {
			return jpath(k)
		}
		return p + "." + jpath(k)
	}
	return p + "[" + jpath(strconv.Quote(k)) + "]"
}

func (p jpath) index(i int) jpath { return p + jpath("["+strconv.Itoa(i)+"]") }
