package transport

import (
	"context"
	"fmt"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/topic"
)

// Publisher is an eventkit.Publisher on a driver.Publisher. It is safe for
// concurrent use.
type Publisher struct {
	d    driver.Publisher
	cfg  config
	caps eventkit.Capabilities
	gate // publishes in flight
	stop stopper
}

// NewPublisher returns a publisher on d, which it owns: Close closes d.
func NewPublisher(d driver.Publisher, opts ...Option) (*Publisher, error) {
	cfg, err := driverConfig("transport.NewPublisher", d, opts)
	if err != nil {
		return nil, err
	}
	return &Publisher{d: d, cfg: cfg, caps: d.Capabilities(), stop: newStopper()}, nil
}

// Capabilities returns the driver's publishing capabilities.
func (p *Publisher) Capabilities() eventkit.Capabilities { return p.caps }

// Publish validates the topic name and every event, then sends the events
// in one batch to the driver, which returns once the broker accepted them
// all. Nothing is sent if one is invalid; publishing no event does
// nothing. The driver's errors are returned as it wrapped them.
func (p *Publisher) Publish(ctx context.Context, name string, events ...event.Event) error {
	if err := topic.ValidateName(name); err != nil {
		return fmt.Errorf("%s: publish: %w", p.cfg.name, err)
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return fmt.Errorf("%s: publish to %q: %w", p.cfg.name, name, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !p.enter() {
		return eventkit.ErrClosed
	}
	defer p.inflight.Done()
	if len(events) == 0 {
		return nil
	}
	// The driver gets a copy of the slice from a pool, so that events
	// does not escape: a caller of the concrete Publish (not through an
	// interface) does not allocate its variadic slice. The driver does not
	// keep the slice (driver.Publisher.SendBatch).
	bp := eventSlices.Get().(*[]event.Event)
	batch := append((*bp)[:0], events...)
	err := p.d.SendBatch(ctx, name, batch)
	clear(batch)
	if cap(batch) <= maxPooledBatch {
		*bp = batch[:0]
		eventSlices.Put(bp)
	}
	return err
}

// maxPooledBatch bounds the slices kept in eventSlices.
const maxPooledBatch = 64

var eventSlices = sync.Pool{New: func() any { return new([]event.Event) }}

// Shutdown refuses new publishes, waits for those in flight, then shuts the
// driver down, all within ctx.
func (p *Publisher) Shutdown(ctx context.Context) error {
	p.close()
	return p.stop.stop(ctx, p.cfg.name, func(ctx context.Context) error {
		p.inflight.Wait()
		if err := closeDriver(ctx, p.d); err != nil {
			return fmt.Errorf("%s: close publisher: %w", p.cfg.name, err)
		}
		return nil
	})
}

// Close is Shutdown bounded by the close timeout (WithCloseTimeout).
func (p *Publisher) Close() error {
	return p.cfg.bounded(p.Shutdown)
}

var _ eventkit.Publisher = (*Publisher)(nil)
