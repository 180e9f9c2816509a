package benchkit

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Line is one RESULT or RATIO line read back by Parse.
type Line struct {
	Kind    string // "RESULT" or "RATIO"
	System  string // the system measured
	Peer    string // RATIO only: the system divided by
	Measure string
	Value   float64
	Unit    string // RESULT only
}

// Parse reads the RESULT and RATIO lines of a bench program's output and
// skips every other line. A line that starts with one of the two words but
// does not have its shape is an error naming the line number.
func Parse(r io.Reader) ([]Line, error) {
	var out []Line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || (f[0] != "RESULT" && f[0] != "RATIO") {
			continue
		}
		l, err := parseLine(f)
		if err != nil {
			return out, fmt.Errorf("line %d: %q: %w", n, sc.Text(), err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

func parseLine(f []string) (Line, error) {
	l := Line{Kind: f[0]}
	want := 3
	if l.Kind == "RESULT" {
		want = 4
	}
	if len(f) != want {
		return l, fmt.Errorf("%s wants %d fields, has %d", l.Kind, want, len(f))
	}
	l.System = f[1]
	if l.Kind == "RATIO" {
		sys, peer, ok := strings.Cut(f[1], "/")
		if !ok || sys == "" || peer == "" {
			return l, fmt.Errorf("RATIO wants system/peer, has %q", f[1])
		}
		l.System, l.Peer = sys, peer
	} else {
		l.Unit = f[3]
	}
	m, v, ok := strings.Cut(f[2], "=")
	if !ok || m == "" {
		return l, fmt.Errorf("wants measure=value, has %q", f[2])
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return l, fmt.Errorf("value %q: %w", v, err)
	}
	l.Measure, l.Value = m, x
	return l, nil
}
