package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/inspect"
	"github.com/eventkit/eventkit/memory"
)

func init() {
	commands["read"] = command{
		summary: "print stored events (a time range, attribute and SQL filters) as JSON lines or a table",
		run:     runRead,
	}
}

// inspectFlags are the flags read and replay share: where the events are
// (the server, or a broker), and which.
type inspectFlags struct {
	client                   func() (*apiClient, error) // of the server (apiFlags)
	broker                   *string
	group                    *bool
	since, until, after, sql *string
	where                    stringList
}

func addInspectFlags(fs *flag.FlagSet) *inspectFlags {
	f := &inspectFlags{
		client: apiFlags(fs),
		broker: fs.String("broker", "", "read the broker at `URL` directly instead of the server: nats://, kafka://, redis://, postgres:// or pulsar://"),
		group:  fs.Bool("throwaway-group", false, "with --broker: read in a new consumer group of a random name (for brokers that start at a time or position only in a group; the group stays on brokers that keep groups)"),
		since:  fs.String("since", "start", "from `TIME`: RFC 3339, \"start\" (the oldest event), or a duration ago (\"15m\")"),
		until:  fs.String("until", "", "up to `TIME` (excluded): RFC 3339 or a duration ago; default the current end"),
		after:  fs.String("after", "", "start after the event at `POSITION` (as printed)"),
		sql:    fs.String("sql", "", "CloudEvents SQL `expression` the events must satisfy"),
	}
	fs.Var(&f.where, "where", "attribute filter `name=value`, exact (repeatable): --where type=order.created")
	return f
}

// parseWhen reads a --since, --until or --from value: "" (none), "start"
// (zero time, start true), RFC 3339, or a duration before now.
func parseWhen(v string, now time.Time) (t time.Time, start bool, err error) {
	switch v {
	case "":
		return time.Time{}, false, nil
	case "start":
		return time.Time{}, true, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, false, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), false, nil
	}
	return time.Time{}, false, fmt.Errorf("%w: %q is not a time (RFC 3339, \"start\" or a duration ago like 15m)", errUsage, v)
}

// query builds the query of the flags.
func (f *inspectFlags) query(pattern string) (inspect.Query, error) {
	now := time.Now()
	q := inspect.Query{Topic: pattern, After: *f.after, SQL: *f.sql}
	if *f.group {
		q.Group = inspect.ThrowAwayGroup()
	}
	var err error
	if q.Since, _, err = parseWhen(*f.since, now); err != nil {
		return q, err
	}
	if q.Until, _, err = parseWhen(*f.until, now); err != nil {
		return q, err
	}
	for _, w := range f.where {
		name, value, ok := strings.Cut(w, "=")
		if !ok || name == "" {
			return q, fmt.Errorf("%w: --where %q: want name=value", errUsage, w)
		}
		if q.Filter == nil {
			q.Filter = map[string]string{}
		}
		q.Filter[name] = value
	}
	if _, err := q.Compile(); err != nil {
		return q, fmt.Errorf("%w: %v", errUsage, err)
	}
	return q, nil
}

// params is the query as URL parameters of GET /events.
func params(q inspect.Query) url.Values {
	v := url.Values{}
	for name, value := range q.Filter {
		v.Set(name, value)
	}
	if q.Topic != "" {
		v.Set("topic", q.Topic)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339Nano))
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.SQL != "" {
		v.Set("sql", q.SQL)
	}
	return v
}

// readServer pages through GET /events, calling fn with each item, until
// the range ends or limit items (0: no limit).
func (c *apiClient) read(ctx context.Context, q inspect.Query, limit int, fn func(raw []byte, it inspect.Item) error) error {
	v := params(q)
	n := 0
	for {
		page := hub.MaxEventsLimit
		if limit > 0 {
			page = min(page, limit-n)
		}
		v.Set("limit", strconv.Itoa(page))
		resp, err := c.do(ctx, http.MethodGet, "/events?"+v.Encode(), nil)
		if err != nil {
			return err
		}
		tr, got, err := readPage(resp.Body, fn)
		resp.Body.Close()
		if err != nil {
			return err
		}
		n += got
		if !tr.More || (limit > 0 && n >= limit) {
			return nil
		}
		v.Set("after", tr.Next)
	}
}

