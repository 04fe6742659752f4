package upstream

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestErrorCodesDocumented keeps docs/errors.md in step with the Code constants.
func TestErrorCodesDocumented(t *testing.T) {
	src, err := os.ReadFile("errors.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/errors.md")
	if err != nil {
		t.Fatal(err)
	}
	codes := regexp.MustCompile(`(?m)^\s+Code\w+\s+= "(\w+)"`).FindAllStringSubmatch(string(src), -1)
	if len(codes) < 20 {
		t.Fatalf("found only %d codes in errors.go", len(codes))
	}
	for _, m := range codes {
		if !strings.Contains(string(doc), "| `"+m[1]+"` |") {
			t.Errorf("code %s is not in docs/errors.md", m[1])
		}
	}
	for _, b := range []Bucket{BucketGatewayConfig, BucketOAuthSetup, BucketUpstreamResponse} {
		if !strings.Contains(string(doc), string(b)) {
			t.Errorf("bucket %q is not in docs/errors.md", b)
		}
	}
}
