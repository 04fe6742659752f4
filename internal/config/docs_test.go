package config_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// TestDocsListEveryModule keeps docs/configuration.md honest: every registered export, its
// policyType and every one of its options is named there.
func TestDocsListEveryModule(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, kind := range []policy.Kind{policy.KindHandler, policy.KindInbound, policy.KindOutbound} {
		for _, export := range policy.Exports(kind) {
			m, _ := policy.FindModule(export)
			for _, name := range append([]string{export, m.PolicyType}, optionNames(reflect.TypeOf(m.New()))...) {
				if name != "" && !strings.Contains(doc, "`"+name+"`") {
					t.Errorf("docs/configuration.md does not mention `%s` (module %s)", name, export)
				}
			}
		}
	}
}

// optionNames lists the JSON names of an option type's fields, embedded structs flattened.
func optionNames(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			out = append(out, optionNames(f.Type)...)
		case f.IsExported():
			if name == "" {
				name = f.Name
			}
			out = append(out, name)
		}
	}
	return out
}
