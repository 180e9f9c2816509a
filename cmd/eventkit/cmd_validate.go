package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/eventkit/eventkit"
)

func init() {
	commands["validate"] = command{
		summary: "check CloudEvents in the JSON format (events, batches or one per line) against the specification",
		run:     runValidate,
	}
}

// runValidate reads CloudEvents JSON from files or standard input and
// reports, per event, whether it is valid; it fails if any is not.
func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quiet := fs.Bool("q", false, "print only invalid events")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: eventkit validate [-q] [FILE ...]\n\nReads CloudEvents in the JSON format from each FILE (or standard input):\na single event, a batch (JSON array), or one event per line.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	inputs := fs.Args()
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	bad := 0
	total := 0
	for _, name := range inputs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var b []byte
		var err error
		if name == "-" {
			b, err = io.ReadAll(io.LimitReader(os.Stdin, 64<<20))
		} else {
			b, err = os.ReadFile(name)
		}
		if err != nil {
			return err
		}
		results := validateDocument(b)
		for _, r := range results {
			total++
			if r.err != nil {
				bad++
				fmt.Fprintln(stdout, printable(fmt.Sprintf("%s:%s: invalid: %v", name, r.where, r.err)))
			} else if !*quiet {
				fmt.Fprintln(stdout, printable(fmt.Sprintf("%s:%s: valid %s (type %s)", name, r.where, r.id, r.typ)))
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d events invalid", bad, total)
	}
	if total == 0 {
		return errors.New("no events found")
	}
	return nil
}

type validation struct {
	where, id, typ string
	err            error
}

func validateDocument(b []byte) []validation {
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 {
		return nil
	}
	if trimmed[0] == '[' {
		events, err := eventkit.UnmarshalBatch(trimmed)
		if err != nil {
			return []validation{{where: "batch", err: err}}
		}
		out := make([]validation, len(events))
		for i, e := range events {
			out[i] = validation{where: fmt.Sprintf("batch[%d]", i), id: e.ID(), typ: e.Type()}
		}
		return out
	}
	if e, err := eventkit.UnmarshalEvent(trimmed); err == nil {
		return []validation{{where: "1", id: e.ID(), typ: e.Type()}}
	} else if !bytes.Contains(trimmed, []byte("\n")) {
		return []validation{{where: "1", err: err}}
	}
	var out []validation
	sc := bufio.NewScanner(bytes.NewReader(trimmed))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		l := bytes.TrimSpace(sc.Bytes())
		if len(l) == 0 {
			continue
		}
		e, err := eventkit.UnmarshalEvent(l)
		out = append(out, validation{where: fmt.Sprint(line), id: e.ID(), typ: e.Type(), err: err})
	}
	if err := sc.Err(); err != nil {
		out = append(out, validation{where: fmt.Sprint(line + 1), err: err})
	}
	return out
}
