package hub

import (
	"context"
	"strings"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/cehttp"
)

// prefixed maps the hub's topics onto broker subjects under a prefix
// ("orders.created" is stored as "events.orders.created"), so that one
// JetStream stream ("events.>") holds every topic and any pattern,
// ">" included, falls in it.
type prefixed struct {
	pub    eventkit.Publisher
	sub    eventkit.Subscriber
	prefix string // with the trailing '.'
}

func (p *prefixed) Publish(ctx context.Context, topic string, events ...event.Event) error {
	return p.pub.Publish(ctx, p.prefix+topic, events...)
}

// PublishEach publishes events[i] to topics[i] under the prefix, in one
// call when the publisher is a cehttp.EachPublisher.
func (p *prefixed) PublishEach(ctx context.Context, topics []string, events []event.Event) error {
	ep, ok := p.pub.(cehttp.EachPublisher)
	if !ok {
		return cehttp.PublishRuns(ctx, p, topics, events)
	}
	full := make([]string, len(topics))
	for i, t := range topics {
		if i > 0 && t == topics[i-1] {
			full[i] = full[i-1]
			continue
		}
		full[i] = p.prefix + t
	}
	return ep.PublishEach(ctx, full, events)
}

func (p *prefixed) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	inner, err := p.sub.Subscribe(ctx, p.prefix+pattern, opts...)
	if err != nil {
		return nil, err
	}
	s := &prefixedSub{inner: inner, prefix: p.prefix, out: make(chan *eventkit.Message), stop: make(chan struct{})}
	s.wg.Add(1)
	go s.forward()
	return s, nil
}

// Close closes the underlying publisher (and subscriber when distinct).
func (p *prefixed) Close() error {
	err := p.sub.Close()
	if any(p.pub) != any(p.sub) {
		if e := p.pub.Close(); err == nil {
			err = e
		}
	}
	return err
}

type prefixedSub struct {
	inner  eventkit.Subscription
	prefix string
	out    chan *eventkit.Message
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func (s *prefixedSub) forward() {
	defer s.wg.Done()
	defer close(s.out)
	for {
		select {
		case m, ok := <-s.inner.Messages():
			if !ok {
				return
			}
			m.Topic = strings.TrimPrefix(m.Topic, s.prefix)
			select {
			case s.out <- m:
			case <-s.stop:
				// Not taken: nacked, so that it comes back at once
				// (left unsettled, it would wait for the broker's ack
				// wait).
				_ = m.Nack(eventkit.ErrClosed)
				return
			}
		case <-s.stop:
			return
		}
	}
}

func (s *prefixedSub) Messages() <-chan *eventkit.Message { return s.out }
func (s *prefixedSub) Err() error                         { return s.inner.Err() }

// Close stops the forwarding (a message it holds is nacked) while the
// inner subscription can still settle it, then closes the inner one.
func (s *prefixedSub) Close() error {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
	return s.inner.Close()
}
