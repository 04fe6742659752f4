package apikey

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestOptionDefaults(t *testing.T) {
	var p Policy
	if p.Header() != "Authorization" || p.Scheme() != "Bearer" || p.CacheTTL() != 60 {
		t.Errorf("defaults = %q %q %d", p.Header(), p.Scheme(), p.CacheTTL())
	}
	if err := json.Unmarshal([]byte(`{"authHeader":"x-api-key","authScheme":"","cacheTtlSeconds":0}`), &p); err != nil {
		t.Fatal(err)
	}
	// An explicit "" scheme (bare key) and an explicit 0 TTL differ from unset.
	if p.Header() != "x-api-key" || p.Scheme() != "" || p.CacheTTL() != 0 {
		t.Errorf("configured = %q %q %d", p.Header(), p.Scheme(), p.CacheTTL())
	}
}

func TestOptionValidate(t *testing.T) {
	tests := []struct {
		name, options string
		want          []string
	}{
		{"empty", `{}`, nil},
		{"everything", `{"authHeader":"x-api-key","authScheme":"Key","cacheTtlSeconds":300,"allowUnauthenticatedRequests":true,"bucketName":"b","disableAutomaticallyAddingKeyHeaderToOpenApi":true}`, nil},
		{"bad values", `{"authHeader":"x api key","authScheme":"Bearer token","cacheTtlSeconds":-1}`, []string{
			`options.authHeader: must be an HTTP header name, got "x api key"`,
			`options.authScheme: must be a single word such as Bearer, or "" for a bare key, got "Bearer token"`,
			`options.cacheTtlSeconds: must be 0 or more, got -1`,
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
