package importgraph

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The design lives in docs/architecture.md, beside the code. These tests keep every citation of it
// pointing at a section that exists, keep citations of design documents outside the repository from
// coming back, and keep its Settings section naming every setting.

const (
	repoRoot     = "../.."
	architecture = "docs/architecture.md"
)

// outsideRefs are what a citation of a design document outside the repository looks like. They are
// split so that this file does not cite them itself.
var outsideRefs = []string{"DESIGN" + ".md", ".." + "/shared", "shared" + "/spec"}

// skipDir reports whether a directory holds files that are not the project's own text.
func skipDir(name string) bool {
	return name == ".git" || name == "node_modules" || name == "testdata"
}

// repoFile is one text file of the repository, by its slash-separated path from the root.
type repoFile struct {
	path  string
	lines []string
}

// textFiles returns every text file of the repository whose path keep accepts.
func textFiles(t *testing.T, keep func(path string) bool) []repoFile {
	t.Helper()
	var out []repoFile
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != repoRoot && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(repoRoot, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !d.Type().IsRegular() || !keep(rel) {
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() > 4<<20 {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.IndexByte(b, 0) >= 0 || !utf8.Valid(b) {
			return nil // binary
		}
		out = append(out, repoFile{path: rel, lines: strings.Split(string(b), "\n")})
		return nil
	})
	if err != nil {
		t.Fatalf("walking the repository: %v", err)
	}
	return out
}

func goOrMarkdown(path string) bool {
	return strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".md")
}

// TestNoDesignDocumentsOutsideTheRepository: no Go or Markdown file cites a design document that is
// not in the repository; the design is docs/architecture.md.
func TestNoDesignDocumentsOutsideTheRepository(t *testing.T) {
	files := textFiles(t, goOrMarkdown)
	if len(files) < 100 {
		t.Fatalf("found only %d Go and Markdown files: the walk did not see the repository", len(files))
	}
	for _, f := range files {
		for i, line := range f.lines {
			for _, ref := range outsideRefs {
				if strings.Contains(line, ref) {
					t.Errorf("%s:%d: cites %q, a document outside this repository; cite a section of %s instead: %s",
						f.path, i+1, ref, architecture, strings.TrimSpace(line))
				}
			}
		}
	}
}

