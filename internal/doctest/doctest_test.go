package doctest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// autoImports maps the package names a fragment may use without importing
// them to their import paths. Keep it small and unambiguous: one name, one
// package.
var autoImports = map[string]string{
	// the module
	"eventkit":     "github.com/eventkit/eventkit",
	"amqp":         "github.com/eventkit/eventkit/amqp",
	"binding":      "github.com/eventkit/eventkit/binding",
	"cdc":          "github.com/eventkit/eventkit/cdc",
	"cehttp":       "github.com/eventkit/eventkit/cehttp",
	"command":      "github.com/eventkit/eventkit/command",
	"dedup":        "github.com/eventkit/eventkit/dedup",
	"es":           "github.com/eventkit/eventkit/es",
	"esprom":       "github.com/eventkit/eventkit/es/esprom",
	"eventkittest": "github.com/eventkit/eventkit/eventkittest",
	"hub":          "github.com/eventkit/eventkit/hub",
	"kafka":        "github.com/eventkit/eventkit/kafka",
	"memory":       "github.com/eventkit/eventkit/memory",
	"middleware":   "github.com/eventkit/eventkit/middleware",
	"breaker":      "github.com/eventkit/eventkit/middleware/breaker",
	"prom":         "github.com/eventkit/eventkit/middleware/prom",
	"schema":       "github.com/eventkit/eventkit/middleware/schema",
	"tracing":      "github.com/eventkit/eventkit/middleware/tracing",
	"mqtt":         "github.com/eventkit/eventkit/mqtt",
	"nats":         "github.com/eventkit/eventkit/nats",
	"natsserver":   "github.com/eventkit/eventkit/nats/natsserver",
	"outbox":       "github.com/eventkit/eventkit/outbox",
	"postgres":     "github.com/eventkit/eventkit/postgres",
	"pgcdc":        "github.com/eventkit/eventkit/postgres/pgcdc",
	"pgqueue":      "github.com/eventkit/eventkit/postgres/pgqueue",
	"redis":        "github.com/eventkit/eventkit/redis",
	"sqlite":       "github.com/eventkit/eventkit/sqlite",
	"topic":        "github.com/eventkit/eventkit/topic",
	// dependencies
	"cloudevents": "github.com/cloudevents/sdk-go/v2",
	"event":       "github.com/cloudevents/sdk-go/v2/event",
	"gobreaker":   "github.com/sony/gobreaker/v2",
	"goredis":     "github.com/redis/go-redis/v9", // imported as goredis: redis is ours
	"natsgo":      "github.com/nats-io/nats.go",   // imported as natsgo: nats is ours
	"pgx":         "github.com/jackc/pgx/v5",
	"pgxpool":     "github.com/jackc/pgx/v5/pgxpool",
	"prometheus":  "github.com/prometheus/client_golang/prometheus",
	"sdktrace":    "go.opentelemetry.io/otel/sdk/trace",
	"trace":       "go.opentelemetry.io/otel/trace",
	"uuid":        "github.com/google/uuid",
	// the standard library
	"context": "context",
	"errors":  "errors",
	"fmt":     "fmt",
	"http":    "net/http",
	"json":    "encoding/json",
	"log":     "log",
	"os":      "os",
	"signal":  "os/signal",
	"slog":    "log/slog",
	"sql":     "database/sql",
	"strings": "strings",
	"sync":    "sync",
	"time":    "time",
}

// listFlags are build flags for `go list -export` (see race_test.go).
var listFlags []string

// block is one ```go block of a Markdown file.
type block struct {
	file    string // relative to the module root, slash-separated
	line    int    // line of the first code line
	code    []string
	prelude []string // lines of the go:prelude comment, if any
	preLine int      // line of the first prelude line
}

func (b *block) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

func TestDocSnippets(t *testing.T) {
	root := moduleRoot(t)
	files := []string{"README.md"}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		rel, _ := filepath.Rel(root, d)
		files = append(files, filepath.ToSlash(rel))
	}

	var blocks []*block
	for _, f := range files {
		bs, errs := extract(root, f)
		for _, err := range errs {
			t.Error(err)
		}
		blocks = append(blocks, bs...)
	}
	if len(blocks) == 0 {
		t.Fatal("no go blocks found in README.md and docs/*.md: is the extractor broken?")
	}

	// Build each block's source, then type-check them all against export
	// data that one `go list -export` produces.
	type unit struct {
		b    *block
		src  string
		frag bool
	}
	var units []unit
	paths := map[string]bool{}
	for _, b := range blocks {
		src, frag, err := generate(b)
		if err != nil {
			t.Error(err)
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), "snippet.go", src, parser.ImportsOnly)
		if err != nil {
			t.Errorf("%s: %v", b, err)
			continue
		}
		for _, s := range f.Imports {
			p, _ := strconv.Unquote(s.Path.Value)
			paths[p] = true
		}
		units = append(units, unit{b, src, frag})
	}
	exports := exportData(t, root, paths)
	imp := importer.ForCompiler(token.NewFileSet(), "gc", func(p string) (io.ReadCloser, error) {
		file, ok := exports[p]
		if !ok || file == "" {
			return nil, fmt.Errorf("no export data for %q", p)
		}
		return os.Open(file)
	})
	for _, u := range units {
		for _, err := range check(u.src, u.frag, imp) {
			t.Errorf("%s (snippet at %s)", err, u.b)
		}
	}
}

