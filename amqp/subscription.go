package amqp

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
	amqp "github.com/rabbitmq/amqp091-go"
)

// subscription consumes one queue; one goroutine (loop) consumes and
// re-establishes the channel after a connection loss.
type subscription struct {
	t        *Transport
	pattern  string
	key      string // binding key
	queue    string
	private  bool
	prefetch int
	tag      string

	out    chan *eventkit.Message
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	chMu sync.Mutex
	ch   *amqp.Channel

	tmu    sync.Mutex // guards timers, closed
	timers map[*time.Timer]struct{}
	closed bool
	twg    sync.WaitGroup

	stopCtx   func() bool
	closeOnce sync.Once
}

func newSubscription(t *Transport, pattern string, cfg eventkit.SubscribeConfig) *subscription {
	s := &subscription{t: t, pattern: pattern, key: topic.ToAMQP(pattern), queue: cfg.Group, prefetch: cfg.Buffer,
		tag: "eventkit-" + randomHex(6), out: make(chan *eventkit.Message), done: make(chan struct{}),
		timers: map[*time.Timer]struct{}{}}
	if s.prefetch <= 0 {
		s.prefetch = DefaultPrefetch
	}
	if s.queue == "" {
		s.private = true
		s.queue = "eventkit-private-" + randomHex(8)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// setup declares and binds the queue on a new channel and starts consuming.
func (s *subscription) setup(ctx context.Context) (*amqp.Channel, <-chan amqp.Delivery, error) {
	c, err := s.t.connection(ctx)
	if err != nil {
		return nil, nil, err
	}
	ch, err := c.Channel()
	if err != nil {
		return nil, nil, fmt.Errorf("amqp: subscribe %q: open channel: %w", s.pattern, err)
	}
	fail := func(what string, err error) (*amqp.Channel, <-chan amqp.Delivery, error) {
		_ = ch.Close()
		return nil, nil, fmt.Errorf("amqp: subscribe %q: %s queue %q: %w", s.pattern, what, s.queue, err)
	}
	args := amqp.Table{"x-queue-type": "quorum"}
	if s.private {
		args["x-expires"] = max(s.t.o.privateExpiry.Milliseconds(), 1000)
	}
	if s.t.o.dlx != "" {
		args["x-dead-letter-exchange"] = s.t.o.dlx
	}
	if s.t.o.deliveryLimit > 0 {
		args["x-delivery-limit"] = s.t.o.deliveryLimit
	}
	if _, err := ch.QueueDeclare(s.queue, true, false, false, false, args); err != nil {
		return fail("declare", err)
	}
	if err := ch.QueueBind(s.queue, s.key, s.t.o.exchange, false, nil); err != nil {
		return fail("bind", err)
	}
	if err := ch.Qos(s.prefetch, 0, false); err != nil {
		return fail("set prefetch for", err)
	}
	deliveries, err := ch.Consume(s.queue, s.tag, false, false, false, false, nil)
	if err != nil {
		return fail("consume", err)
	}
	return ch, deliveries, nil
}

func (s *subscription) start(ctx context.Context, ch *amqp.Channel, deliveries <-chan amqp.Delivery) {
	s.ch = ch
	go s.loop(deliveries)
	s.stopCtx = context.AfterFunc(ctx, func() { _ = s.Close() })
}

func (s *subscription) loop(deliveries <-chan amqp.Delivery) {
	defer close(s.done)
	defer close(s.out)
	for {
		s.consume(deliveries)
		if s.ctx.Err() != nil {
			return
		}
		s.t.o.logger.Warn("amqp: consumer channel lost; subscribing again", "queue", s.queue)
		backoff := 50 * time.Millisecond
		for {
			ch, d, err := s.setup(s.ctx)
			if err == nil {
				s.chMu.Lock()
				s.ch = ch
				s.chMu.Unlock()
				deliveries = d
				break
			}
			if s.ctx.Err() != nil {
				return
			}
			s.t.o.logger.Warn("amqp: subscribe again failed", "queue", s.queue, "err", err, "backoff", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

func (s *subscription) consume(deliveries <-chan amqp.Delivery) {
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-deliveries:
			if !ok {
				return
			}
		case <-s.ctx.Done():
			return
		}
		if !topic.Match(s.pattern, d.RoutingKey) {
			_ = d.Ack(false) // "#" matched zero words: not for this pattern
			continue
		}
		ev, err := decode(&d)
		if err != nil {
			s.t.o.logger.Error("amqp: rejecting a message that is not a valid CloudEvent", "queue", s.queue, "routing_key", d.RoutingKey, "err", err)
			_ = d.Reject(false)
			continue
		}
		m := eventkit.NewMessage(d.RoutingKey, ev, attempt(&d), s, &d)
		select {
		case s.out <- m:
		case <-s.ctx.Done():
			return // unsettled: requeued when the channel closes
		}
	}
}

// attempt is the quorum queue's delivery count plus one.
func attempt(d *amqp.Delivery) int {
	switch n := d.Headers["x-delivery-count"].(type) {
	case int64:
		return int(n) + 1
	case int32:
		return int(n) + 1
	case int:
		return n + 1
	}
	if d.Redelivered {
		return 2
	}
	return 1
}

// Ack implements eventkit.Acknowledger.
func (s *subscription) Ack(m *eventkit.Message) error {
	if err := m.Raw().(*amqp.Delivery).Ack(false); err != nil {
		return fmt.Errorf("amqp: ack: %w", err)
	}
	return nil
}

// Nack implements eventkit.Acknowledger: a Permanent reason rejects the
// message without requeueing (dead-lettering it if the queue has a
// dead-letter exchange); otherwise it is requeued after delay, held by the
// subscription until then.
func (s *subscription) Nack(m *eventkit.Message, reason error, delay time.Duration) error {
	d := m.Raw().(*amqp.Delivery)
	if eventkit.IsPermanent(reason) {
		if err := d.Reject(false); err != nil {
			return fmt.Errorf("amqp: reject: %w", err)
		}
		return nil
	}
	if delay <= 0 {
		if err := d.Nack(false, true); err != nil {
			return fmt.Errorf("amqp: nack: %w", err)
		}
		return nil
	}
	s.tmu.Lock()
	defer s.tmu.Unlock()
	if s.closed {
		return eventkit.ErrClosed // requeued as the channel closes
	}
	s.twg.Add(1)
	var tm *time.Timer
	tm = time.AfterFunc(delay, func() {
		defer s.twg.Done()
		s.tmu.Lock()
		delete(s.timers, tm)
		s.tmu.Unlock()
		if err := d.Nack(false, true); err != nil {
			s.t.o.logger.Warn("amqp: delayed nack failed; the broker requeues the message with its channel", "err", err)
		}
	})
	s.timers[tm] = struct{}{}
	return nil
}

func (s *subscription) Messages() <-chan *eventkit.Message { return s.out }

func (s *subscription) Err() error { return nil }

// Close stops consuming and closes the channel, which requeues every
// unsettled message; a private queue is deleted.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		if s.stopCtx != nil {
			s.stopCtx()
		}
		s.cancel()
		<-s.done
		s.tmu.Lock()
		s.closed = true
		for tm := range s.timers {
			if tm.Stop() {
				s.twg.Done()
			}
		}
		s.timers = nil
		s.tmu.Unlock()
		s.twg.Wait()
		s.chMu.Lock()
		ch := s.ch
		s.chMu.Unlock()
		if ch != nil {
			_ = ch.Close()
		}
		if s.private {
			s.deleteQueue()
		}
		s.t.forget(s)
	})
	return nil
}

func (s *subscription) deleteQueue() {
	s.t.mu.Lock()
	c := s.t.conn
	s.t.mu.Unlock()
	if c == nil || c.IsClosed() {
		return // x-expires removes it
	}
	ch, err := c.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	if _, err := ch.QueueDelete(s.queue, false, false, false); err != nil {
		s.t.o.logger.Warn("amqp: delete private queue", "queue", s.queue, "err", err)
	}
}
