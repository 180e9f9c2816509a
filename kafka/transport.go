package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Transport is a Kafka publisher and subscriber. Create one with New; it is
// safe for concurrent use.
type Transport struct {
	cfg  config
	prod *kgo.Client
	adm  *kadm.Client

	known sync.Map // Kafka topics known to exist

	closed atomic.Bool
	mu     sync.Mutex
	subs   map[*subscription]struct{}
}

// New returns a transport. It needs at least one broker (WithBrokers). It
// does not connect until first used. An option with an invalid value, or no
// broker, makes it fail with an error wrapping eventkit.ErrInvalidOption.
func New(opts ...Option) (*Transport, error) {
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
	popts := append([]kgo.Opt{kgo.SeedBrokers(cfg.brokers...)}, cfg.clientOpts...)
	popts = append(popts, kgo.MaxBufferedRecords(cfg.maxInFlight))
	popts = append(popts, cfg.producerOpts...)
	prod, err := kgo.NewClient(popts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: producer client: %w", err)
	}
	return &Transport{
		cfg:  cfg,
		prod: prod,
		adm:  kadm.NewClient(prod),
		subs: make(map[*subscription]struct{}),
	}, nil
}

// Client returns the transport's producer client.
func (t *Transport) Client() *kgo.Client { return t.prod }

// records validates and encodes events for the eventkit topic name.
func (t *Transport) records(ctx context.Context, name string, events []event.Event) ([]*kgo.Record, error) {
	if t.closed.Load() {
		return nil, eventkit.ErrClosed
	}
	if err := topic.ValidateName(name); err != nil {
		return nil, err
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return nil, err
	}
	k, err := t.cfg.mapper.ToKafka(name)
	if err != nil {
		return nil, err
	}
	if err := t.ensureTopic(ctx, k); err != nil {
		return nil, err
	}
	// The records, their headers and header values are allocated together
	// for the call: the pieces stay alive until the call's last record is
	// acknowledged.
	rs := make([]*kgo.Record, len(events))
	recs := make([]kgo.Record, len(events))
	a := arena{left: len(events)}
	for i := range events {
		if err := a.encode(&recs[i], k, events[i], t.cfg.mode == eventkit.Structured); err != nil {
			return nil, err
		}
		rs[i] = &recs[i]
	}
	return rs, nil
}

// Publish validates every event and produces them to the Kafka topic of
// name, in order (events of one key go to one partition). It returns when
// the broker acknowledged every record (acks=all, idempotent producer), or
// with the first error.
func (t *Transport) Publish(ctx context.Context, name string, events ...event.Event) error {
	rs, err := t.records(ctx, name, events)
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		return nil
	}
	var (
		left  atomic.Int64
		first atomic.Pointer[error]
		done  = make(chan struct{})
	)
	left.Store(int64(len(rs)))
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			err = t.produceErr(err)
			first.CompareAndSwap(nil, &err)
		}
		if left.Add(-1) == 0 {
			close(done)
		}
	}
	for _, r := range rs {
		t.prod.Produce(ctx, r, promise)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("kafka: publish to %q: %w", name, ctx.Err())
	}
	if p := first.Load(); p != nil {
		return fmt.Errorf("kafka: publish to %q: %w", name, *p)
	}
	return nil
}

func (t *Transport) produceErr(err error) error {
	if errors.Is(err, kgo.ErrClientClosed) {
		return fmt.Errorf("%w: %w", eventkit.ErrClosed, err)
	}
	return err
}

// PublishAsync validates the events and hands them to the producer without
// waiting for the broker. It waits only while the records in flight would
// exceed WithMaxInFlight (or until ctx ends, which fails the records not yet
// sent). Unless it returns a validation or closed error, done (if not nil)
// is called once, from a producer goroutine, when every record of the call
// is acknowledged (nil) or failed (the first error). Use Flush to wait for
// everything published so far.
func (t *Transport) PublishAsync(ctx context.Context, name string, events []event.Event, done func(error)) error {
	rs, err := t.records(ctx, name, events)
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		if done != nil {
			done(nil)
		}
		return nil
	}
	var (
		left  atomic.Int64
		first atomic.Pointer[error]
	)
	left.Store(int64(len(rs)))
	finish := func(n int64) {
		if left.Add(-n) == 0 && done != nil {
			var err error
			if p := first.Load(); p != nil {
				err = *p
			}
			done(err)
		}
	}
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			err = t.produceErr(err)
			first.CompareAndSwap(nil, &err)
		}
		finish(1)
	}
	for _, r := range rs {
		// Produce waits while WithMaxInFlight records are buffered and not
		// acknowledged (kgo.MaxBufferedRecords); if ctx ends first, the
		// record fails with ctx's error through promise.
		t.prod.Produce(ctx, r, promise)
	}
	return ctx.Err()
}

// Flush waits until every record published so far is acknowledged or
// failed.
func (t *Transport) Flush(ctx context.Context) error { return t.prod.Flush(ctx) }

// Shutdown ends every subscription (each commits its finished offsets,
// leaves its group and deletes its ephemeral group), flushes what was
// published and closes the producer, all within ctx. It returns every
// error met on the way (a failed flush or commit, ctx's error when it ended
// first); the producer is closed either way, and records not yet
// acknowledged then fail. Later publishes return eventkit.ErrClosed; a
// second call returns nil.
func (t *Transport) Shutdown(ctx context.Context) error {
	if t.closed.Swap(true) {
		return nil
	}
	t.mu.Lock()
	subs := make([]*subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Shutdown(ctx))
	}
	if err := t.prod.Flush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("kafka: flush: %w", err))
	}
	t.prod.Close()
	return errors.Join(errs...)
}

// Close is Shutdown bounded by WithCloseTimeout (default
// DefaultCloseTimeout).
func (t *Transport) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.closeTimeout)
	defer cancel()
	return t.Shutdown(ctx)
}

func (t *Transport) refreshSubscriptions() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := range t.subs {
		s.cl.ForceMetadataRefresh()
	}
}
