// Command flakecount reads the output of `go test -json` (from standard
// input, one or several runs of the same packages concatenated) and
// reports, for every test that failed at least once, how many of its runs
// failed. A package that failed outside any test (a panic, a timeout, a
// build error, TestMain) counts as a failure of "(package)".
//
// scripts/test.sh -stress N runs it; by hand:
//
//	go test -race -count=20 -json ./nats | go run ./internal/flakecount
//
// It prints the plain test output to standard error as it arrives when
// given -v, only the packages' results (and build errors) with -progress,
// and the output of each failing test's first failure at the end. The exit status is 1 when any test or package failed, 2 when the
// input could not be read.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type key struct{ pkg, test string }

type count struct {
	runs, fails int
	firstFail   []string // output of the first failed run
}

// maxLines bounds the output kept for one failure.
const maxLines = 60

func main() {
	verbose := flag.Bool("v", false, "copy the tests' output to standard error")
	progress := flag.Bool("progress", false, "print the packages' results to standard error")
	flag.Parse()
	counts, err := read(os.Stdin, *verbose, *progress)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flakecount:", err)
		os.Exit(2)
	}
	if report(os.Stdout, counts) {
		os.Exit(1)
	}
}

func read(r io.Reader, verbose, progress bool) (map[key]*count, error) {
	counts := map[key]*count{}
	running := map[key][]string{}   // output of the current run of each test, and of each package
	testFailed := map[string]bool{} // a test of the package's current run failed
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			// Not test2json output (a build error printed by go test).
			if verbose || progress {
				fmt.Fprintf(os.Stderr, "%s\n", line)
			}
			continue
		}
		k := key{ev.Package, ev.Test}
		if ev.Test == "" {
			k.test = "(package)"
		}
		switch ev.Action {
		case "run":
			get(counts, k).runs++
			running[k] = running[k][:0]
		case "output":
			if verbose || progress && ev.Test == "" && (strings.HasPrefix(ev.Output, "ok  ") || strings.HasPrefix(ev.Output, "FAIL\t")) {
				fmt.Fprint(os.Stderr, ev.Output)
			}
			out := running[k]
			if ev.Test == "" && len(out) == maxLines {
				// A package's own output: keep the end (a panic, a timeout).
				out = append(out[:0], out[1:]...)
			}
			if len(out) < maxLines {
				running[k] = append(out, ev.Output)
			}
		case "pass", "skip":
			if ev.Test == "" {
				get(counts, k).runs++
				endPackage(running, testFailed, ev.Package)
			} else {
				delete(running, k)
			}
		case "fail":
			c := get(counts, k)
			if ev.Test == "" {
				// The package's result counts as a run of "(package)", and
				// as a failure only when no test of the run failed (a
				// panic, a timeout, TestMain, a build error).
				c.runs++
				if !testFailed[ev.Package] {
					c.fails++
					if c.firstFail == nil {
						c.firstFail = slices.Clone(running[k])
					}
				}
				endPackage(running, testFailed, ev.Package)
				break
			}
			testFailed[ev.Package] = true
			c.fails++
			if c.firstFail == nil {
				c.firstFail = slices.Clone(running[k])
			}
			delete(running, k)
		}
	}
	return counts, sc.Err()
}

func get(m map[key]*count, k key) *count {
	c := m[k]
	if c == nil {
		c = &count{}
		m[k] = c
	}
	return c
}

// endPackage forgets the output of a package's run that ended.
func endPackage(running map[key][]string, testFailed map[string]bool, pkg string) {
	for k := range running {
		if k.pkg == pkg {
			delete(running, k)
		}
	}
	delete(testFailed, pkg)
}

// report prints the failing tests, most failures first; it reports whether
// there was any.
func report(w io.Writer, counts map[key]*count) bool {
	var failing []key
	tests := 0
	for k, c := range counts {
		if k.test != "(package)" {
			tests++
		}
		if c.fails > 0 {
			failing = append(failing, k)
		}
	}
	slices.SortFunc(failing, func(a, b key) int {
		if d := counts[b].fails - counts[a].fails; d != 0 {
			return d
		}
		if c := strings.Compare(a.pkg, b.pkg); c != 0 {
			return c
		}
		return strings.Compare(a.test, b.test)
	})
	if len(failing) == 0 {
		fmt.Fprintf(w, "flakecount: no failure (%d tests)\n", tests)
		return false
	}
	fmt.Fprintf(w, "flakecount: %d of %d tests failed at least once\n", len(failing), tests)
	fmt.Fprintf(w, "%7s %5s  %s\n", "FAILED", "RUNS", "TEST")
	for _, k := range failing {
		c := counts[k]
		fmt.Fprintf(w, "%7d %5d  %s %s\n", c.fails, c.runs, k.pkg, k.test)
	}
	for _, k := range failing {
		if out := counts[k].firstFail; len(out) > 0 {
			fmt.Fprintf(w, "\n--- first failure of %s %s:\n%s", k.pkg, k.test, strings.Join(out, ""))
		}
	}
	return true
}