func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

var (
	fenceRE     = regexp.MustCompile("^([ \t]*)(`{3,}|~{3,})[ \t]*([^ \t`]*)")
	directiveRE = regexp.MustCompile(`^[ \t]*<!--[ \t]*go:([A-Za-z]*)`)
)

// extract returns the go blocks of one Markdown file, with their preludes.
func extract(root, file string) ([]*block, []error) {
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
	if err != nil {
		return nil, []error{err}
	}
	var (
		blocks []*block
		errs   []error
		lines  []string
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	var (
		prelude  []string
		preLine  int // line of the go:prelude comment; 0: none pending
		preFirst int // line of the prelude's first line of code
	)
	for i := 0; i < len(lines); i++ {
		ln := lines[i]
		if m := directiveRE.FindStringSubmatch(ln); m != nil {
			at := i + 1
			if m[1] != "prelude" {
				errs = append(errs, fmt.Errorf("%s:%d: unknown directive go:%s (only go:prelude exists)", file, at, m[1]))
				continue
			}
			if preLine != 0 {
				errs = append(errs, fmt.Errorf("%s:%d: go:prelude not followed by a go block", file, preLine))
			}
			// The comment's text after "go:prelude", up to "-->".
			rest := ln[strings.Index(ln, "go:prelude")+len("go:prelude"):]
			var body []string
			first := at
			for {
				if j := strings.Index(rest, "-->"); j >= 0 {
					body = append(body, rest[:j])
					break
				}
				body = append(body, rest)
				i++
				if i == len(lines) {
					errs = append(errs, fmt.Errorf("%s:%d: go:prelude comment not closed", file, at))
					return blocks, errs
				}
				rest = lines[i]
			}
			if strings.TrimSpace(body[0]) == "" { // <!-- go:prelude on a line of its own
				body, first = body[1:], first+1
			}
			prelude, preLine, preFirst = body, at, first
			continue
		}
		m := fenceRE.FindStringSubmatch(ln)
		if m == nil {
			if preLine != 0 && strings.TrimSpace(ln) != "" {
				errs = append(errs, fmt.Errorf("%s:%d: go:prelude not followed by a go block", file, preLine))
				preLine = 0
			}
			continue
		}
		indent, fence, lang := m[1], m[2], strings.ToLower(m[3])
		start := i + 1
		var code []string
		closed := false
		for i++; i < len(lines); i++ {
			t := strings.TrimSpace(lines[i])
			if strings.HasPrefix(t, fence[:1]) && strings.Trim(t, fence[:1]) == "" && len(t) >= len(fence) {
				closed = true
				break
			}
			code = append(code, strings.TrimPrefix(lines[i], indent))
		}
		isGo := lang == "go" || lang == "golang"
		if !closed {
			errs = append(errs, fmt.Errorf("%s:%d: code block not closed", file, start))
		}
		if !isGo {
			if preLine != 0 {
				errs = append(errs, fmt.Errorf("%s:%d: go:prelude followed by a %q block, not a go block", file, preLine, lang))
				preLine = 0
			}
			continue
		}
		b := &block{file: file, line: start + 1, code: code}
		if preLine != 0 {
			b.prelude, b.preLine = prelude, preFirst
			preLine = 0
		}
		blocks = append(blocks, b)
	}
	if preLine != 0 {
		errs = append(errs, fmt.Errorf("%s:%d: go:prelude not followed by a go block", file, preLine))
	}
	return blocks, errs
}

var (
	packageRE = regexp.MustCompile(`^\s*package\s+\w+`)
	majorRE   = regexp.MustCompile(`^v[0-9]+$`)
)

// generate returns the Go source of a block: the block itself when it is a
// complete file, else the fragment placed as the package doc describes.
// Line directives make positions point into the Markdown file.
func generate(b *block) (src string, frag bool, err error) {
	for _, l := range b.code {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "//") {
			continue
		}
		if packageRE.MatchString(l) {
			return directive(b.file, b.line) + strings.Join(b.code, "\n") + "\n", false, nil
		}
		break
	}
	preImports, preDecls, preStmts, err := split(b.file, b.preLine, b.prelude, true)
	if err != nil {
		return "", true, fmt.Errorf("%s: go:prelude: %v", b, err)
	}
	imports, decls, stmts, err := split(b.file, b.line, b.code, false)
	if err != nil {
		return "", true, fmt.Errorf("%s: go block is neither a file (package clause) nor declarations followed by statements: %v", b, err)
	}
	body := "package snippet\n" + preImports + imports + preDecls + decls +
		"\nfunc _() error {\n" + preStmts + stmts + "\nreturn nil\n}\n"

	// Import the packages of autoImports that the code uses and does not
	// import or declare itself.
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "snippet.go", body, 0)
	if err != nil {
		return "", true, fmt.Errorf("%s: %v", b, err)
	}
	declared := map[string]bool{}
	for _, s := range f.Imports {
		p, _ := strconv.Unquote(s.Path.Value)
		name := path.Base(p)
		if majorRE.MatchString(name) {
			name = path.Base(path.Dir(p))
		}
		if s.Name != nil {
			name = s.Name.Name
		}
		declared[name] = true
	}
	unresolved := map[*ast.Ident]bool{}
	for _, id := range f.Unresolved {
		unresolved[id] = true
	}
	need := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && unresolved[id] && !declared[id.Name] && autoImports[id.Name] != "" {
				need[id.Name] = true
			}
		}
		return true
	})
	var names []string
	for n := range need {
		names = append(names, n)
	}
	sort.Strings(names)
	auto := ""
	for _, n := range names {
		auto += fmt.Sprintf("import %s %q\n", n, autoImports[n])
	}
	return "package snippet\n" + auto + strings.TrimPrefix(body, "package snippet\n"), true, nil
}

