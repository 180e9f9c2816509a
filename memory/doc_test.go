package memory_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docCopy marks a go block of the docs that is copied from a file of this
// package: <!-- memory/FILE.go --> before the block (and its go:prelude).
var docCopy = regexp.MustCompile(`^<!-- memory/(\w+\.go) -->$`)

// The worked example of docs/driver.md is this package's code: every block
// marked as copied from a file is found in it as it is (a block that starts
// with the package clause is the whole file).
func TestDocsShowTheCode(t *testing.T) {
	for _, doc := range []string{"driver.md", "transports.md"} {
		raw, err := os.ReadFile(filepath.Join("..", "docs", doc))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(raw), "\n")
		for i := 0; i < len(lines); i++ {
			m := docCopy.FindStringSubmatch(lines[i])
			if m == nil {
				continue
			}
			marker := i + 1
			for i < len(lines) && lines[i] != "```go" {
				i++
			}
			start := i + 1
			for i++; i < len(lines) && lines[i] != "```"; i++ {
			}
			if start > len(lines) || i == len(lines) {
				t.Fatalf("docs/%s:%d: no go block after the marker", doc, marker)
			}
			block := strings.Join(lines[start:i], "\n") + "\n"
			src, err := os.ReadFile(m[1])
			if err != nil {
				t.Fatalf("docs/%s:%d: %v", doc, marker, err)
			}
			whole := strings.HasPrefix(block, "package ")
			if whole && block != string(src) || !whole && !strings.Contains(string(src), block) {
				t.Errorf("docs/%s:%d: the block is not memory/%s's code as it is", doc, start, m[1])
			}
		}
	}
}
