package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventkit/eventkit/postgres"
	"github.com/eventkit/eventkit/saga"
	"github.com/jackc/pgx/v5/pgxpool"
)

func init() {
	commands["saga"] = command{
		summary: "list saga instances, or show one with its state and history (PostgreSQL saga store)",
		run:     runSaga,
	}
}

// sagaOptions are the flags of eventkit saga.
type sagaOptions struct {
	dsn, table, name, status, after string
	limit                           int
}

// flags returns the flag set that fills o.
func (o *sagaOptions) flags(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("saga", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.dsn, "dsn", os.Getenv("EVENTKIT_POSTGRES_URL"), "PostgreSQL `URL` of the saga store (default: $EVENTKIT_POSTGRES_URL)")
	fs.StringVar(&o.table, "table", "eventkit_sagas", "the store's `table` (may be schema-qualified)")
	fs.StringVar(&o.name, "saga", "", "the saga's `name` (required)")
	fs.StringVar(&o.status, "status", "", "list only the instances in this `status` (running, compensating, completed, compensated)")
	fs.StringVar(&o.after, "after", "", "list the instances whose id sorts after `id` (paging)")
	fs.IntVar(&o.limit, "limit", 100, "list at most `n` instances")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: eventkit saga list --saga NAME [--status S] [--after ID] [--limit N] [--dsn URL] [--table T]\n       eventkit saga show --saga NAME [--dsn URL] [--table T] ID\n\nshow prints the instance as JSON: status, state, completed steps, deadline and history.")
		fs.PrintDefaults()
	}
	return fs
}

// runSaga lists the instances of a saga, or shows one, read from a
// postgres.SagaStore.
func runSaga(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o sagaOptions
	fs := o.flags(stderr)
	if len(args) == 0 || (args[0] != "list" && args[0] != "show") {
		fs.Usage()
		return fmt.Errorf("%w: want list or show", errUsage)
	}
	verb := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	wantArgs := map[string]int{"list": 0, "show": 1}[verb]
	switch {
	case fs.NArg() != wantArgs:
		return fmt.Errorf("%w: saga %s takes %d argument(s)", errUsage, verb, wantArgs)
	case o.name == "" || o.dsn == "":
		return fmt.Errorf("%w: --saga and --dsn (or EVENTKIT_POSTGRES_URL) are required", errUsage)
	}
	pool, err := pgxpool.New(ctx, o.dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	ob, err := postgres.NewOutbox(pool) // not used: the store is only read
	if err != nil {
		return err
	}
	store := postgres.NewSagaStore(pool, ob, o.table)
	if verb == "show" {
		return sagaShow(ctx, store, o.name, fs.Arg(0), stdout)
	}
	recs, err := store.List(ctx, o.name, saga.Filter{Status: saga.Status(o.status), After: o.after, Limit: o.limit})
	if err != nil {
		return err
	}
	sagaList(recs, stdout)
	return nil
}

// sagaList prints one line per instance.
func sagaList(recs []saga.Record, stdout io.Writer) {
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATUS\tVERSION\tUPDATED\tDEADLINE\tDONE")
	for _, r := range recs {
		deadline := "-"
		if !r.Deadline.IsZero() {
			deadline = r.Deadline.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", printable(r.ID), r.Status, r.Version,
			r.Updated.UTC().Format(time.RFC3339), deadline, printable(strings.Join(r.Done, ",")))
	}
	_ = w.Flush()
}

// sagaShow prints one instance as indented JSON.
func sagaShow(ctx context.Context, store saga.Store, name, id string, stdout io.Writer) error {
	rec, err := store.Load(ctx, name, id)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, printableJSON(string(b)))
	return nil
}
