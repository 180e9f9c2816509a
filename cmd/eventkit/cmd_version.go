package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/eventkit/eventkit/internal/version"
)

func init() {
	commands["version"] = command{
		summary: "print the version of eventkit and of Go it was built with",
		run:     runVersion,
	}
}

// runVersion prints "eventkit VERSION (GOVERSION GOOS/GOARCH)", or with
// -short the version alone.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	short := fs.Bool("short", false, "print the version alone (v0.1.0)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *short {
		fmt.Fprintln(stdout, version.Get())
		return nil
	}
	fmt.Fprintln(stdout, version.String())
	return nil
}
