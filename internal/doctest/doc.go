// Package doctest holds no code: its test compiles every ```go block of
// README.md and docs/*.md against the module's packages, so that a snippet
// that no longer matches the API fails `go test ./internal/doctest` with the
// Markdown file and line of the snippet.
//
// # Convention
//
// Every fenced block whose language is go (or golang) is compiled; a block
// that is not Go uses another language (text, sh, json, sql, ...). Nothing is
// skipped: a go block the test cannot classify fails.
//
// A block that starts with a package clause is a complete file: it is
// type-checked as it is, imports included.
//
// Any other block is a fragment: declarations (import, type, func, method,
// var, const) followed by statements, either part possibly empty. The test
// splits it at the first line from which the rest parses as statements: the
// lines before (the imports, funcs and methods, and what precedes them) go
// to package level, the rest into the body of a function that returns an
// error (so `if err != nil { return err }` works). In a fragment:
//
//   - packages are imported automatically from the identifiers used
//     (eventkit., memory., event., middleware., context., time., ...; the
//     fixed table is autoImports in doctest_test.go); a fragment may still
//     import a package itself (e.g. `import _ "modernc.org/sqlite"`), and
//     must when the package is not in the table;
//   - a local variable that is declared and not used is not an error;
//   - the names it uses but does not define (ctx, order, charge, ...) are
//     declared by a go:prelude HTML comment right before the block (only
//     blank lines in between), which the rendered Markdown does not show.
//
// For example, the README's tour is preceded by:
//
//	<!-- go:prelude
//	type Order struct{ ID string }
//	func charge(context.Context, Order) error { return nil }
//	ctx := context.Background(); var order Order
//	-->
//
// A prelude is split at the last line from which the rest parses as
// statements, so that all it can declare at package level is there (the
// fragment's methods may use its types) and only statements such as
// `ctx := context.Background()` start the function body; its parts come
// before the fragment's. A go:prelude comment that no go block follows, or
// an HTML comment with another go: directive, fails the test.
//
// The test type-checks (go/types) against export data from one
// `go list -export -deps` of the imported packages, which go builds into its
// ordinary build cache (under -race, with -race); the test writes no file.
package doctest
