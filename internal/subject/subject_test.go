package subject

import "testing"

func TestSubject(t *testing.T) {
	cases := []struct {
		name           string
		s              Subject
		wantNS, wantID string
	}{
		{"api key", New(APIKey, "alice"), "apikey", "alice"},
		{"jwt keeps the issuer whole", JWT("https://idp.example.com/", "u|1"), "jwt:https://idp.example.com/", "u|1"},
		{"dev", New(Dev, "dev-browser-user"), "dev", "dev-browser-user"},
		{"shared has no namespace", Shared, "", "shared"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns, sub := tc.s.Split()
			if ns != tc.wantNS || sub != tc.wantID {
				t.Fatalf("Split(%q) = %q, %q; want %q, %q", tc.s, ns, sub, tc.wantNS, tc.wantID)
			}
			if tc.s.Display() != tc.wantID || tc.s.Namespace() != tc.wantNS {
				t.Fatalf("Display/Namespace of %q = %q/%q", tc.s, tc.s.Display(), tc.s.Namespace())
			}
		})
	}
	if New("jwt:https://a", "x") == New("apikey", "x") {
		t.Fatal("equal subs of two namespaces are one subject")
	}
}
