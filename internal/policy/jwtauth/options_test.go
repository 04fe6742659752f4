package jwtauth

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestOptionValidate(t *testing.T) {
	tests := []struct {
		name, options string
		want          []string
	}{
		{"jwks", `{"issuer":"https://idp.example.com/","jwkUrl":"https://idp.example.com/jwks.json"}`, nil},
		{"secret", `{"issuer":"https://idp.example.com/","secret":"hmac-key-value","audience":"api","subPropertyName":"email","oAuthResourceMetadataEnabled":true}`, nil},
		{"nothing", `{}`, []string{
			"options.issuer: required: the expected iss claim of accepted tokens",
			"options: one of jwkUrl or secret is required",
		}},
		{"both, secret never printed", `{"issuer":"i","jwkUrl":"jwks.json","secret":"hmac-key-value"}`, []string{
			"options: set either jwkUrl or secret, not both",
			`options.jwkUrl: must be an absolute http(s) URL, got "jwks.json"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Policy
			if err := json.Unmarshal([]byte(tt.options), &p); err != nil {
				t.Fatal(err)
			}
			var got []string
			if err := p.Validate(); err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Validate():\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestOptionDefaults(t *testing.T) {
	var p Policy
	if p.Header() != "Authorization" || p.SubClaim() != "sub" {
		t.Errorf("defaults = %q %q", p.Header(), p.SubClaim())
	}
}
