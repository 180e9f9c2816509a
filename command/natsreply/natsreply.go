// Package natsreply carries command replies over core NATS: a Transport is
// an eventkit.Publisher and Subscriber on a *nats.Conn that keeps nothing
// (no JetStream stream, no consumer), which is what a reply needs. Give it
// to command.NewHandlers (replies are published through it) and as the
// Subscriber of command.NewClient, while the commands themselves go
// through the durable JetStream transport (package nats):
//
//	replies := natsreply.New(nc)
//	h, _ := command.NewHandlers(replies)
//	c, _ := command.NewClient(jsTransport, replies)
//
// This is NATS request/reply as nats.go's Request does it: the requester
// subscribes its own subject and the responder publishes to it. Delivery is
// at most once: a reply published while its requester is not subscribed,
// or beyond the subscription's buffer (a slow consumer), is lost, and the
// request then times out. Events travel in the CloudEvents structured JSON
// format (Content-Type application/cloudevents+json). Messages need no
// settling: Ack and Nack do nothing.
package natsreply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
	"github.com/nats-io/nats.go"
)

// ContentType is the Content-Type header of the messages published.
const ContentType = "application/cloudevents+json"

// DefaultBuffer is the number of messages a subscription holds by default
// (eventkit.WithBuffer changes it).
const DefaultBuffer = 1024

// FlushTimeout bounds the flush of a Publish whose context has no deadline.
const FlushTimeout = 10 * time.Second

// Transport publishes and subscribes over core NATS. It is safe for
// concurrent use.
type Transport struct {
	nc     *nats.Conn
	logger *slog.Logger

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
}

// Option configures a Transport.
type Option func(*Transport)

// WithLogger sets the logger of undecodable messages (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(t *Transport) { t.logger = l } }

// New returns a transport on nc, which the caller owns (Close does not
// close it). It does no I/O.
func New(nc *nats.Conn, opts ...Option) *Transport {
	t := &Transport{nc: nc, logger: slog.Default(), subs: map[*subscription]struct{}{}}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Publish publishes each event to the subject topic and flushes (bounded
// by ctx, or by FlushTimeout when ctx has no deadline), so that it returns
// once the server has them (not once a subscriber has).
func (t *Transport) Publish(ctx context.Context, name string, events ...event.Event) error {
	if err := topic.ValidateName(name); err != nil {
		return fmt.Errorf("natsreply: publish: %w", err)
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return fmt.Errorf("natsreply: publish: %w", err)
	}
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return eventkit.ErrClosed
	}
	for i := range events {
		data, err := json.Marshal(events[i])
		if err != nil {
			return fmt.Errorf("natsreply: encode event %q: %w", events[i].ID(), err)
		}
		m := nats.NewMsg(name)
		m.Header.Set("Content-Type", ContentType)
		m.Data = data
		if err := t.nc.PublishMsg(m); err != nil {
			return fmt.Errorf("natsreply: publish to %q: %w", name, err)
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		// FlushWithContext refuses a context without a deadline.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, FlushTimeout)
		defer cancel()
	}
	if err := t.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("natsreply: publish to %q: flush: %w", name, err)
	}
	return nil
}

// Subscribe subscribes to pattern (NATS subject syntax, as eventkit's);
// with eventkit.WithGroup it is a queue subscription. It ends when ctx
// ends, when it is closed or when the transport is closed.
func (t *Transport) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	if err := topic.ValidatePattern(pattern); err != nil {
		return nil, fmt.Errorf("natsreply: subscribe: %w", err)
	}
	cfg := eventkit.NewSubscribeConfig(opts...)
	size := cfg.Buffer
	if size <= 0 {
		size = DefaultBuffer
	}
	s := &subscription{
		t:    t,
		in:   make(chan *nats.Msg, size),
		out:  make(chan *eventkit.Message),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, eventkit.ErrClosed
	}
	var err error
	if cfg.Group != "" {
		s.ns, err = t.nc.ChanQueueSubscribe(pattern, cfg.Group, s.in)
	} else {
		s.ns, err = t.nc.ChanSubscribe(pattern, s.in)
	}
	if err != nil {
		return nil, fmt.Errorf("natsreply: subscribe %q: %w", pattern, err)
	}
	t.subs[s] = struct{}{}
	go s.run(ctx)
	return s, nil
}

// Close ends every subscription; later calls fail with eventkit.ErrClosed.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return eventkit.ErrClosed
	}
	t.closed = true
	subs := make([]*subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

type subscription struct {
	t    *Transport
	ns   *nats.Subscription
	in   chan *nats.Msg
	out  chan *eventkit.Message
	stop chan struct{}
	once sync.Once
	done chan struct{}
}

func (s *subscription) run(ctx context.Context) {
	defer close(s.done)
	defer close(s.out)
	defer func() {
		_ = s.ns.Unsubscribe()
		s.t.mu.Lock()
		delete(s.t.subs, s)
		s.t.mu.Unlock()
	}()
	for {
		select {
		case m := <-s.in:
			var e event.Event
			if err := json.Unmarshal(m.Data, &e); err != nil {
				s.t.logger.Warn("natsreply: dropped a message that is no CloudEvent", "subject", m.Subject, "err", err)
				continue
			}
			select {
			case s.out <- eventkit.NewMessage(m.Subject, e, 1, nil, m):
			case <-s.stop:
				return
			case <-ctx.Done():
				return
			}
		case <-s.stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// Messages returns the delivered messages; Ack and Nack do nothing.
func (s *subscription) Messages() <-chan *eventkit.Message { return s.out }

// Err returns nil: a core NATS subscription ends only when closed or when
// its context ends.
func (s *subscription) Err() error { return nil }

// Close ends the subscription and waits for its goroutine.
func (s *subscription) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return nil
}
