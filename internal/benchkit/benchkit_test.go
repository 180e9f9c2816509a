package benchkit

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := append([]float64(nil), c.in...)
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Fatalf("Median reordered its input: %v", c.in)
			}
		}
	}
}

// What Result and Ratio write, Parse reads back.
func TestLinesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	Out = &buf
	defer func() { Out = os.Stdout }()
	buf.WriteString("nats bench: 100 events\n  round 1 eventkit ...\n")
	Result("eventkit", "consume", 212345.6, "events/s")
	Result("raw nats", "cpu per event", 1.234, "µs")
	Ratio("eventkit", "watermill", "consume", 212345.6, 200000)
	Ratio("eventkit", "raw", "publish", 1, 0) // not measured: no line
	lines, err := Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := []Line{
		{Kind: "RESULT", System: "eventkit", Measure: "consume", Value: 212346, Unit: "events/s"},
		{Kind: "RESULT", System: "raw_nats", Measure: "cpu_per_event", Value: 1.23, Unit: "µs"},
		{Kind: "RATIO", System: "eventkit", Peer: "watermill", Measure: "consume", Value: 1.06},
	}
	if len(lines) != len(want) {
		t.Fatalf("parsed %d lines, want %d: %+v", len(lines), len(want), lines)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, lines[i], want[i])
		}
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	for _, in := range []string{
		"RATIO eventkit consume=1",
		"RATIO eventkit/raw consume",
		"RESULT eventkit consume=x events/s",
		"RESULT eventkit consume=1",
	} {
		if _, err := Parse(strings.NewReader("ok\n" + in + "\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("Parse(%q) = %v, want an error naming line 2", in, err)
		}
	}
}
