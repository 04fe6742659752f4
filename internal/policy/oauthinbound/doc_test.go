package oauthinbound

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// docFile documents this package's options (the mcp-oauth-inbound section of the configuration
// reference).
const docFile = "../../../docs/configuration.md"

// derivationRow renders one row of the documented derivation table.
func derivationRow(d Derivation) string {
	when := d.Variant
	if when == "" {
		when = "—"
	}
	return "| " + d.Provider + " | `" + d.Export + "` | " + when + " | `" + d.Issuer + "` | `" + d.JWKS + "` | `" + d.Authorize + "` | `" + d.Token + "` |"
}

// TestDocDerivations: the documented derivation table is Derivations(), row for row.
func TestDocDerivations(t *testing.T) {
	b, err := os.ReadFile(docFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var want []string
	for _, d := range Derivations() {
		want = append(want, derivationRow(d))
	}
	if !strings.Contains(doc, strings.Join(want, "\n")) {
		t.Errorf("%s does not hold the derivation table; it must contain exactly:\n%s", docFile, strings.Join(want, "\n"))
	}
}

// TestDocOptions: every export, policy type and option (nested ones too) is named in the doc.
func TestDocOptions(t *testing.T) {
	b, err := os.ReadFile(docFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	exports := []string{Export}
	for _, m := range wrapperModules {
		exports = append(exports, m.export)
	}
	for _, export := range exports {
		m, _ := policy.FindModule(export)
		names := append([]string{export, m.PolicyType}, allOptionNames(reflect.TypeOf(m.New()))...)
		for _, name := range names {
			if !strings.Contains(doc, "`"+name+"`") {
				t.Errorf("%s does not mention `%s` (%s)", docFile, name, export)
			}
		}
	}
}

// allOptionNames lists the JSON names of t's options at every depth.
func allOptionNames(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "":
			out = append(out, allOptionNames(f.Type)...)
		case f.IsExported():
			out = append(out, name)
			out = append(out, allOptionNames(f.Type)...)
		}
	}
	return out
}
