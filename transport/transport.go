package transport

import (
	"context"
	"errors"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
)

// Transport is a Publisher and a Subscriber in one value, for a transport
// package whose type does both (the usual case). It implements
// eventkit.Publisher and eventkit.Subscriber and is safe for concurrent
// use.
type Transport struct {
	pub      *Publisher
	sub      *Subscriber
	cfg      config
	stoppers []driver.Stopper
}

// New returns a transport on p and s, which it owns. p and s may be one
// pointer: it is then closed once, by the subscriber, after every publish
// has returned. Each of them that is a driver.Stopper is told when a
// Shutdown begins.
func New(p driver.Publisher, s driver.Subscriber, opts ...Option) (*Transport, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	pub, err := NewPublisher(p, opts...)
	if err != nil {
		return nil, err
	}
	sub, err := NewSubscriber(s, opts...)
	if err != nil {
		return nil, err
	}
	if any(p) == any(s) {
		pub.d = noClose{p}
		sub.d = closeAfter{s, pub}
	}
	t := &Transport{pub: pub, sub: sub, cfg: cfg}
	if st, ok := p.(driver.Stopper); ok {
		t.stoppers = append(t.stoppers, st)
	}
	if st, ok := s.(driver.Stopper); ok && any(p) != any(s) {
		t.stoppers = append(t.stoppers, st)
	}
	return t, nil
}

// noClose is a driver.Publisher whose Close is done by the subscriber.
type noClose struct{ driver.Publisher }

func (noClose) Close() error { return nil }

// closeAfter is a driver.Subscriber, also the publisher's driver, that is
// closed after the publisher's stop: after every publish has returned,
// even when a Shutdown's context ended first.
type closeAfter struct {
	driver.Subscriber
	pub *Publisher
}

// Shutdown waits for the publisher's stop (which it starts if needed), then
// shuts the driver down. It runs inside the subscriber's stop, which its
// caller's context does not hold up.
func (c closeAfter) Shutdown(ctx context.Context) error {
	_ = c.pub.Shutdown(context.WithoutCancel(ctx))
	return closeDriver(ctx, c.Subscriber)
}

func (c closeAfter) Close() error { return c.Shutdown(context.Background()) }

// Publisher returns the transport's publisher.
func (t *Transport) Publisher() *Publisher { return t.pub }

// Subscriber returns the transport's subscriber.
func (t *Transport) Subscriber() *Subscriber { return t.sub }

// Capabilities returns the publisher's and the subscriber's capabilities.
func (t *Transport) Capabilities() eventkit.Capabilities { return t.pub.caps | t.sub.caps }

// Publish is Publisher.Publish.
func (t *Transport) Publish(ctx context.Context, topic string, events ...event.Event) error {
	return t.pub.Publish(ctx, topic, events...)
}

// Subscribe is Subscriber.Subscribe.
func (t *Transport) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	return t.sub.Subscribe(ctx, pattern, opts...)
}

// Seek is Subscriber.Seek (eventkit.Seeker).
func (t *Transport) Seek(ctx context.Context, pattern, group string, to eventkit.SubscribeOption) error {
	return t.sub.Seek(ctx, pattern, group, to)
}

// Shutdown tells the drivers that are a driver.Stopper that the stop
// begins, shuts the publisher down (waiting for the publishes in flight),
// then the subscriber, within ctx, and returns every error met.
func (t *Transport) Shutdown(ctx context.Context) error {
	for _, st := range t.stoppers {
		st.Stopping(ctx)
	}
	return errors.Join(t.pub.Shutdown(ctx), t.sub.Shutdown(ctx))
}

// Close is Shutdown bounded by the close timeout (WithCloseTimeout).
func (t *Transport) Close() error {
	return t.cfg.bounded(t.Shutdown)
}

var (
	_ eventkit.Publisher  = (*Transport)(nil)
	_ eventkit.Subscriber = (*Transport)(nil)
)
