// Command eventkit is eventkit's command line: it runs the server
// (serve), publishes events to it (pub), prints them live as they arrive
// (tail), reads the stored events back (read) and publishes a range of
// them again (replay), lists and re-drives dead letters (dlq), follows a
// flow of events across topics (probe), checks CloudEvents in the JSON
// format (validate), streams the changes of PostgreSQL tables as events
// (cdc), lists saga instances and shows their state and history (saga),
// runs pipelines defined in YAML (run) and prints its version (version).
//
// Everything it prints for people is escaped: control characters sent by
// a producer are shown, never acted on by the terminal.
//
// Usage:
//
//	eventkit <command> [flags]
//
// Run "eventkit help" for the list of commands. Each command lives in a file
// of its own (cmd_<name>.go) and registers itself in commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand of eventkit.
type command struct {
	summary string
	// run executes the command with its arguments (after the command name).
	// ctx ends on SIGINT or SIGTERM.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is filled by the init functions of the cmd_*.go files.
var commands = map[string]command{}

// errUsage reports bad command-line use; main prints it with the usage.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = []string{"version"}
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "eventkit: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := c.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		// The message may hold values from events, files or servers.
		fmt.Fprintln(stderr, printable(fmt.Sprintf("eventkit %s: %v", args[0], err)))
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "eventkit: the CloudEvents server and its command line.")
	fmt.Fprintln(w, "\nUsage: eventkit <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun \"eventkit <command> -h\" for a command's flags.")
}
