// Command report runs every peer comparison in bench/ and writes what they
// measured into bench/RESULTS.md (between the markers
// "<!-- report:begin -->" and "<!-- report:end -->"), with the machine, the
// date, the load average and each command, and draws PNG plots into
// bench/report/plots: throughput per system beside its peers, latency
// percentiles, and CPU per event.
//
//	cd bench/report && go run . -quick   # a short version, under 10 minutes
//	cd bench/report && go run .          # the full version, under an hour
//
// Each bench program ends its output with RESULT and RATIO lines
// (internal/benchkit); the report reads only those, so a program's own
// human-readable output can change freely. A program whose servers are not
// up fails and is reported as failed with its last lines of output; the
// others still run. The raw output of each program is kept in
// bench/report/out (not committed).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	quick := flag.Bool("quick", false, "run the short version of every program (under 10 minutes)")
	only := flag.String("only", "", "comma-separated programs to run (memory,nats,kafka,kafka-bare,redis,amqp,mqtt,outbox,ingress,pipeline,webhook,tracing,eventstore,cdc); all when empty")
	results := flag.String("results", "../RESULTS.md", "the file whose report section is rewritten")
	dry := flag.Bool("n", false, "print the commands without running them")
	flag.Parse()

	progs := programs(*quick)
	if *only != "" {
		progs = selectPrograms(progs, strings.Split(*only, ","))
	}
	if *dry {
		for _, p := range progs {
			fmt.Println(p.command())
		}
		return
	}
	for _, d := range []string{"out", "plots"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fail(err)
		}
	}
	started := time.Now().UTC()
	runs := make([]run, 0, len(progs))
	for _, p := range progs {
		fmt.Fprintf(os.Stderr, "report: %s\n", p.command())
		r := p.run(filepath.Join("out", p.name+".txt"))
		if r.err != nil {
			fmt.Fprintf(os.Stderr, "report: %s failed: %v\n", p.name, r.err)
		}
		runs = append(runs, r)
	}
	plots, err := drawPlots(runs, "plots")
	if err != nil {
		fail(err)
	}
	section := render(machine(), started, *quick, runs, plots)
	if err := replaceSection(*results, section); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "report: wrote %s and %d plots in %s\n", *results, len(plots), time.Since(started).Round(time.Second))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "report:", err)
	os.Exit(1)
}
