package kafka

import (
	"context"
	"fmt"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/transport"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Transport is a Kafka publisher and subscriber. It implements
// eventkit.Publisher and eventkit.Subscriber, is built on package
// transport (which gives it its validation, closed state, settle-once
// messages and graceful stop) and is safe for concurrent use. Create one
// with Dial.
type Transport struct {
	pt *transport.Transport
	d  *drv
}

// Dial returns a transport on the Kafka cluster whose seed brokers are
// listed in brokers ("host:port", comma-separated, as Kafka's
// bootstrap.servers; WithBrokers adds more). It checks within ctx that a
// broker answers, and fails otherwise. The transport owns the clients it
// makes (its producer, and a consumer per subscription): Close closes
// them. An option with an invalid value makes it fail with an error
// wrapping eventkit.ErrInvalidOption.
//
// There is no New(client): a subscription is a consumer-group member,
// which in franz-go is a client of its own, so the transport makes its
// clients itself (WithClientOptions, WithProducerOptions and
// WithConsumerOptions configure them).
func Dial(ctx context.Context, brokers string, opts ...Option) (*Transport, error) {
	var seeds []string
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			seeds = append(seeds, b)
		}
	}
	t, err := newTransport(append([]Option{WithBrokers(seeds...)}, opts...))
	if err != nil {
		return nil, err
	}
	if err := t.d.prod.Ping(ctx); err != nil {
		_ = t.Shutdown(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("kafka: dial %s: %w", brokers, err)
	}
	return t, nil
}

// New returns a transport on the brokers of WithBrokers, without checking
// that one answers (franz-go clients connect when first used).
//
// Deprecated: use Dial, which checks the cluster within its ctx.
func New(opts ...Option) (*Transport, error) { return newTransport(opts) }

func newTransport(opts []Option) (*Transport, error) {
	cfg := defaults()
	for _, o := range opts {
		if o == nil {
			return nil, eventkit.InvalidOption("kafka.New", "nil option")
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if len(cfg.brokers) == 0 {
		return nil, eventkit.InvalidOption("kafka.WithBrokers", "no brokers")
	}
	d, err := newDriver(cfg)
	if err != nil {
		return nil, err
	}
	pt, err := transport.New(d, d, transport.WithName("kafka"), transport.WithLogger(cfg.logger), transport.WithCloseTimeout(cfg.closeTimeout))
	if err != nil {
		d.prod.Close()
		return nil, err
	}
	return &Transport{pt: pt, d: d}, nil
}

// Client returns the transport's producer client.
func (t *Transport) Client() *kgo.Client { return t.d.prod }

// Admin returns a kadm client on the transport's producer connection, for
// administration eventkit does not wrap.
func (t *Transport) Admin() *kadm.Client { return t.d.adm }

// Capabilities returns what the transport guarantees: wildcards, consumer
// groups, nack with a delay, attempt counts, order per key (partition),
// persistence, FromStart and pipelined batches.
func (t *Transport) Capabilities() eventkit.Capabilities { return t.pt.Capabilities() }

// Publish validates every event and produces them to the Kafka topic of
// name, in order (events of one key go to one partition). It returns when
// the broker acknowledged every record (acks=all, idempotent producer), or
// with the first error. Nothing is sent if the topic or one event is
// invalid.
func (t *Transport) Publish(ctx context.Context, name string, events ...event.Event) error {
	return t.pt.Publish(ctx, name, events...)
}

// PublishAsync validates the events and hands them to the producer without
// waiting for the broker. It waits only while the records in flight would
// exceed WithMaxInFlight (or until ctx ends, which fails the records not yet
// sent). Unless it returns a validation or closed error, done (if not nil)
// is called once, from a producer goroutine, when every record of the call
// is acknowledged (nil) or failed (the first error). Use Flush to wait for
// everything published so far.
func (t *Transport) PublishAsync(ctx context.Context, name string, events []event.Event, done func(error)) error {
	return t.d.publishAsync(ctx, name, events, done)
}

// Flush waits until every record published so far is acknowledged or
// failed.
func (t *Transport) Flush(ctx context.Context) error { return t.d.prod.Flush(ctx) }

// Subscribe starts a subscription to pattern (a topic name, or a pattern
// with "*" and ">" consumed through a Kafka topic regex). With
// eventkit.WithGroup it joins that consumer group; otherwise it joins a new
// ephemeral group of its own, deleted when it closes. A group that has no
// committed offsets for a topic starts at the end offsets resolved during
// Subscribe (at the start with eventkit.FromStart); topics that appear
// later are read from their start. With eventkit.StartAt(t) such a group
// starts, on each partition, at the first record whose timestamp is at or
// after t. Message.Position is "<partition>:<offset>";
// eventkit.StartAtPosition takes a comma-separated list of them, each
// optionally prefixed by a Kafka topic and "/" ("orders/3:120") to apply to
// that topic only: a listed partition starts at its offset, kept within the
// partition's start and end offsets, and a partition not listed at its
// start. An offset of a position is the record's own, so that a group that
// starts there receives that record first. When matching topics exist, Subscribe
// returns once the member has its first assignment. Either way every event
// published after Subscribe returns is delivered.
//
// Records of a partition are delivered in offset order; the offset
// committed for a partition never passes a record that is not acked. Close
// commits the offsets of finished records, leaves the group (deleting an
// ephemeral one) within WithCloseTimeout; messages taken and not settled
// are not committed, and the group delivers them again.
func (t *Transport) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	return t.pt.Subscribe(ctx, pattern, opts...)
}

// Seek implements eventkit.Seeker: it commits, for group, the offsets of
// the starting point to on every partition of the Kafka topics pattern
// matches now. With eventkit.FromStart, the start offsets; with
// eventkit.StartAt(t), the first offset of each partition whose record
// timestamp is at or after t (the end offset where there is none); with
// eventkit.StartAtPosition, the offsets it lists (see Subscribe), the
// other partitions at their start. Kafka moves the offsets of an empty
// group only: Seek of a group that has members fails with an error
// wrapping ErrGroupHasMembers.
func (t *Transport) Seek(ctx context.Context, pattern, group string, to eventkit.SubscribeOption) error {
	return t.pt.Seek(ctx, pattern, group, to)
}

// Shutdown ends every subscription (each commits its finished offsets,
// leaves its group and deletes its ephemeral group), waits for the
// publishes in progress, flushes what was published and closes the
// producer, all within ctx. It returns every error met on the way (a failed
// flush or commit, ctx's error when it ended first); the producer is closed
// either way, and records not yet acknowledged then fail. Later publishes
// return eventkit.ErrClosed. A second call returns nil at once, even while
// the stop that the first one began goes on past that one's ctx (closing a
// client whose brokers are gone takes about a second more).
func (t *Transport) Shutdown(ctx context.Context) error {
	if t.d.stopping.Swap(true) {
		return nil
	}
	t.d.closed.Store(true)
	return t.pt.Shutdown(ctx)
}

// Close is Shutdown bounded by WithCloseTimeout (default
// DefaultCloseTimeout).
func (t *Transport) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), t.d.cfg.closeTimeout)
	defer cancel()
	return t.Shutdown(ctx)
}
