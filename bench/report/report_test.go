package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit/internal/benchkit"
)

// The section replaces itself on a second run and leaves the hand-written
// text around it alone.
func TestReplaceSectionKeepsHandText(t *testing.T) {
	file := filepath.Join(t.TempDir(), "RESULTS.md")
	if err := os.WriteFile(file, []byte("# Results\n\nhand text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runs := []run{{program: program{name: "memory", dir: "memory", about: "bus"}, started: time.Now(),
		lines: []benchkit.Line{{Kind: "RESULT", System: "eventkit", Measure: "end-to-end", Value: 1234567, Unit: "events/s"},
			{Kind: "RATIO", System: "eventkit", Peer: "watermill", Measure: "end-to-end", Value: 9.25}}}}
	for i := 0; i < 2; i++ {
		if err := replaceSection(file, render("host", time.Now(), true, runs, nil)); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(file)
	s := string(b)
	if !strings.HasPrefix(s, "# Results\n\nhand text\n") {
		t.Errorf("hand text changed:\n%s", s)
	}
	if n := strings.Count(s, beginMarker); n != 1 {
		t.Errorf("%d sections after two runs, want 1:\n%s", n, s)
	}
	for _, want := range []string{"| eventkit | end-to-end | 1,234,567 | events/s |", "`RATIO eventkit/watermill end-to-end=9.25`"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in:\n%s", want, s)
		}
	}
}

func TestReplaceSectionRefusesBrokenMarkers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "RESULTS.md")
	if err := os.WriteFile(file, []byte(endMarker+"\n"+beginMarker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := replaceSection(file, "x"); err == nil {
		t.Fatal("markers out of order were accepted")
	}
}

func TestDrawPlots(t *testing.T) {
	runs := []run{{program: program{name: "nats"}, lines: []benchkit.Line{
		{Kind: "RESULT", System: "eventkit", Measure: "consume", Value: 200000, Unit: "events/s"},
		{Kind: "RESULT", System: "raw", Measure: "consume", Value: 210000, Unit: "events/s"},
		{Kind: "RESULT", System: "eventkit", Measure: "publish-cpu", Value: 4.2, Unit: "µs/event"},
	}}}
	files, err := drawPlots(runs, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("drew %v, want a throughput and a CPU plot", files)
	}
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestParseGoBench(t *testing.T) {
	out := []byte(`goos: linux
BenchmarkMiddlewareChain/direct/tracing-2             	    3000	      5000 ns/op	      3310 cpu-ns/event	    1377 B/op	       5 allocs/op
BenchmarkSpanReference-2                              	    3000	       769.9 ns/op	       692.7 cpu-ns/event	     944 B/op	       3 allocs/op
PASS
`)
	lines := addRatios(parseGoBench(out), []ratioSpec{{"tracing", "bare-span", "cpu-per-event",
		figure{"MiddlewareChain/direct/tracing", "cpu-ns/event"}, figure{"SpanReference", "cpu-ns/event"}}})
	if len(lines) != 9 {
		t.Fatalf("got %d lines, want 8 RESULT and 1 RATIO: %+v", len(lines), lines)
	}
	r := lines[8]
	if r.Kind != "RATIO" || r.System != "tracing" || r.Peer != "bare-span" || r.Value < 4.77 || r.Value > 4.79 {
		t.Errorf("ratio = %+v, want tracing/bare-span 3310/692.7", r)
	}
	if l := lines[1]; l.System != "MiddlewareChain/direct/tracing" || l.Measure != "cpu-ns/event" || l.Value != 3310 {
		t.Errorf("second line = %+v", l)
	}
}
