//go:build race

package doctest

// Under -race (as in scripts/test.sh), `go list -export` builds with -race
// too, so that it finds in the build cache the packages that the other
// tests' builds just compiled, instead of compiling them all again.
func init() { listFlags = append(listFlags, "-race") }
