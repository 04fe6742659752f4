package authcommon

import (
	"net/http/httptest"
	"testing"
)

func TestChallenge(t *testing.T) {
	tests := []struct {
		name   string
		scheme string
		params []Param
		want   string
	}{
		{name: "bare scheme", scheme: "Bearer", want: "Bearer"},
		{name: "empty values left out", scheme: "Bearer", params: []Param{{"realm", ""}, {"error", "invalid_token"}}, want: `Bearer error="invalid_token"`},
		{name: "several params", scheme: "Bearer", params: []Param{{"resource_metadata", "https://gw/.well-known/oauth-protected-resource/mcp"}, {"error", "invalid_token"}},
			want: `Bearer resource_metadata="https://gw/.well-known/oauth-protected-resource/mcp", error="invalid_token"`},
		{name: "quotes and backslashes escaped, controls dropped", scheme: "ApiKey", params: []Param{{"realm", "a\"b\\c\r\nd"}}, want: `ApiKey realm="a\"b\\cd"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Challenge(tc.scheme, tc.params...); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCredential(t *testing.T) {
	tests := []struct {
		name, value, scheme string
		cred                string
		present, ok         bool
	}{
		{name: "absent", scheme: "Bearer"},
		{name: "bearer", value: "Bearer abc", scheme: "Bearer", cred: "abc", present: true, ok: true},
		{name: "scheme is case-insensitive", value: "bEaReR  abc ", scheme: "Bearer", cred: "abc", present: true, ok: true},
		{name: "other scheme", value: "Basic abc", scheme: "Bearer", present: true},
		{name: "scheme only", value: "Bearer", scheme: "Bearer", present: true},
		{name: "two words", value: "Bearer a b", scheme: "Bearer", present: true},
		{name: "bare", value: "  key123 ", scheme: "", cred: "key123", present: true, ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			if tc.value != "" {
				r.Header.Set("X-Cred", tc.value)
			}
			cred, present, ok := Credential(r, "X-Cred", tc.scheme)
			if cred != tc.cred || present != tc.present || ok != tc.ok {
				t.Errorf("got (%q, %v, %v), want (%q, %v, %v)", cred, present, ok, tc.cred, tc.present, tc.ok)
			}
		})
	}
}

func TestMetadataPath(t *testing.T) {
	for path, want := range map[string]string{"/": WellKnownPRM, "/mcp/linear": WellKnownPRM + "/mcp/linear"} {
		if got := MetadataPath(path); got != want {
			t.Errorf("MetadataPath(%q) = %q, want %q", path, got, want)
		}
	}
}
