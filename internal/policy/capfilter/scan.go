package capfilter

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
)

// A small JSON scanner for the answer path: it finds the members of an object and the elements
// of an array as byte spans, so a list answer is filtered by splicing spans (the upstream's bytes,
// member order and number spelling are kept) without decoding the items. On valid JSON it finds
// exactly what a JSON parser finds; on invalid JSON it may fail or find something, and the answer
// was unparsable for the client anyway.

var errScan = errors.New("capfilter: malformed JSON")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, errScan
		}
		j += k
		// The quote ends the string unless an odd number of backslashes precedes it.
		n := 0
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		j++
		if n%2 == 0 {
			return j, nil
		}
	}
}

// skipValue returns the index after the value that starts at or after b[i].
func skipValue(b []byte, i int) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return 0, errScan
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
	default: // a number or a literal
		j := i
		for j < len(b) && !isSpace(b[j]) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ':' {
			j++
		}
		if j == i {
			return 0, errScan
		}
		return j, nil
	}
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			var err error
			if i, err = skipString(b, i); err != nil {
				return 0, err
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		}
		i++
	}
	return 0, errScan
}

// member is one member of an object: its key (raw, without quotes; esc when it has escapes) and
// its value b[vs:ve].
type member struct {
	key    []byte
	esc    bool
	vs, ve int
}

// is reports whether the member's key is name.
func (m *member) is(name string) bool {
	if !m.esc {
		return string(m.key) == name
	}
	var s string
	q := make([]byte, 0, len(m.key)+2)
	q = append(append(append(q, '"'), m.key...), '"')
	return json.Unmarshal(q, &s) == nil && s == name
}

// folds reports whether the member's key matches name case-insensitively, with Unicode simple
// folding, as encoding/json (and so the Go SDK client) matches member names.
func (m *member) folds(name string) bool {
	if !m.esc {
		return bytes.EqualFold(m.key, []byte(name))
	}
	var s string
	q := make([]byte, 0, len(m.key)+2)
	q = append(append(append(q, '"'), m.key...), '"')
	return json.Unmarshal(q, &s) == nil && strings.EqualFold(s, name)
}

// members appends the members of the object b (exactly one object, surrounding space allowed)
// to dst.
func members(b []byte, dst []member) ([]member, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return dst, errScan
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return dst, trailing(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return dst, errScan
		}
		end, err := skipString(b, i)
		if err != nil {
			return dst, err
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return dst, errScan
		}
		vs := skipSpace(b, i+1)
		ve, err := skipValue(b, vs)
		if err != nil {
			return dst, err
		}
		dst = append(dst, member{key: key, esc: !plainString(key), vs: vs, ve: ve})
		i = skipSpace(b, ve)
		if i >= len(b) {
			return dst, errScan
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return dst, trailing(b, i+1)
		default:
			return dst, errScan
		}
	}
}

// elements appends the spans of the elements of the array b to dst (pairs of start, end).
func elements(b []byte, dst [][2]int) ([][2]int, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return dst, errScan
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return dst, trailing(b, i+1)
	}
	for {
		end, err := skipValue(b, i)
		if err != nil {
			return dst, err
		}
		dst = append(dst, [2]int{i, end})
		i = skipSpace(b, end)
		if i >= len(b) {
			return dst, errScan
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return dst, trailing(b, i+1)
		default:
			return dst, errScan
		}
	}
}

// plainString reports whether a string's raw bytes are its value: no escapes, valid UTF-8 (a
// decoder replaces invalid bytes).
func plainString(inner []byte) bool {
	return bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner)
}

func trailing(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return errScan
	}
	return nil
}

// stringValue decodes a JSON string value; ok is false for anything else.
func stringValue(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	if inner := v[1 : len(v)-1]; plainString(inner) {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}