// readPage reads the items and the trailer of one GET /events answer.
func readPage(body io.Reader, fn func(raw []byte, it inspect.Item) error) (hub.Trailer, int, error) {
	var tr hub.Trailer
	n := 0
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var probe struct {
			Next *string `json:"next"`
			More bool    `json:"more"`
		}
		if json.Unmarshal(line, &probe) == nil && probe.Next != nil {
			return hub.Trailer{Next: *probe.Next, More: probe.More}, n, nil
		}
		var it inspect.Item
		if err := json.Unmarshal(line, &it); err != nil {
			return tr, n, fmt.Errorf("the server sent an item that is not one: %v", err)
		}
		n++
		if err := fn(line, it); err != nil {
			return tr, n, err
		}
	}
	if err := sc.Err(); err != nil {
		return tr, n, err
	}
	return tr, n, errors.New("the server's answer ended before its trailer")
}

func runRead(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("read", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := addInspectFlags(fs)
	limit := fs.Int("limit", 100, "print at most `N` events (0: every one)")
	output := fs.String("o", "json", "output: json (one item per line) or table")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: eventkit read [flags] [PATTERN]\n\nPrints the stored events of topics matching PATTERN (default \">\"), oldest first.")
		fs.PrintDefaults()
	}
	pattern, err := parseWithPattern(fs, args)
	if err != nil {
		return err
	}
	if *output != "json" && *output != "table" {
		return fmt.Errorf("%w: -o %q: want json or table", errUsage, *output)
	}
	if *limit < 0 {
		return fmt.Errorf("%w: --limit must not be negative", errUsage)
	}
	q, err := f.query(pattern)
	if err != nil {
		return err
	}
	out := newItemPrinter(stdout, *output == "table")
	defer out.flush()
	if *f.broker != "" {
		sub, err := openBroker(ctx, *f.broker, stdout)
		if err != nil {
			return err
		}
		defer sub.Close()
		q.Limit = *limit
		_, err = inspect.Read(ctx, sub, q, func(it inspect.Item) error {
			b, err := json.Marshal(it)
			if err != nil {
				return err
			}
			return out.print(b, it)
		})
		return err
	}
	c, err := f.client()
	if err != nil {
		return err
	}
	return c.read(ctx, q, *limit, out.print)
}

// parseWithPattern parses fs's flags, which may follow the one PATTERN
// argument; the pattern is "" when not given.
func parseWithPattern(fs *flag.FlagSet, args []string) (string, error) {
	var pattern string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			return pattern, nil
		}
		if pattern != "" {
			return "", fmt.Errorf("%w: one pattern only", errUsage)
		}
		pattern, rest = fs.Arg(0), fs.Args()[1:]
	}
}

// openBroker opens the broker at raw (as `eventkit run` opens its
// inputs), as publisher and subscriber.
func openBroker(ctx context.Context, raw string, stdout io.Writer) (interface {
	eventkit.Publisher
	eventkit.Subscriber
}, error) {
	if strings.HasPrefix(raw, "memory:") {
		return nil, fmt.Errorf("%w: --broker %s: an in-process bus stores nothing", errUsage, raw)
	}
	tr := &runTransports{stdout: stdout, mem: memory.New()}
	defer tr.mem.Close()
	return tr.open(ctx, raw)
}

// itemPrinter prints items as JSON lines or as a table.
type itemPrinter struct {
	w     io.Writer
	table *tabwriter.Writer
}

func newItemPrinter(w io.Writer, table bool) *itemPrinter {
	p := &itemPrinter{w: w}
	if table {
		p.table = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(p.table, "POSITION\tSTORED\tTOPIC\tTYPE\tID\tSUBJECT\tSOURCE")
	}
	return p
}

func (p *itemPrinter) print(raw []byte, it inspect.Item) error {
	if p.table == nil {
		_, err := fmt.Fprintln(p.w, printableJSON(string(raw)))
		return err
	}
	stored := "-"
	if !it.Stored.IsZero() {
		stored = it.Stored.Local().Format("2006-01-02 15:04:05.000")
	}
	e := it.Event
	_, err := fmt.Fprintf(p.table, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(it.Position), stored, cell(it.Topic),
		cell(e.Type()), cell(e.ID()), cell(e.Subject()), cell(e.Source()))
	return err
}

// cell is a value for one table cell: escaped, without tabs, "-" when
// empty.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(printable(s), "\t", " ")
}

func (p *itemPrinter) flush() {
	if p.table != nil {
		_ = p.table.Flush()
	}
}
