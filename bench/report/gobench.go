package main

import (
	"bufio"
	"bytes"
	"regexp"
	"strconv"
	"strings"

	"github.com/eventkit/eventkit/internal/benchkit"
)

// ratioSpec names a RATIO the report computes from two RESULT lines of a
// `go test -bench` program: figure a divided by figure b, written as
// "RATIO system/peer measure=…".
type ratioSpec struct {
	system, peer, measure string
	a, b                  figure
}

// figure names one RESULT line: the benchmark and its reported unit.
type figure struct{ bench, unit string }

// benchLine matches "BenchmarkName/sub-2   N   v unit   v unit …".
var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// parseGoBench turns the lines of `go test -bench` output into RESULT
// lines: the system is the benchmark's name without "Benchmark" and the
// GOMAXPROCS suffix, the measure each reported unit (ns/op, a custom
// metric, …), the unit the same.
func parseGoBench(out []byte) []benchkit.Line {
	var lines []benchkit.Line
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			lines = append(lines, benchkit.Line{Kind: "RESULT", System: m[1], Measure: f[i+1], Value: v, Unit: f[i+1]})
		}
	}
	return lines
}

// addRatios appends the RATIO lines of specs whose two figures are both
// in lines.
func addRatios(lines []benchkit.Line, specs []ratioSpec) []benchkit.Line {
	find := func(system, measure string) (float64, bool) {
		for _, l := range lines {
			if l.Kind == "RESULT" && l.System == system && l.Measure == measure {
				return l.Value, true
			}
		}
		return 0, false
	}
	for _, s := range specs {
		a, ok1 := find(s.a.bench, s.a.unit)
		b, ok2 := find(s.b.bench, s.b.unit)
		if ok1 && ok2 && b != 0 {
			lines = append(lines, benchkit.Line{Kind: "RATIO", System: s.system, Peer: s.peer, Measure: s.measure, Value: a / b})
		}
	}
	return lines
}
