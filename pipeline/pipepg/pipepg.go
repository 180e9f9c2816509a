// Package pipepg gives pipelines their PostgreSQL inputs, in a package of
// their own so that only their users link pgx: the CDC source (package
// postgres/pgcdc) and the outbox (package outbox on postgres.Outbox), each
// pushing into a pipeline.Feed that the pipeline reads.
//
// Both keep their own guarantee through the pipeline, because a Feed's
// Publish returns only when the pipeline settled every event it was given
// (acked by the outputs, or ended on purpose):
//
//   - CDC: the slot's confirmed position advances only past transactions
//     whose every event went through the pipeline; a failure in a stage
//     fails the source's publish, which reconnects and sends the changes
//     again from the confirmed position. At least once, in commit order
//     (keep it through the stages with ordered: true, or one worker).
//   - Outbox: the relay marks rows delivered only after the pipeline
//     settled them; a failure leaves them to be published again after the
//     relay's backoff. At least once, in order per key.
//
// While the pipeline is full, their Publish waits: the CDC source stops
// reading the WAL and the relay stops reading rows.
package pipepg

import (
	"context"
	"errors"
	"time"

	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/pipeline"
	"github.com/eventkit/eventkit/pipeline/pipeconf"
	"github.com/eventkit/eventkit/postgres"
	"github.com/eventkit/eventkit/postgres/pgcdc"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CDC returns the pipeline input of a CDC source on dsn, with the pgcdc
// options (WithTables, WithSlot, ...): the source publishes into a feed of
// the given capacity (0: pipeline.DefaultFeedCapacity) that the pipeline
// reads.
func CDC(dsn string, capacity int, opts ...pgcdc.Option) (*pipeconf.Input, error) {
	feed := newFeed(capacity)
	src, err := pgcdc.New(dsn, feed, opts...)
	if err != nil {
		return nil, err
	}
	return &pipeconf.Input{Source: pipeline.Source{Subscriber: feed, Pattern: ">"}, Run: src.Run, Close: feed.Close}, nil
}

// Outbox returns the pipeline input of an outbox relay on store, with the
// relay's options: the relay publishes into a feed of the given capacity
// (0: pipeline.DefaultFeedCapacity) that the pipeline reads.
func Outbox(store outbox.Store, capacity int, opts ...outbox.RelayOption) (*pipeconf.Input, error) {
	feed := newFeed(capacity)
	r, err := outbox.NewRelay(store, feed, opts...)
	if err != nil {
		return nil, err
	}
	return &pipeconf.Input{Source: pipeline.Source{Subscriber: feed, Pattern: ">"}, Run: r.Run, Close: feed.Close}, nil
}

func newFeed(capacity int) *pipeline.Feed {
	if capacity <= 0 {
		capacity = pipeline.DefaultFeedCapacity
	}
	return pipeline.NewFeed(pipeline.FeedCapacity(capacity))
}

// CDCKind is the "cdc" input kind of package pipeconf:
//
//	input:
//	  cdc:
//	    dsn: postgres://cdc@127.0.0.1:5432/shop
//	    name: shop                 # topics <name>.<schema>.<table>
//	    tables: [public.orders]
//	    slot: eventkit_shop        # default eventkit_<name>
//	    publication: eventkit_shop # default eventkit_<name>
//	    snapshot: false            # copy the tables' rows first
//	    heartbeat: 10s
//	    capacity: 256              # events held in the pipeline at once
func CDCKind(n *pipeconf.Node) *pipeconf.Input {
	dsn := n.String("dsn", true)
	var opts []pgcdc.Option
	if v := n.String("name", false); v != "" {
		opts = append(opts, pgcdc.WithName(v))
	}
	if v := n.Strings("tables"); len(v) > 0 {
		opts = append(opts, pgcdc.WithTables(v...))
	}
	if v := n.String("slot", false); v != "" {
		opts = append(opts, pgcdc.WithSlot(v))
	}
	if v := n.String("publication", false); v != "" {
		opts = append(opts, pgcdc.WithPublication(v))
	}
	if n.Has("snapshot") {
		opts = append(opts, pgcdc.WithSnapshot(n.Bool("snapshot")))
	}
	if v := n.Duration("heartbeat", 0); v > 0 {
		opts = append(opts, pgcdc.WithHeartbeat(v))
	}
	capacity := n.Int("capacity", 0)
	if dsn == "" {
		return nil
	}
	in, err := CDC(dsn, capacity, opts...)
	if err != nil {
		n.Errorf("", "%v", err)
		return nil
	}
	return in
}

// OutboxKind is the "outbox" input kind of package pipeconf:
//
//	input:
//	  outbox:
//	    dsn: postgres://app@127.0.0.1:5432/shop
//	    table: eventkit_outbox     # the postgres.Outbox table
//	    partitions: 16             # as the writers' Outbox has it
//	    migrate: false             # create the tables if missing
//	    batch: 100                 # rows per publish
//	    poll: 1s                   # without notifications
//	    capacity: 256
func OutboxKind(n *pipeconf.Node) *pipeconf.Input {
	dsn := n.String("dsn", true)
	var oopts []postgres.OutboxOption
	if v := n.String("table", false); v != "" {
		oopts = append(oopts, postgres.OutboxTable(v))
	}
	if v := n.Int("partitions", 0); v != 0 {
		oopts = append(oopts, postgres.OutboxPartitions(v))
	}
	migrate := n.Bool("migrate")
	var ropts []outbox.RelayOption
	if v := n.Int("batch", 0); v != 0 {
		ropts = append(ropts, outbox.WithBatchSize(v))
	}
	if v := n.Duration("poll", 0); v != 0 {
		ropts = append(ropts, outbox.WithPollInterval(v))
	}
	capacity := n.Int("capacity", 0)
	if dsn == "" {
		return nil
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		n.Errorf("dsn", "%v", err)
		return nil
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg) // connects lazily
	if err != nil {
		n.Errorf("dsn", "%v", err)
		return nil
	}
	n.OnClose(func() error { pool.Close(); return nil })
	store, err := postgres.NewOutbox(pool, oopts...)
	if err != nil {
		n.Errorf("", "%v", err)
		return nil
	}
	in, err := Outbox(store, capacity, ropts...)
	if err != nil {
		n.Errorf("", "%v", err)
		return nil
	}
	if migrate {
		run := in.Run
		in.Run = func(ctx context.Context) error {
			mctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := store.Migrate(mctx)
			cancel()
			if err != nil {
				return errors.Join(errors.New("pipepg: outbox: migrate"), err)
			}
			return run(ctx)
		}
	}
	return in
}

var (
	_ pipeconf.InputKind = CDCKind
	_ pipeconf.InputKind = OutboxKind
)
