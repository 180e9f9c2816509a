package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
	"github.com/twmb/franz-go/pkg/kgo"
)

// records encodes events, already valid, for the eventkit topic name.
func (d *drv) records(ctx context.Context, name string, events []event.Event) ([]*kgo.Record, error) {
	k, err := d.cfg.mapper.ToKafka(name)
	if err != nil {
		return nil, err
	}
	if err := d.ensureTopic(ctx, k); err != nil {
		return nil, err
	}
	// The records, their headers and header values are allocated together
	// for the call: the pieces stay alive until the call's last record is
	// acknowledged.
	rs := make([]*kgo.Record, len(events))
	recs := make([]kgo.Record, len(events))
	a := arena{left: len(events)}
	for i := range events {
		if err := a.encode(&recs[i], k, events[i], d.cfg.mode == eventkit.Structured); err != nil {
			return nil, err
		}
		rs[i] = &recs[i]
	}
	return rs, nil
}

// checkedRecords is records for a publish that package transport does not
// see (PublishAsync, a Transactor's output): it validates the topic and the
// events first, and refuses them once the stop began.
func (d *drv) checkedRecords(ctx context.Context, name string, events []event.Event) ([]*kgo.Record, error) {
	if d.closed.Load() {
		return nil, eventkit.ErrClosed
	}
	if err := topic.ValidateName(name); err != nil {
		return nil, fmt.Errorf("kafka: publish: %w", err)
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return nil, fmt.Errorf("kafka: publish to %q: %w", name, err)
	}
	return d.records(ctx, name, events)
}

// SendBatch implements driver.Publisher: it produces the records and
// waits until the broker acknowledged every one (acks=all, idempotent
// producer), or ctx ends.
func (d *drv) SendBatch(ctx context.Context, name string, events []event.Event) error {
	rs, err := d.records(ctx, name, events)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	var first error
	d.produce(ctx, rs, func(err error) { first = err; close(done) })
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("kafka: publish to %q: %w", name, ctx.Err())
	}
	if first != nil {
		return fmt.Errorf("kafka: publish to %q: %w", name, first)
	}
	return nil
}

// publishAsync is Transport.PublishAsync.
func (d *drv) publishAsync(ctx context.Context, name string, events []event.Event, done func(error)) error {
	rs, err := d.checkedRecords(ctx, name, events)
	if err != nil {
		return err
	}
	if done == nil {
		done = func(error) {}
	}
	if len(rs) == 0 {
		done(nil)
		return nil
	}
	// Produce waits while WithMaxInFlight records are buffered and not
	// acknowledged (kgo.MaxBufferedRecords); if ctx ends first, the record
	// fails with ctx's error.
	d.produce(ctx, rs, done)
	return ctx.Err()
}

// produce hands rs (at least one record) to the producer and calls done
// once, from a producer goroutine, when every record is acknowledged (nil)
// or failed (the first error).
func (d *drv) produce(ctx context.Context, rs []*kgo.Record, done func(error)) {
	var (
		left  atomic.Int64
		first atomic.Pointer[error]
	)
	left.Store(int64(len(rs)))
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			if errors.Is(err, kgo.ErrClientClosed) {
				err = fmt.Errorf("%w: %w", eventkit.ErrClosed, err)
			}
			first.CompareAndSwap(nil, &err)
		}
		if left.Add(-1) == 0 {
			var err error
			if p := first.Load(); p != nil {
				err = *p
			}
			done(err)
		}
	}
	for _, r := range rs {
		d.prod.Produce(ctx, r, promise)
	}
}
