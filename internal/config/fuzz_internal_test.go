package config

import (
	"reflect"
	"strings"
	"testing"
)

// fuzzOptions is a stand-in option type with the shapes real modules use.
type fuzzOptions struct {
	Name    string            `json:"name"`
	Count   *int              `json:"count,omitempty"`
	On      bool              `json:"on,omitempty"`
	List    []string          `json:"list,omitempty"`
	Map     map[string]string `json:"map,omitempty"`
	Nested  struct{ A int }   `json:"nested"`
	Ratio   float64           `json:"ratio,omitempty"`
	Untyped any               `json:"untyped,omitempty"`
}

// FuzzOptions runs JSONC parsing, $env substitution and the strict shape check on arbitrary
// text: no panic, every problem has a message, and a secret from the environment never appears
// in one.
func FuzzOptions(f *testing.F) {
	f.Add(`{"name":"$env(SECRET)","count":"$env(SECRET)","list":["a","$env(UNSET)"],"nested":{"A":1.5}}`)
	f.Add(`{// c
	"name": "x-$env(SECRET)-$env(ZUPLO_X)", "map": {"k": 1}, "untyped": [1, {"a": null}], "extra": true,}`)
	f.Add(`{"name":"$env(","on":"true","ratio":"1"}`)
	const secret = "fz-0123456789-secret"
	f.Fuzz(func(t *testing.T, text string) {
		l := &loader{lookupEnv: func(name string) (string, bool) {
			if name == "SECRET" {
				return secret, true
			}
			return "", false
		}}
		root, err := parseJSON([]byte(text), func(p jpath, msg string) { l.add("f", p, "", msg) })
		if err != nil {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("secret in %v", err)
			}
			return
		}
		n := l.substEnv("f", "options", "", root)
		if n != nil && n.kind == kObject {
			l.checkShape("f", "options", "", n, reflect.TypeFor[fuzzOptions]())
		}
		for _, p := range l.redacted(l.problems) {
			if p.Message == "" || strings.Contains(p.String(), secret) {
				t.Fatalf("bad problem %q", p.String())
			}
		}
	})
}