func directive(file string, line int) string { return fmt.Sprintf("//line %s:%d\n", file, line) }

// split splits the lines of a fragment (first line at file:line) at a line
// boundary where the head parses as declarations and the tail as
// statements: the first such boundary for a fragment (only what must be at
// package level is), the last one for a prelude (all it declares is at
// package level, so that the fragment's methods can use its types). It
// returns the head's imports and other declarations, and the tail, each
// preceded by a line directive.
func split(file string, line int, code []string, last bool) (imports, decls, stmts string, err error) {
	if len(code) == 0 {
		return "", "", "", nil
	}
	var firstErr error
	for i := 0; i <= len(code); i++ {
		k := i
		if last {
			k = len(code) - i
		}
		head := strings.Join(code[:k], "\n")
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, "snippet.go", "package snippet\n"+directive(file, line)+head+"\n", parser.SkipObjectResolution)
		if err != nil {
			continue
		}
		tail := directive(file, line+k) + strings.Join(code[k:], "\n") + "\n"
		if _, err := parser.ParseFile(token.NewFileSet(), "snippet.go", "package snippet\nfunc _() error {\n"+tail+"}\n", parser.SkipObjectResolution); err != nil {
			if k == 0 {
				firstErr = err
			}
			continue
		}
		// Imports come first in a Go file: cut them from the head.
		end := 0 // lines of code[:k] that the imports take
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.IMPORT {
				end = fset.Position(g.End()).Line - line + 1
			}
		}
		if end > 0 {
			imports = directive(file, line) + strings.Join(code[:end], "\n") + "\n"
		}
		if k > end {
			decls = directive(file, line+end) + strings.Join(code[end:k], "\n") + "\n"
		}
		if k < len(code) {
			stmts = tail
		}
		return imports, decls, stmts, nil
	}
	if firstErr == nil {
		// The statements parse only after a head that does not: report
		// the whole fragment as statements.
		_, firstErr = parser.ParseFile(token.NewFileSet(), "snippet.go", "package snippet\nfunc _() error {\n"+directive(file, line)+strings.Join(code, "\n")+"\n}\n", parser.SkipObjectResolution)
	}
	return "", "", "", firstErr
}

// check type-checks one generated file and returns its errors, with
// positions in the Markdown file.
func check(src string, frag bool, imp types.Importer) []error {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "snippet.go", src, parser.ParseComments)
	if err != nil {
		return []error{err}
	}
	var errs []error
	conf := types.Config{
		Importer: imp,
		Error: func(err error) {
			if te, ok := err.(types.Error); ok && frag && strings.Contains(te.Msg, "declared and not used") {
				return
			}
			errs = append(errs, err)
		},
	}
	conf.Check(f.Name.Name, fset, []*ast.File{f}, nil)
	return errs
}

// exportData builds the packages that the snippets import (and their
// dependencies) with `go list -export` and returns the export data file of
// each package. The files live in the build cache that `go build` uses.
func exportData(t *testing.T, root string, paths map[string]bool) map[string]string {
	args := append([]string{"list", "-e", "-export", "-deps", "-json=ImportPath,Export,Error"}, listFlags...)
	n := len(args)
	for p := range paths {
		args = append(args, p)
	}
	sort.Strings(args[n:])
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export: %v\n%s", err, stderr.Bytes())
	}
	exports := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct {
			ImportPath, Export string
			Error              *struct{ Err string }
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Error != nil && paths[p.ImportPath] {
			t.Errorf("a snippet imports %s: %s", p.ImportPath, p.Error.Err)
		}
		exports[p.ImportPath] = p.Export
	}
	return exports
}
