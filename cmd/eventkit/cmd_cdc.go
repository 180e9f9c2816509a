package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/kafka"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/postgres/pgcdc"
)

func init() {
	commands["cdc"] = command{
		summary: "stream PostgreSQL changes (logical replication) as Debezium-compatible CloudEvents",
		run:     runCDC,
	}
}

func runCDC(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cdc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("dsn", "", "PostgreSQL `URL` of the database to capture (needs wal_level=logical)")
	tables := fs.String("tables", "", "comma-separated `tables` (schema.table) of the publication: it is created with them, or changed to them (tables added are snapshotted first)")
	name := fs.String("name", "eventkit", "logical `name` of the source: source.name of the envelopes and first topic token")
	slot := fs.String("slot", "", "replication `slot` (default eventkit_<name>)")
	pubName := fs.String("publication", "", "`publication` (default eventkit_<name>)")
	snapshot := fs.Bool("snapshot", true, "emit the existing rows (op r) when the slot is created")
	to := fs.String("to", "stdout", "where to publish: stdout (one JSON event per line), nats://host:port or kafka://host:port[,host:port]")
	progress := fs.Duration("progress", 5*time.Second, "`interval` of the progress line on stderr (0: none)")
	heartbeat := fs.Duration("heartbeat", 10*time.Second, "`interval` of position reports and keepalive requests to the server")
	messages := fs.String("messages", "*", "comma-separated `prefixes` of the logical decoding messages to deliver (\"*\": all, \"\": none)")
	kafkaPartitions := fs.Int("kafka-partitions", 0, "with kafka://, create missing topics with `n` partitions (broker's default replication); 0: topics must exist or be auto-created")
	dropSlot := fs.Bool("drop-slot", false, "drop the replication slot (and the publication) and exit")
	decimal := fs.String("decimal-handling", "precise", "numeric and money values as Debezium's decimal.handling.mode: `precise` (bytes of the unscaled value), string or double")
	timePrecision := fs.String("time-precision", "adaptive", "time and timestamp values as Debezium's time.precision.mode: `adaptive`, adaptive_time_microseconds or connect")
	binary := fs.String("binary-handling", "bytes", "bytea values as Debezium's binary.handling.mode: `bytes` (base64), base64, base64-url-safe or hex")
	interval := fs.String("interval-handling", "numeric", "interval values as Debezium's interval.handling.mode: `numeric` (microseconds) or string")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: eventkit cdc --dsn URL --tables public.orders[,...] [--to stdout|nats://...|kafka://...] [flags]\n       eventkit cdc --dsn URL --drop-slot [--name N | --slot S]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *dsn == "" {
		return fmt.Errorf("%w: --dsn is required", errUsage)
	}
	modes, err := pgcdc.ParseValueModes(*decimal, *timePrecision, *binary, *interval)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if *slot == "" {
		*slot = "eventkit_" + *name
	}
	if *pubName == "" {
		*pubName = "eventkit_" + *name
	}
	if *dropSlot {
		if err := pgcdc.DropSlot(ctx, *dsn, *slot); err != nil {
			return err
		}
		if err := cdcDropPublication(ctx, *dsn, *pubName); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "eventkit cdc: dropped slot %s and publication %s\n", *slot, *pubName)
		return nil
	}

	pub, err := cdcPublisher(ctx, *to, stdout, *kafkaPartitions)
	if err != nil {
		return err
	}
	defer pub.Close()
	opts := []pgcdc.Option{
		pgcdc.WithName(*name), pgcdc.WithSlot(*slot), pgcdc.WithPublication(*pubName),
		pgcdc.WithSnapshot(*snapshot), pgcdc.WithHeartbeat(*heartbeat), pgcdc.WithValueModes(modes),
		pgcdc.WithLogger(slog.New(slog.NewTextHandler(stderr, nil))),
	}
	if *messages != "*" {
		var prefixes []string
		for _, p := range strings.Split(*messages, ",") {
			if p = strings.TrimSpace(p); p != "" {
				prefixes = append(prefixes, p)
			}
		}
		opts = append(opts, pgcdc.WithMessagePrefixes(prefixes...))
	}
	for _, t := range strings.Split(*tables, ",") {
		if t = strings.TrimSpace(t); t != "" {
			opts = append(opts, pgcdc.WithTables(t))
		}
	}
	src, err := pgcdc.New(*dsn, pub, opts...)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	var wg sync.WaitGroup
	pctx, stop := context.WithCancel(ctx)
	if *progress > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cdcProgress(pctx, src, *progress, stderr)
		}()
	}
	err = src.Run(ctx)
	stop()
	wg.Wait()
	return err
}

// cdcProgress prints a progress line every interval: events delivered and
// their rate, and the lag in bytes of WAL and in seconds.
func cdcProgress(ctx context.Context, src *pgcdc.Source, every time.Duration, w io.Writer) {
	t := time.NewTicker(every)
	defer t.Stop()
	last, lastAt := int64(0), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			st := src.Stats()
			rate := float64(st.Events-last) / now.Sub(lastAt).Seconds()
			last, lastAt = st.Events, now
			fmt.Fprintf(w, "eventkit cdc: %d rows (%.0f rows/s), %d transactions, lag %d bytes, %.3f s, confirmed %X/%X\n",
				st.Events, rate, st.Transactions, st.LagBytes, st.LagSeconds, uint32(st.ConfirmedLSN>>32), uint32(st.ConfirmedLSN))
		}
	}
}

func cdcDropPublication(ctx context.Context, dsn, name string) error {
	return pgcdc.DropPublication(ctx, dsn, name)
}

// cdcPublisher opens the publisher named by to.
func cdcPublisher(ctx context.Context, to string, stdout io.Writer, kafkaPartitions int) (eventkit.Publisher, error) {
	if to == "stdout" || to == "-" {
		return &cdcStdout{w: bufio.NewWriterSize(stdout, 64<<10)}, nil
	}
	u, err := url.Parse(to)
	if err != nil {
		return nil, fmt.Errorf("%w: --to %q: %w", errUsage, to, err)
	}
	switch u.Scheme {
	case "nats":
		t, err := eknats.Dial(ctx, to) // Close closes the connection
		if err != nil {
			return nil, fmt.Errorf("cdc: %w", err)
		}
		return t, nil
	case "kafka":
		var opts []kafka.Option
		if kafkaPartitions > 0 {
			opts = append(opts, kafka.WithTopicCreation(int32(kafkaPartitions), -1, nil))
		}
		t, err := kafka.Dial(ctx, u.Host, opts...) // Close closes its clients
		if err != nil {
			return nil, fmt.Errorf("cdc: %w", err)
		}
		return t, nil
	}
	return nil, fmt.Errorf("%w: --to %q: want stdout, nats://… or kafka://…", errUsage, to)
}

// cdcStdout writes each event as one line of CloudEvents JSON.
type cdcStdout struct {
	mu     sync.Mutex
	w      *bufio.Writer
	closed bool
}

func (s *cdcStdout) Publish(ctx context.Context, topic string, events ...event.Event) error {
	if err := eventkit.ValidateEvents(events); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return eventkit.ErrClosed
	}
	for _, e := range events {
		b, err := eventkit.MarshalEvent(e)
		if err != nil {
			return err
		}
		s.w.Write(b)
		s.w.WriteByte('\n')
	}
	// Flushed before returning: the source confirms the position once
	// Publish returns.
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("cdc: stdout: %w", err)
	}
	return nil
}

func (s *cdcStdout) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.w.Flush()
}
