package tokenexchange

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/upstream"
)

func decode(t *testing.T, name, options string) *Policy {
	t.Helper()
	p := new(Policy)
	dec := json.NewDecoder(strings.NewReader(options))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		t.Fatalf("decoding %s: %v", options, err)
	}
	p.SetName(name)
	return p
}

func TestRegistration(t *testing.T) {
	tests := []struct {
		name, options string
		want          upstream.RegistrationConfig
	}{
		{"default is auto", `{}`, upstream.RegistrationConfig{Mode: "auto"}},
		{"mode string", `{"clientRegistration":"dcr"}`, upstream.RegistrationConfig{Mode: "dcr"}},
		{"object auto", `{"clientRegistration":{"mode":"cimd"}}`, upstream.RegistrationConfig{Mode: "cimd"}},
		{"flat client id means manual, public", `{"clientId":"abc"}`,
			upstream.RegistrationConfig{Mode: "manual", ClientID: "abc", TokenEndpointAuthMethod: "none"}},
		{"flat with secret defaults to basic", `{"clientId":"abc","clientSecret":"s"}`,
			upstream.RegistrationConfig{Mode: "manual", ClientID: "abc", ClientSecret: "s", TokenEndpointAuthMethod: "client_secret_basic"}},
		{"nested manual with method", `{"clientRegistration":{"mode":"manual","clientId":"abc","clientSecret":"s","tokenEndpointAuthMethod":"client_secret_post"}}`,
			upstream.RegistrationConfig{Mode: "manual", ClientID: "abc", ClientSecret: "s", TokenEndpointAuthMethod: "client_secret_post"}},
		{"mode string manual with flat fields", `{"clientRegistration":"manual","clientId":"abc","tokenEndpointAuthMethod":"none"}`,
			upstream.RegistrationConfig{Mode: "manual", ClientID: "abc", TokenEndpointAuthMethod: "none"}},
		{"nested mode with flat client", `{"clientRegistration":{"mode":"manual"},"clientId":"abc","clientSecret":"s"}`,
			upstream.RegistrationConfig{Mode: "manual", ClientID: "abc", ClientSecret: "s", TokenEndpointAuthMethod: "client_secret_basic"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decode(t, "mcp-token-exchange-x", tt.options)
			if got := p.Registration(); got != tt.want {
				t.Errorf("Registration() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestUpstreamID(t *testing.T) {
	if id := decode(t, "mcp-token-exchange-linear", `{}`).UpstreamID(); id != "linear" {
		t.Errorf("inferred id = %q", id)
	}
	if id := decode(t, "mcp-token-exchange-linear", `{"id":"linear-v2"}`).UpstreamID(); id != "linear-v2" {
		t.Errorf("explicit id = %q", id)
	}
	if id := decode(t, "linear", `{}`).UpstreamID(); id != "" {
		t.Errorf("no id = %q", id)
	}
}

func TestValidate(t *testing.T) {
	const base = `"displayName":"Linear","authMode":"user-oauth"`
	tests := []struct {
		name, policy, options string
		want                  []string // one line per expected error; none means valid
	}{
		{"minimal", "mcp-token-exchange-linear", `{` + base + `}`, nil},
		{"shared with everything", "x", `{` + base + `,"id":"x.y_z-1","summary":"s","scopes":["a"],"scopeDelimiter":",","prompt":"consent","protectedResourceMetadataUrl":"http://127.0.0.1:9/prm"}`, nil},
		{"prompt false", "mcp-token-exchange-a", `{` + base + `,"prompt":false}`, nil},
		{"required fields", "mcp-token-exchange-a", `{}`, []string{
			"options.displayName: required: the name users see on the consent page and in connect-required answers",
			"options.authMode: required: one of user-oauth, shared-oauth",
		}},
		{"id-jag is not supported", "mcp-token-exchange-a", `{"displayName":"A","authMode":"id-jag"}`, []string{
			`options.authMode: must be one of user-oauth, shared-oauth, got "id-jag"`,
		}},
		{"bad id", "p", `{` + base + `,"id":"a/b"}`, []string{
			`options.id: must start with a letter or digit and contain only letters, digits, '.', '_' and '-', got "a/b"`,
		}},
		{"bad inferred id", "mcp-token-exchange-", `{` + base + `}`, []string{
			`options.id: the id "" inferred from the policy name is not usable (letters, digits, '.', '_' and '-' only); set options.id`,
		}},
		{"prm must be https", "mcp-token-exchange-a", `{` + base + `,"protectedResourceMetadataUrl":"http://example.com/prm"}`, []string{
			`options.protectedResourceMetadataUrl: must be an absolute https URL (http only for localhost, 127.0.0.1 or ::1), got "http://example.com/prm"`,
		}},
		{"unknown mode", "mcp-token-exchange-a", `{` + base + `,"clientRegistration":{"mode":"static"}}`, []string{
			`options.clientRegistration.mode: must be one of auto, manual, dcr, cimd, got "static"`,
		}},
		{"unknown mode string", "mcp-token-exchange-a", `{` + base + `,"clientRegistration":"static"}`, []string{
			`options.clientRegistration: must be one of auto, manual, dcr, cimd, got "static"`,
		}},
		{"object without mode", "mcp-token-exchange-a", `{` + base + `,"clientRegistration":{"clientId":"c"}}`, []string{
			`options.clientRegistration.mode: required: one of auto, manual, dcr, cimd`,
		}},
		{"manual needs client id (flat shape)", "mcp-token-exchange-a", `{` + base + `,"clientRegistration":"manual"}`, []string{
			`options.clientId: required with clientRegistration mode manual`,
		}},
		{"bad auth method", "mcp-token-exchange-a", `{` + base + `,"clientId":"c","tokenEndpointAuthMethod":"private_key_jwt"}`, []string{
			`options.tokenEndpointAuthMethod: must be one of client_secret_basic, client_secret_post, none, got "private_key_jwt"`,
		}},
		{"same values in both shapes agree", "mcp-token-exchange-a", `{` + base + `,"clientId":"c","clientSecret":"s","clientRegistration":{"mode":"manual","clientId":"c","clientSecret":"s"}}`, nil},
		{"conflicting secrets never print", "mcp-token-exchange-a", `{` + base + `,"clientSecret":"s1-secret","clientRegistration":{"mode":"manual","clientId":"c","clientSecret":"s2-secret"}}`, []string{
			`options.clientSecret and options.clientRegistration.clientSecret: conflicting client secrets; set the secret once`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := decode(t, tt.policy, tt.options).Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Validate():\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if err != nil && strings.Contains(err.Error(), "secret\"") {
				t.Errorf("a secret value is quoted: %v", err)
			}
		})
	}
}

func TestPromptJSON(t *testing.T) {
	for _, tt := range []struct{ in, want string }{{`false`, `false`}, {`"login"`, `"login"`}, {`null`, `null`}} {
		var p upstream.Prompt
		if err := json.Unmarshal([]byte(tt.in), &p); err != nil {
			t.Fatal(err)
		}
		if b, _ := json.Marshal(p); string(b) != tt.want {
			t.Errorf("%s round-trips as %s", tt.in, b)
		}
	}
	var p upstream.Prompt
	if err := json.Unmarshal([]byte(`true`), &p); err == nil {
		t.Error("prompt true was accepted")
	}
}
