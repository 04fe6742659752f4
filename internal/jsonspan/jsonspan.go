// Package jsonspan is a small JSON scanner: it finds the members of an object and the elements of
// an array as byte spans, without decoding them. The capability filter splices list answers with
// it (the upstream's bytes, member order and number spelling kept), and the proxy's analytics read
// a request's method and capability name with it, without encoding/json's allocations. On valid
// JSON it finds exactly what a JSON parser finds; on invalid JSON it may fail or find something.
package jsonspan

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
)

// ErrMalformed is the error of a scan of malformed JSON.
var ErrMalformed = errors.New("jsonspan: malformed JSON")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func SkipSpace(b []byte, i int) int {
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
			return 0, ErrMalformed
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
	i = SkipSpace(b, i)
	if i >= len(b) {
		return 0, ErrMalformed
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
			return 0, ErrMalformed
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
	return 0, ErrMalformed
}

// Member is one member of an object: its key (raw, without quotes; esc when it has escapes) and
// its value b[vs:ve].
type Member struct {
	Key    []byte
	Esc    bool
	VS, VE int
}

// Is reports whether the member's key is name.
func (m *Member) Is(name string) bool {
	if !m.Esc {
		return string(m.Key) == name
	}
	var s string
	q := make([]byte, 0, len(m.Key)+2)
	q = append(append(append(q, '"'), m.Key...), '"')
	return json.Unmarshal(q, &s) == nil && s == name
}

// Folds reports whether the member's key matches name case-insensitively, with Unicode simple
// folding, as encoding/json (and so the Go SDK client) matches member names.
func (m *Member) Folds(name string) bool {
	if !m.Esc {
		return bytes.EqualFold(m.Key, []byte(name))
	}
	var s string
	q := make([]byte, 0, len(m.Key)+2)
	q = append(append(append(q, '"'), m.Key...), '"')
	return json.Unmarshal(q, &s) == nil && strings.EqualFold(s, name)
}

// Members appends the members of the object b (exactly one object, surrounding space allowed)
// to dst.
func Members(b []byte, dst []Member) ([]Member, error) {
	i := SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return dst, ErrMalformed
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return dst, trailing(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return dst, ErrMalformed
		}
		end, err := skipString(b, i)
		if err != nil {
			return dst, err
		}
		key := b[i+1 : end-1]
		i = SkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return dst, ErrMalformed
		}
		vs := SkipSpace(b, i+1)
		ve, err := skipValue(b, vs)
		if err != nil {
			return dst, err
		}
		dst = append(dst, Member{Key: key, Esc: !PlainString(key), VS: vs, VE: ve})
		i = SkipSpace(b, ve)
		if i >= len(b) {
			return dst, ErrMalformed
		}
		switch b[i] {
		case ',':
			i = SkipSpace(b, i+1)
		case '}':
			return dst, trailing(b, i+1)
		default:
			return dst, ErrMalformed
		}
	}
}

// Elements appends the spans of the elements of the array b to dst (pairs of start, end).
func Elements(b []byte, dst [][2]int) ([][2]int, error) {
	i := SkipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return dst, ErrMalformed
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return dst, trailing(b, i+1)
	}
	for {
		end, err := skipValue(b, i)
		if err != nil {
			return dst, err
		}
		dst = append(dst, [2]int{i, end})
		i = SkipSpace(b, end)
		if i >= len(b) {
			return dst, ErrMalformed
		}
		switch b[i] {
		case ',':
			i = SkipSpace(b, i+1)
		case ']':
			return dst, trailing(b, i+1)
		default:
			return dst, ErrMalformed
		}
	}
}

// PlainString reports whether a string's raw bytes are its value: no escapes, valid UTF-8 (a
// decoder replaces invalid bytes).
func PlainString(inner []byte) bool {
	return bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner)
}

func trailing(b []byte, i int) error {
	if SkipSpace(b, i) != len(b) {
		return ErrMalformed
	}
	return nil
}

// PlainStringValue returns the bytes of a JSON string value that has no escapes (its value as
// it stands in b); ok is false for anything else.
func PlainStringValue(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	inner := v[1 : len(v)-1]
	return inner, PlainString(inner)
}

// StringValue decodes a JSON string value; ok is false for anything else.
func StringValue(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	if inner := v[1 : len(v)-1]; PlainString(inner) {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}
