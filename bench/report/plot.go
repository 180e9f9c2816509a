package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/eventkit/eventkit/internal/benchkit"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// A chart is one bar chart: the RESULT values of one unit from one
// program, grouped by measure, one bar per system.
type chart struct {
	title, unit, file string
	measures          []string
	systems           []string
	values            map[[2]string]float64 // [system, measure] → value
}

// kinds are the charts drawn per program: its title, the file name's
// suffix, and which units it takes.
var kinds = []struct {
	what, slug string
	takes      func(unit string) bool
}{
	{"throughput", "throughput", func(u string) bool { return strings.HasSuffix(u, "/s") }},
	{"CPU per event", "cpu", func(u string) bool { return u == "µs/event" }},
	{"CPU per event", "cpu-ns", func(u string) bool { return u == "cpu-ns/event" }},
	{"latency", "latency", func(u string) bool { return u == "µs" }},
}

// drawPlots writes one PNG per program and kind that has values, and
// returns their paths relative to bench/report.
func drawPlots(runs []run, dir string) ([]string, error) {
	var files []string
	for _, r := range runs {
		if r.err != nil {
			continue
		}
		for _, k := range kinds {
			c := collect(r.name, r.lines, k.takes, k.what)
			if len(c.values) == 0 {
				continue
			}
			c.file = filepath.Join(dir, fmt.Sprintf("%s-%s.png", r.name, k.slug))
			if err := c.draw(); err != nil {
				return files, fmt.Errorf("%s: %w", c.file, err)
			}
			files = append(files, c.file)
		}
	}
	return files, nil
}

func collect(name string, lines []benchkit.Line, takes func(string) bool, what string) chart {
	c := chart{title: name + ": " + what, values: map[[2]string]float64{}}
	for _, l := range lines {
		if l.Kind != "RESULT" || !takes(l.Unit) {
			continue
		}
		if c.unit == "" {
			c.unit = l.Unit
		} else if c.unit != l.Unit {
			c.unit = "various units (see the table)" // e.g. cdc's rows/s beside events/s
		}
		if !slices.Contains(c.systems, l.System) {
			c.systems = append(c.systems, l.System)
		}
		if !slices.Contains(c.measures, l.Measure) {
			c.measures = append(c.measures, l.Measure)
		}
		c.values[[2]string{l.System, l.Measure}] = l.Value
	}
	return c
}

func (c chart) draw() error {
	p := plot.New()
	p.Title.Text = c.title
	p.Y.Label.Text = c.unit
	w := vg.Points(min(18, 120/float64(max(1, len(c.systems)))))
	for i, s := range c.systems {
		vals := make(plotter.Values, len(c.measures))
		for j, m := range c.measures {
			vals[j] = c.values[[2]string{s, m}]
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		bars.LineStyle.Width = 0
		bars.Color = plotutil.Color(i)
		bars.Offset = w * vg.Length(float64(i)-float64(len(c.systems)-1)/2)
		p.Add(bars)
		p.Legend.Add(s, bars)
	}
	p.Legend.Top = true
	top := 0.0
	for _, v := range c.values {
		top = max(top, v)
	}
	p.Y.Min, p.Y.Max = 0, top*1.3 // room for the legend above the bars
	p.NominalX(c.measures...)
	width := vg.Length(max(6, 1.2*float64(len(c.measures)*len(c.systems)/2+2))) * vg.Inch
	return p.Save(width, 4*vg.Inch, c.file)
}
