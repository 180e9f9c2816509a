package doctest

import (
	"go/importer"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHarness checks that the harness reports what it must, with the
// Markdown file and line: a type error, a block it cannot classify, a
// prelude comment that no go block follows, an unknown directive.
func TestHarness(t *testing.T) {
	dir := t.TempDir()
	md := "# T\n\n" + // lines 1-2
		"<!-- go:prelude\nn := 1\n-->\n" + // 3-5
		"```go\nvar s string = n\n```\n" + // 6-8: type error at line 7
		"\n```go\nif x { ... }\n```\n" + // 9-12: not Go at line 11
		"<!-- go:prelude var x int -->\n\ntext\n" + // 13-15: orphan prelude at 13
		"<!-- go:skip -->\n" + // 16: unknown directive
		"```go\npackage p\n\nfunc F() {}\n```\n" + // 17-21: a complete file, fine
		"```go\ntype T struct{}\n\nfunc (T) M() {}\n\nt := T{}\nt.M()\nfmt.Println(time.Second)\n```\n" // 22-30: decls + stmts, fine
	if err := os.WriteFile(filepath.Join(dir, "x.md"), []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	blocks, errs := extract(dir, "x.md")
	var got []string
	for _, err := range errs {
		got = append(got, err.Error())
	}
	if len(blocks) != 4 {
		t.Fatalf("got %d blocks, want 4", len(blocks))
	}
	exports := exportData(t, moduleRoot(t), map[string]bool{"fmt": true, "time": true})
	imp := importer.ForCompiler(token.NewFileSet(), "gc", func(p string) (io.ReadCloser, error) { return os.Open(exports[p]) })
	for _, b := range blocks {
		src, frag, err := generate(b)
		if err != nil {
			got = append(got, err.Error())
			continue
		}
		for _, err := range check(src, frag, imp) {
			got = append(got, err.Error())
		}
	}
	want := []string{
		"x.md:13: go:prelude not followed by a go block",
		"x.md:16: unknown directive go:skip",
		"x.md:7: cannot use n",         // the prelude declared n
		"x.md:11: go block is neither", // expected statement, found '...'
	}
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("error %d = %q, want it to contain %q", i, got[i], want[i])
		}
	}
}
