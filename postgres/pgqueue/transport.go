package pgqueue

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/internal/opt"
	"github.com/eventkit/eventkit/postgres/internal/pgsql"
	"github.com/eventkit/eventkit/transport"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of the options.
const (
	DefaultTable             = "eventkit_queue"
	DefaultVisibilityTimeout = 30 * time.Second
	DefaultPollInterval      = 250 * time.Millisecond
	DefaultBatchSize         = 100
	DefaultRetention         = 7 * 24 * time.Hour
	// DefaultBuffer is how many messages a subscription holds (claimed and
	// not settled) without eventkit.WithBuffer.
	DefaultBuffer = driver.DefaultMaxBatch
)

// Option configures a Transport. An invalid value makes New fail with an
// error wrapping eventkit.ErrInvalidOption.
type Option func(*options) error

type options struct {
	transport.Common
	table      string
	visibility time.Duration
	poll       time.Duration
	batch      int
	retention  time.Duration
}

// WithTable sets the name of the queue's table, optionally
// schema-qualified, "schema.table" (default "eventkit_queue"); its
// companion tables are <name>_groups, <name>_work and <name>_claims.
func WithTable(name string) Option {
	_, err := pgsql.Ident(name, "")
	return opt.Set("pgqueue.WithTable", name, err != nil, fmt.Sprint(err), func(o *options) *string { return &o.table })
}

// WithVisibilityTimeout sets how long a claimed message stays invisible to
// other consumers (default 30s). A message neither acked nor nacked within
// it, for example because its consumer died, is delivered again.
func WithVisibilityTimeout(d time.Duration) Option {
	return opt.Positive("pgqueue.WithVisibilityTimeout", d, func(o *options) *time.Duration { return &o.visibility })
}

// WithPollInterval sets how often an idle subscription looks for messages
// without a notification (default 250ms): the fallback for lost
// notifications, and the pace at which nacked and timed-out messages come
// back.
func WithPollInterval(d time.Duration) Option {
	return opt.Positive("pgqueue.WithPollInterval", d, func(o *options) *time.Duration { return &o.poll })
}

// WithRetention sets how long published messages are kept (default 7
// days); older ones are deleted, consumed or not.
func WithRetention(d time.Duration) Option {
	return opt.Positive("pgqueue.WithRetention", d, func(o *options) *time.Duration { return &o.retention })
}

// WithCloseTimeout bounds Close (default transport.DefaultCloseTimeout);
// use Shutdown to give the bound with a context.
func WithCloseTimeout(d time.Duration) Option {
	return func(o *options) error { return o.SetCloseTimeout(d) }
}

// WithBatchSize sets how many messages a subscription claims at once
// (default 100, never more than its free buffer); n must be positive.
func WithBatchSize(n int) Option {
	return opt.Positive("pgqueue.WithBatchSize", n, func(o *options) *int { return &o.batch })
}

// WithLogger sets the logger of database errors that are retried (default
// slog.Default()); it must not be nil.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { return o.SetLogger(l) }
}

// Transport is an eventkit transport on PostgreSQL tables: Publish inserts, and
// subscriptions claim with FOR UPDATE SKIP LOCKED, woken by LISTEN/NOTIFY
// (with polling as the fallback). It implements eventkit.Publisher and
// eventkit.Subscriber, is built on package transport (which gives it its
// validation, closed state, settle-once messages and graceful stop) and is
// safe for concurrent use.
//
// Each consumer group (and each subscription without a group, as a group of
// its own that ends with it) has an offset in the message table and a work
// list. A member moves the offset forward by copying the messages after it
// that match the group's pattern into the work list, and claims from the
// work list. The offset is (transaction id, row id), and only rows of
// transactions older than every transaction still running
// (pg_snapshot_xmin(pg_current_snapshot())) are taken: a row that commits
// late with a lower id is never skipped. A long-running transaction on the
// server therefore delays delivery (never loses it).
//
// Ack deletes the work row (acks are batched; Close flushes them); Nack makes
// it visible again after the delay; a claimed row not settled within the
// visibility timeout becomes visible again. A group keeps its offset and work
// list while it has no member; a group created by Subscribe starts at the
// current end, or at the oldest retained message with eventkit.FromStart,
// at the first message stored at or after a time with eventkit.StartAt
// (by created_at, the publishing transaction's start), or at a message with
// eventkit.StartAtPosition. Message.Position is the message's row id (a
// decimal number); StartAtPosition(id) starts at that message, or at the
// first one kept after it, and delivers what follows in the group's
// (transaction id, row id) order. Seek (eventkit.Seeker) moves an existing
// group's offset the same way and forgets its work list and claims; members
// connected at the time claim from the new offset on their next fetch.
// Events with a key are delivered to a group in publish order (a later
// redelivery, after a nack or a timeout, can overtake); several members of
// a group process in parallel, so strict per-key processing needs one member.
//
// Its Publish, Subscribe, Capabilities, Shutdown and Close are those of the
// transport.Transport it is built on; here they do this:
//
//   - Publish inserts the events, in order, in one statement, and notifies
//     the subscribers after its commit.
//   - Subscribe starts a subscription. With eventkit.WithGroup it joins (or
//     creates) a persistent consumer group; members of one group must use
//     the same pattern. eventkit.WithBuffer bounds the messages the
//     subscription holds, claimed and not settled (default DefaultBuffer).
//   - Capabilities: wildcards, consumer groups, nack with a delay, attempt
//     counts, order per key, persistence, FromStart, StartAt,
//     StartAtPosition and batched publishes.
//   - Shutdown ends every subscription (flushing their acks and giving back
//     the messages they hold) and makes later publishes return
//     eventkit.ErrClosed, within ctx. It does not close the pool. Close is
//     Shutdown bounded by WithCloseTimeout.
type Transport struct {
	*transport.Transport
	d *drv
}

// New returns a queue transport on pool, which the caller owns: Close does
// not close it. New does no I/O: the tables are created, if they do not
// exist, by Migrate or else by the first Publish or Subscribe.
func New(pool *pgxpool.Pool, opts ...Option) (*Transport, error) {
	if pool == nil {
		return nil, eventkit.InvalidOption("pgqueue.New", "the pool must not be nil")
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	d := newDriver(pool, o)
	pt, err := transport.New(d, d, o.Options()...)
	if err != nil {
		return nil, err
	}
	return &Transport{Transport: pt, d: d}, nil
}

// newOptions applies opts to the defaults.
func newOptions(opts []Option) (options, error) {
	o := options{
		Common:     transport.NewCommon("pgqueue"),
		table:      DefaultTable,
		visibility: DefaultVisibilityTimeout,
		poll:       DefaultPollInterval,
		batch:      DefaultBatchSize,
		retention:  DefaultRetention,
	}
	err := transport.Apply(&o, opts)
	return o, err
}

// Migrate creates the queue's tables if they do not exist (idempotent, safe
// to run from several processes at once). Publish and Subscribe run it
// once themselves if it was not called.
func (t *Transport) Migrate(ctx context.Context) error { return t.d.ensureTables(ctx) }

var (
	_ eventkit.Publisher  = (*Transport)(nil)
	_ eventkit.Subscriber = (*Transport)(nil)
)
