package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/postgres"
	"github.com/eventkit/eventkit/probe"
	"github.com/jackc/pgx/v5/pgxpool"
)

func init() {
	commands["probe"] = command{
		summary: "follow a correlation id, subject or aggregate across topics and an event store: timeline, Mermaid, HTML",
		run:     runProbe,
	}
}

// probeScanLimit bounds the events of an event store's global log a probe
// reads for a key that is not an aggregate.
const probeScanLimit = 1_000_000

// probeOptions are the flags of eventkit probe.
type probeOptions struct {
	key                                       probe.Key
	since, until, mermaid, html, store, table string
	limit                                     int
	noServer, asJSON                          bool
}

func (o *probeOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.key.CorrelationID, "correlation-id", "", "follow the events whose correlationid is `id`")
	fs.StringVar(&o.key.Subject, "subject", "", "follow the events whose subject is `s`")
	fs.StringVar(&o.key.Aggregate, "aggregate", "", "follow the events of the event-store stream `id` (and, on topics, those whose subject is it)")
	fs.StringVar(&o.since, "since", "", "only events stored from this `time` on (RFC 3339)")
	fs.StringVar(&o.until, "until", "", "only events stored before this `time` (RFC 3339)")
	fs.IntVar(&o.limit, "limit", probe.DefaultLimit, "at most `n` events")
	fs.StringVar(&o.mermaid, "mermaid", "", "write a Mermaid sequence diagram to `file`")
	fs.StringVar(&o.html, "html", "", "write a self-contained HTML page to `file`")
	fs.StringVar(&o.store, "store", "", "also read the PostgreSQL event store at `URL` (postgres://...)")
	fs.StringVar(&o.table, "store-table", "eventkit_events", "the event store's events `table`")
	fs.BoolVar(&o.noServer, "no-server", false, "do not ask the server (with --store: the event store only)")
	fs.BoolVar(&o.asJSON, "json", false, "print the timeline as JSON ({\"key\":...,\"items\":[...]})")
}

// query is the probe's query from the flags.
func (o *probeOptions) query() (probe.Query, error) {
	q := probe.Query{Key: o.key, Limit: o.limit}
	if err := q.Key.Validate(); err != nil {
		return q, fmt.Errorf("%w: want one of --correlation-id, --subject, --aggregate", errUsage)
	}
	for _, f := range []struct {
		v string
		t *time.Time
	}{{o.since, &q.Since}, {o.until, &q.Until}} {
		if f.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, f.v)
		if err != nil {
			return q, fmt.Errorf("%w: %v", errUsage, err)
		}
		*f.t = t
	}
	return q, nil
}

const probeUsage = `Usage: eventkit probe (--correlation-id ID | --subject S | --aggregate A) [--since T] [--until T]
       [--mermaid FILE] [--html FILE] [--store postgres://...] [--json]

Prints, in time order, every stored event linked to the key: on the
server's topics and, with --store, in a PostgreSQL event store.`

func runProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := apiFlags(fs)
	var o probeOptions
	o.flags(fs)
	usageOf(fs, stderr, probeUsage)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected %q", errUsage, fs.Arg(0))
	}
	q, err := o.query()
	if err != nil {
		return err
	}
	c, err := client()
	if err != nil {
		return err
	}
	var sources []probe.Source
	if !o.noServer {
		sources = append(sources, serverSource(c))
	}
	if o.store != "" {
		pool, err := pgxpool.New(ctx, o.store)
		if err != nil {
			return fmt.Errorf("event store: %w", err)
		}
		defer pool.Close()
		st, err := postgres.NewEventStore(pool, postgres.WithEventsTable(o.table))
		if err != nil {
			return err
		}
		sources = append(sources, probe.EventStoreSource(st, probeScanLimit))
	}
	if len(sources) == 0 {
		return fmt.Errorf("%w: --no-server needs --store", errUsage)
	}
	tl, err := probe.Run(ctx, q, sources...)
	if err != nil {
		return err
	}
	return writeProbe(tl, &o, stdout)
}

// writeProbe prints tl and writes its files.
func writeProbe(tl probe.Timeline, o *probeOptions, stdout io.Writer) error {
	if o.mermaid != "" {
		if err := os.WriteFile(o.mermaid, []byte(tl.Mermaid()), 0o644); err != nil {
			return err
		}
	}
	if o.html != "" {
		f, err := os.Create(o.html)
		if err != nil {
			return err
		}
		if err := tl.WriteHTML(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if o.asJSON {
		b, err := json.Marshal(tl)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, printableJSON(string(b)))
		return err
	}
	for _, it := range tl.Items {
		fmt.Fprintln(stdout, probeLine(it))
	}
	if tl.Truncated {
		fmt.Fprintln(stdout, "(more events matched: narrow with --since, --until or raise --limit)")
	}
	return nil
}

// probeLine is the one-line form of a timeline's event, escaped.
func probeLine(it probe.Item) string {
	e, err := eventkit.UnmarshalEvent(it.Event)
	if err != nil {
		return printable(it.Position + " " + it.Topic + " (undecodable: " + err.Error() + ")")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s type=%s id=%s source=%s", it.Stored.Local().Format("2006-01-02 15:04:05.000"), it.Topic, e.Type(), e.ID(), e.Source())
	if s := e.Subject(); s != "" {
		fmt.Fprintf(&b, " subject=%s", s)
	}
	if c, ok := e.Extensions()[probe.ExtCorrelationID]; ok {
		fmt.Fprintf(&b, " correlationid=%v", c)
	}
	return printable(b.String())
}

// serverSource asks the server's GET /probe.
func serverSource(c *apiClient) probe.Source {
	return probe.SourceFunc(func(ctx context.Context, q probe.Query) ([]probe.Item, bool, error) {
		v := url.Values{"limit": {strconv.Itoa(q.Limit)}}
		for name, val := range map[string]string{"correlationid": q.Key.CorrelationID, "subject": q.Key.Subject, "aggregate": q.Key.Aggregate} {
			if val != "" {
				v.Set(name, val)
			}
		}
		for name, t := range map[string]time.Time{"since": q.Since, "until": q.Until} {
			if !t.IsZero() {
				v.Set(name, t.Format(time.RFC3339Nano))
			}
		}
		b, err := c.fetch(ctx, http.MethodGet, "/probe?"+v.Encode())
		if err != nil {
			return nil, false, fmt.Errorf("server: %w", err)
		}
		var tl probe.Timeline
		if err := json.Unmarshal(b, &tl); err != nil {
			return nil, false, fmt.Errorf("server answered %q: %w", printable(string(b)), err)
		}
		return tl.Items, tl.Truncated, nil
	})
}
