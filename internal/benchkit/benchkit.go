// Package benchkit holds what the peer programs in bench/ share: process
// CPU time, medians, and the machine-readable lines that bench/report
// reads.
//
// Every bench program ends its output with lines of two kinds:
//
//	RESULT <system> <measure>=<value> <unit>
//	RATIO <system>/<peer> <measure>=<value>
//
// RESULT is one measured median of one system ("eventkit", "raw",
// "watermill", …, spelled as the program's own flags spell them); RATIO
// divides two of them measured in the same run. For throughputs a ratio
// above 1 means the system is faster than the peer; for costs (CPU per
// event, latency) a ratio below 1 means it is cheaper. The lines are
// written with Result and Ratio, never by hand, so that their shape
// stays one.
package benchkit

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Out is where Result and Ratio write; os.Stdout unless a test changes it.
var Out io.Writer = os.Stdout

// CPUTime returns the user plus system CPU time this process has used so
// far, or 0 when the operating system does not say.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Result writes the line "RESULT system measure=value unit".
func Result(system, measure string, value float64, unit string) {
	fmt.Fprintf(Out, "RESULT %s %s=%s %s\n", word(system), word(measure), num(value), unitWord(unit))
}

// Ratio writes the line "RATIO system/peer measure=value", value being
// system's figure divided by peer's. Nothing is written when the peer's
// figure is 0 (not measured).
func Ratio(system, peer, measure string, systemValue, peerValue float64) {
	if peerValue == 0 {
		return
	}
	fmt.Fprintf(Out, "RATIO %s/%s %s=%s\n", word(system), word(peer), word(measure), num(systemValue/peerValue))
}

// Check ends the program with the error's message and exit status 1 when
// err is not nil.
func Check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// word keeps a name to one field of the line: spaces, '=' and '/' would
// make it ambiguous.
func word(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '=', '/':
			return '_'
		}
		return r
	}, s)
}

// unitWord keeps a unit to one field; a unit may contain '/' (events/s).
func unitWord(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Join(strings.Fields(s), "_")
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100 || v <= -100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}
