package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/vault"
)

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	secretType      = reflect.TypeFor[vault.Secret]()
)

// decodeOptions decodes a module's options strictly into a fresh instance and validates it.
// base is the path of the handler object (policies[3].handler); options is after $env
// substitution (nil when absent). It returns the instance, or nil when anything was wrong.
// Problems from index before on (the caller's checks of the same options) count as already
// reported, so a module's Validate does not repeat them.
func (l *loader) decodeOptions(file string, base jpath, subject, name string, mod policy.Module, options *node, before int) any {
	optPath := base.key("options")
	if options == nil || options.kind == kNull {
		options = &node{kind: kObject}
	}
	v := mod.New()
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer {
		panic("policy " + mod.Export + ": New must return a pointer")
	}
	if options.kind != kObject {
		l.add(file, optPath, subject, "must be an object, got "+options.kind.String())
		return nil
	}
	start := len(l.problems)
	l.checkShape(file, optPath, subject, options, rv.Type().Elem())
	if len(l.problems) > start {
		return nil
	}
	raw, _ := options.MarshalJSON()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// checkShape mirrors encoding/json, so this is a module with an unusual type; say what
		// the decoder said without echoing values.
		l.add(file, optPath, subject, "cannot be decoded: "+typeErrorText(err))
		return nil
	}
	if n, ok := v.(policy.Namer); ok {
		n.SetName(name)
	}
	// Whatever a module's own messages quote, secret option values never reach them.
	l.secrets = append(l.secrets, secretsIn(rv)...)
	if val, ok := v.(policy.Validator); ok {
		reported := map[jpath]bool{}
		for _, p := range l.problems[before:] {
			reported[jpath(p.Path)] = true
		}
		for _, e := range leafErrors(val.Validate()) {
			path, msg := splitOptionError(base, e.Error())
			if reported[path] {
				continue // the loader already said what is wrong here
			}
			reported[path] = true
			l.add(file, path, subject, msg)
		}
	}
	if len(l.problems) > before {
		return nil
	}
	return v
}

// leafErrors flattens errors.Join trees.
func leafErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// splitOptionError turns "options.authMode: must be …" into the full path and the message.
// Every "options" path named before the first ": " is anchored at base.
func splitOptionError(base jpath, s string) (jpath, string) {
	head, msg, ok := strings.Cut(s, ": ")
	if !ok || !strings.HasPrefix(head, "options") {
		return base.key("options"), s
	}
	words := strings.Split(head, " ")
	for i, w := range words {
		if strings.HasPrefix(w, "options") {
			words[i] = string(base) + "." + w
		}
	}
	return jpath(strings.Join(words, " ")), msg
}

// checkShape reports unknown keys and wrong types under n against the Go type t the options
// decode into, each by its path. Unlike encoding/json it matches names exactly (JavaScript is
// case-sensitive) and names the path of every problem. Types with their own UnmarshalJSON are
// asked directly; when they decode an object into a struct, its keys are still checked.
func (l *loader) checkShape(file string, path jpath, subject string, n *node, t reflect.Type) {
	if n.isNull() {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		raw, _ := n.MarshalJSON()
		if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				l.add(file, path, subject, "must be "+typeName(t)+", got "+n.kind.String())
			} else {
				msg := err.Error()
				if !strings.Contains(msg, ", got ") {
					msg += ", got " + describe(n)
				}
				l.add(file, path, subject, msg)
			}
			return
		}
		if n.kind == kObject && t.Kind() == reflect.Struct {
			l.checkStruct(file, path, subject, n, t)
		}
		return
	}
	want := typeName(t)
	bad := func() { l.add(file, path, subject, "must be "+want+", got "+n.kind.String()) }
	switch t.Kind() {
	case reflect.String:
		if n.kind != kString {
			bad()
		}
	case reflect.Bool:
		if n.kind != kBool {
			bad()
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.kind != kNumber {
			bad()
		} else if _, err := strconv.ParseInt(n.str, 10, t.Bits()); err != nil {
			l.add(file, path, subject, "must be "+want+", got "+n.str)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.kind != kNumber {
			bad()
		} else if _, err := strconv.ParseUint(n.str, 10, t.Bits()); err != nil {
			l.add(file, path, subject, "must be "+want+", got "+n.str)
		}
	case reflect.Float32, reflect.Float64:
		if n.kind != kNumber {
			bad()
		}
	case reflect.Slice, reflect.Array:
		if n.kind != kArray {
			bad()
			return
		}
		for i, e := range n.vals {
			l.checkShape(file, path.index(i), subject, e, t.Elem())
		}
	case reflect.Map:
		if n.kind != kObject || t.Key().Kind() != reflect.String {
			bad()
			return
		}
		for i, k := range n.keys {
			l.checkShape(file, path.key(k), subject, n.vals[i], t.Elem())
		}
	case reflect.Struct:
		if n.kind != kObject {
			bad()
			return
		}
		l.checkStruct(file, path, subject, n, t)
	}
}

func (l *loader) checkStruct(file string, path jpath, subject string, n *node, t reflect.Type) {
	fields := jsonFields(t)
	for i, k := range n.keys {
		ft, ok := fields[k]
		if !ok {
			l.add(file, path.key(k), subject, unknownOption(k, fields))
			continue
		}
		l.checkShape(file, path.key(k), subject, n.vals[i], ft)
	}
}

func unknownOption(k string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		if strings.EqualFold(name, k) {
			return "unknown option " + quote(k) + "; did you mean " + quote(name) + "?"
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return "unknown option " + quote(k) + "; this module takes no options"
	}
	slices.Sort(names)
	return "unknown option " + quote(k) + "; allowed: " + strings.Join(names, ", ")
}

// jsonFields maps the JSON names encoding/json would use for t to their types, flattening
// embedded structs.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for k, v := range jsonFields(et) {
					if _, dup := out[k]; !dup {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// typeName names a Go type as the JSON a user writes.
func typeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a value"
}

// typeErrorText describes a decoding error without echoing config values.
func typeErrorText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field + ": must be " + typeName(te.Type) + ", got " + te.Value
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "invalid JSON"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// secretsIn collects the plaintext of every vault.Secret reachable from v.
func secretsIn(v reflect.Value) []string {
	var out []string
	var walk func(reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.String:
			if v.Type() == secretType && v.Len() > 0 {
				out = append(out, v.String())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i))
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Map:
			for it := v.MapRange(); it.Next(); {
				walk(it.Value())
			}
		}
	}
	walk(v)
	return out
}
