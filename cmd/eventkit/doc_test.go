package main

import (
	"bytes"
	"context"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// commandNames returns the registered commands, sorted.
func commandNames() []string {
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// The banner, the package documentation and the README promise only the
// commands that exist: they once promised "replay" (which exists now) and
// "inspect".
func TestDocsPromiseOnlyWhatExists(t *testing.T) {
	var out bytes.Buffer
	run(context.Background(), []string{"help"}, &out, &out)
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	doc := f.Doc.Text()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"the usage": out.String(), "the package doc": doc, "README.md": string(readme)} {
		for _, word := range []string{"replay", "inspect"} {
			if _, exists := commands[word]; exists {
				continue // promised and kept (replay since issue 19)
			}
			if regexp.MustCompile(`(?i)\b`+word).MatchString(text) && what != "README.md" ||
				regexp.MustCompile(`eventkit `+word).MatchString(text) {
				t.Errorf("%s promises %q, which does not exist", what, word)
			}
		}
	}
	// The package doc names each command, in parentheses, and no other.
	var named []string
	for _, m := range regexp.MustCompile(`\(([a-z]+)\)`).FindAllStringSubmatch(doc, -1) {
		named = append(named, m[1])
	}
	sort.Strings(named)
	if !slices.Equal(named, commandNames()) {
		t.Errorf("the package doc names the commands %v; they are %v", named, commandNames())
	}
	// The usage lists every command.
	for _, n := range commandNames() {
		if !strings.Contains(out.String(), "\n  "+n+" ") {
			t.Errorf("the usage does not list %s:\n%s", n, out.String())
		}
	}
}
