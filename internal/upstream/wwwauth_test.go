package upstream

import (
	"net/http"
	"reflect"
	"testing"
)

func TestParseChallenges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   []Challenge
	}{
		{
			name:   "mcp spec example",
			values: []string{`Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", scope="files:read"`},
			want:   []Challenge{{Scheme: "bearer", Params: map[string]string{"resource_metadata": "https://mcp.example.com/.well-known/oauth-protected-resource", "scope": "files:read"}}},
		},
		{
			name:   "scheme and names case-insensitive, token values, BWS",
			values: []string{`BEARER Error = invalid_token ,SCOPE="a b"`},
			want:   []Challenge{{Scheme: "bearer", Params: map[string]string{"error": "invalid_token", "scope": "a b"}}},
		},
		{
			name:   "rfc 9110 example with escapes and two challenges",
			values: []string{`Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`},
			want: []Challenge{
				{Scheme: "newauth", Params: map[string]string{"realm": "apps", "type": "1", "title": `Login to "apps"`}},
				{Scheme: "basic", Params: map[string]string{"realm": "simple"}},
			},
		},
		{
			name:   "several header lines, comma inside quotes",
			values: []string{`Basic realm="a, b"`, `Bearer error="insufficient_scope", scope="x y", resource_metadata="https://h/.well-known/oauth-protected-resource/mcp"`},
			want: []Challenge{
				{Scheme: "basic", Params: map[string]string{"realm": "a, b"}},
				{Scheme: "bearer", Params: map[string]string{"error": "insufficient_scope", "scope": "x y", "resource_metadata": "https://h/.well-known/oauth-protected-resource/mcp"}},
			},
		},
		{
			name:   "token68 then params challenge",
			values: []string{`Negotiate abc+/==, Bearer realm=x`},
			want: []Challenge{
				{Scheme: "negotiate", Token68: "abc+/=="},
				{Scheme: "bearer", Params: map[string]string{"realm": "x"}},
			},
		},
		{
			name:   "bare schemes and empty list elements",
			values: []string{`, Bearer ,, DPoP algs="ES256"`},
			want: []Challenge{
				{Scheme: "bearer"},
				{Scheme: "dpop", Params: map[string]string{"algs": "ES256"}},
			},
		},
		{
			name:   "malformed piece skipped, good challenge kept",
			values: []string{`Bearer scope="unterminated`, `Basic ===, Bearer resource_metadata="https://h/prm"`},
			want: []Challenge{
				{Scheme: "bearer"},
				{Scheme: "basic"},
				{Scheme: "bearer", Params: map[string]string{"resource_metadata": "https://h/prm"}},
			},
		},
		{
			name:   "duplicate parameter: first wins",
			values: []string{`Bearer scope="a", scope="b"`},
			want:   []Challenge{{Scheme: "bearer", Params: map[string]string{"scope": "a"}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseChallenges(tc.values)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestParseBearerChallenge(t *testing.T) {
	h := http.Header{}
	h.Add("WWW-Authenticate", `Basic realm="x"`)
	h.Add("www-authenticate", `bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", error_description="more"`)
	b, ok := ParseBearerChallenge(h)
	if !ok {
		t.Fatal("no bearer challenge found")
	}
	want := BearerChallenge{ResourceMetadata: "https://mcp.example.com/.well-known/oauth-protected-resource", Scope: "files:read files:write", Error: "insufficient_scope", ErrorDescription: "more"}
	if b != want {
		t.Errorf("got %+v, want %+v", b, want)
	}
	if s := b.Scopes(); !reflect.DeepEqual(s, []string{"files:read", "files:write"}) {
		t.Errorf("scopes = %q", s)
	}
	if _, ok := ParseBearerChallenge(http.Header{"Www-Authenticate": {`Basic realm="x"`}}); ok {
		t.Error("found a bearer challenge in a Basic-only header")
	}
}

func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{
		`Bearer resource_metadata="https://h/prm", scope="a b"`,
		`Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`,
		`Negotiate abc==, Bearer`,
		`Bearer scope="unterminated`,
		`,,, = , "x", Basic ===`,
		"Bearer\tx=\"\\\"\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := ParseChallenges([]string{s})
		for _, c := range got {
			if c.Scheme == "" {
				t.Fatalf("empty scheme from %q", s)
			}
			for i := 0; i < len(c.Scheme); i++ {
				if !isTchar(c.Scheme[i]) || ('A' <= c.Scheme[i] && c.Scheme[i] <= 'Z') {
					t.Fatalf("scheme %q from %q is not a lower-case token", c.Scheme, s)
				}
			}
			if c.Token68 != "" && len(c.Params) > 0 {
				t.Fatalf("challenge from %q has both token68 and params", s)
			}
		}
		// Canonical rendering parses back to the same challenges.
		var again []string
		for _, c := range got {
			again = append(again, c.String())
		}
		if back := ParseChallenges(again); !reflect.DeepEqual(back, got) && len(got) > 0 {
			t.Fatalf("round trip of %q:\n got  %#v\n back %#v", s, got, back)
		}
	})
}

func BenchmarkParseBearerChallenge(b *testing.B) {
	h := http.Header{"Www-Authenticate": {`Bearer error="insufficient_scope", scope="files:read files:write user:profile", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", error_description="Additional file write permission required"`}}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ParseBearerChallenge(h); !ok {
			b.Fatal("no challenge")
		}
	}
}
