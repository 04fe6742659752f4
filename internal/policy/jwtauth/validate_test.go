package jwtauth

import (
	"strings"
	"testing"
)

func TestValidateScopesSupported(t *testing.T) {
	tests := []struct {
		name string
		p    Policy
		want string
	}{
		{name: "ok", p: Policy{ScopesSupported: []string{"mcp", "offline_access"}, OAuthResourceMetadataEnabled: true}},
		{name: "space", p: Policy{ScopesSupported: []string{"mcp tools"}, OAuthResourceMetadataEnabled: true},
			want: `options.scopesSupported[0]: must be a scope name without spaces or quotes, got "mcp tools"`},
		{name: "empty", p: Policy{ScopesSupported: []string{"mcp", ""}, OAuthResourceMetadataEnabled: true},
			want: `options.scopesSupported[1]: must be a scope name without spaces or quotes, got ""`},
		{name: "without metadata", p: Policy{ScopesSupported: []string{"mcp"}},
			want: "options.scopesSupported: only used with oAuthResourceMetadataEnabled: true"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Issuer, tc.p.Secret = "https://idp.test", "s"
			err := tc.p.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