// anchorOf is the anchor GitHub gives a heading: lower case, spaces to hyphens, and every character
// that is not a letter, a digit, a hyphen or an underscore dropped.
func anchorOf(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

var headingLine = regexp.MustCompile(`^(#{1,6})\s+(.+?)\s*#*\s*$`)

// anchors returns the anchors of the headings of a Markdown document (outside code fences), with
// GitHub's -1, -2 … suffixes for repeated headings.
func anchors(lines []string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	fence := ""
	for _, line := range lines {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		m := headingLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		a := anchorOf(m[2])
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

func TestAnchorOf(t *testing.T) {
	for heading, want := range map[string]string{
		"The refresh flow":                           "the-refresh-flow",
		"A request's walk":                           "a-requests-walk",
		"Errors: three buckets":                      "errors-three-buckets",
		"Refresh: singleflight, lease, re-read, CAS": "refresh-singleflight-lease-re-read-cas",
		"`mcp-oauth-inbound` and the wrappers":       "mcp-oauth-inbound-and-the-wrappers",
	} {
		if got := anchorOf(heading); got != want {
			t.Errorf("anchorOf(%q) = %q, want %q", heading, got, want)
		}
	}
	got := anchors([]string{"# A", "## A", "```", "# Not a heading", "```", "### B c"})
	for _, want := range []string{"a", "a-1", "b-c"} {
		if !got[want] {
			t.Errorf("anchors: %q missing from %v", want, got)
		}
	}
	if got["not-a-heading"] {
		t.Errorf("anchors: a line in a code fence counted as a heading")
	}
}

var (
	// citation is a reference to a section of docs/architecture.md from anywhere in the repository.
	citation = regexp.MustCompile(`architecture\.md#([^\s)\]>"'` + "`" + `,;:]+)`)
	// selfLink is a link from docs/architecture.md to one of its own sections.
	selfLink = regexp.MustCompile(`\]\(#([^)\s]+)\)`)
)

// TestArchitectureCitationsExist: every citation of a section of docs/architecture.md in the
// repository (the file name, "#", the anchor), and every link of docs/architecture.md to its own
// sections, names a heading that exists.
func TestArchitectureCitationsExist(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, architecture))
	if err != nil {
		t.Fatal(err)
	}
	docLines := strings.Split(string(doc), "\n")
	have := anchors(docLines)
	for _, want := range []string{"overview", "packages", "the-import-rule", "wiring", "the-refresh-flow", "stored-records", "settings"} {
		if !have[want] {
			t.Fatalf("%s has no section #%s: the headings were not read (found %d)", architecture, want, len(have))
		}
	}
	cited := 0
	for _, f := range textFiles(t, func(string) bool { return true }) {
		for i, line := range f.lines {
			for _, m := range citation.FindAllStringSubmatch(line, -1) {
				cited++
				if a := strings.TrimRight(m[1], "."); !have[a] {
					t.Errorf("%s:%d: cites %s#%s, which has no such section", f.path, i+1, architecture, a)
				}
			}
		}
	}
	if cited == 0 {
		t.Errorf("no file cites a section of %s: the search is broken", architecture)
	}
	for i, line := range docLines {
		for _, m := range selfLink.FindAllStringSubmatch(line, -1) {
			if !have[m[1]] {
				t.Errorf("%s:%d: links to #%s, which has no such section", architecture, i+1, m[1])
			}
		}
	}
}

// envLiteral is an environment variable name as Go code spells it.
var envLiteral = regexp.MustCompile(`"(MCPGATE_[A-Z0-9_]+)"`)

// helpFlag is one flag line of `mcpgate serve --help`: the flag and its variable.
var helpFlag = regexp.MustCompile(`^\s+(?:-\w, )?--([a-z0-9-]+)\b.*\(env (MCPGATE_[A-Z0-9_]+)\)`)

// TestArchitectureNamesEverySetting: docs/architecture.md ("Settings", "Testing") names every flag
// of `mcpgate serve`, its variable, and every MCPGATE_* variable the code reads by name.
func TestArchitectureNamesEverySetting(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, architecture))
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	var want []string
	for _, f := range textFiles(t, func(p string) bool { return strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") }) {
		for _, line := range f.lines {
			for _, m := range envLiteral.FindAllStringSubmatch(line, -1) {
				if !slices.Contains(want, m[1]) {
					want = append(want, m[1])
				}
				if !strings.Contains(text, m[1]) {
					t.Errorf("%s reads %s, which %s does not name (Settings or Testing)", f.path, m[1], architecture)
				}
			}
		}
	}
	if len(want) < 5 {
		t.Fatalf("found only %d MCPGATE_* variables in the code: the search is broken", len(want))
	}

	if testing.Short() {
		t.Skip("-short: not building mcpgate to read serve's flags")
	}
	bin := filepath.Join(t.TempDir(), "mcpgate")
	build := exec.Command("go", "build", "-o", bin, "./cmd/mcpgate")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mcpgate: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("mcpgate serve --help: %v\n%s", err, out)
	}
	flags := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := helpFlag.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		flags++
		if !strings.Contains(text, "`--"+m[1]+"`") {
			t.Errorf("serve has the flag --%s, which %s does not name (Settings)", m[1], architecture)
		}
		if !strings.Contains(text, m[2]) {
			t.Errorf("serve reads %s (--%s), which %s does not name (Settings)", m[2], m[1], architecture)
		}
	}
	if flags < 10 {
		t.Fatalf("read only %d flags from mcpgate serve --help:\n%s", flags, out)
	}
}

// TestSecurityDocNamesRealTests: every test docs/security.md names as proof of a protection exists,
// so the threat table cannot cite a test that was renamed or removed.
func TestSecurityDocNamesRealTests(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs/security.md"))
	if err != nil {
		t.Fatal(err)
	}
	cited := map[string]bool{}
	for _, m := range regexp.MustCompile("`(Test[A-Za-z0-9_]+)").FindAllStringSubmatch(string(doc), -1) {
		cited[m[1]] = true
	}
	if len(cited) < 20 {
		t.Fatalf("docs/security.md cites %d tests; the threat table should cite each protection's test", len(cited))
	}
	defined := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]+)\(`)
	for _, f := range textFiles(t, func(p string) bool { return strings.HasSuffix(p, "_test.go") }) {
		for _, m := range decl.FindAllStringSubmatch(strings.Join(f.lines, "\n"), -1) {
			defined[m[1]] = true
		}
	}
	for name := range cited {
		if !defined[name] {
			t.Errorf("docs/security.md cites %s, which no test file defines", name)
		}
	}
}
