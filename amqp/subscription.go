package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/internal/randid"
	"github.com/eventkit/eventkit/topic"
	amqp "github.com/rabbitmq/amqp091-go"
)

// errChannelLost is ReceiveBatch's (transient) error when the consumer's
// channel ended: the next call subscribes again.
var errChannelLost = errors.New("amqp: consumer channel lost; subscribing again")

// subscription consumes one queue. ReceiveBatch (never concurrent with
// itself) owns deliveries and opens the channel again after it is lost; the
// AckID of a message is its *amqp.Delivery, which acks on the channel that
// delivered it.
type subscription struct {
	d        *drv
	pattern  string
	key      string // binding key
	queue    string
	private  bool
	prefetch int
	tag      string

	deliveries <-chan amqp.Delivery // nil after the channel is lost

	chMu sync.Mutex
	ch   *amqp.Channel

	tmu    sync.Mutex // guards timers, closed
	timers map[*time.Timer]struct{}
	closed bool
	twg    sync.WaitGroup
}

func newSubscription(d *drv, pattern string, cfg driver.Config) *subscription {
	s := &subscription{d: d, pattern: pattern, key: topic.ToAMQP(pattern), queue: cfg.Group, prefetch: cfg.MaxBatch,
		tag: "eventkit-" + randid.Hex(6), timers: map[*time.Timer]struct{}{}}
	if s.queue == "" {
		s.private = true
		s.queue = "eventkit-private-" + randid.Hex(8)
	}
	return s
}

// open declares and binds the queue on a new channel and starts consuming,
// within ctx; the channel it replaces, if any, is closed.
func (s *subscription) open(ctx context.Context) error {
	c, err := s.d.connection(ctx)
	if err != nil {
		return fmt.Errorf("amqp: subscribe %q: %w", s.pattern, err)
	}
	ch, err := c.Channel()
	if err != nil {
		return fmt.Errorf("amqp: subscribe %q: open channel: %w", s.pattern, err)
	}
	fail := func(what string, err error) error {
		_ = ch.Close()
		return fmt.Errorf("amqp: subscribe %q: %s queue %q: %w", s.pattern, what, s.queue, err)
	}
	args := amqp.Table{"x-queue-type": "quorum"}
	if s.private {
		args["x-expires"] = s.d.o.privateExpiry.Milliseconds()
	}
	if s.d.o.dlx != "" {
		args["x-dead-letter-exchange"] = s.d.o.dlx
	}
	if s.d.o.deliveryLimit > 0 {
		args["x-delivery-limit"] = s.d.o.deliveryLimit
	}
	if _, err := ch.QueueDeclare(s.queue, true, false, false, false, args); err != nil {
		return fail("declare", err)
	}
	if err := ch.QueueBind(s.queue, s.key, s.d.o.exchange, false, nil); err != nil {
		return fail("bind", err)
	}
	if err := ch.Qos(s.prefetch, 0, false); err != nil {
		return fail("set prefetch for", err)
	}
	deliveries, err := ch.Consume(s.queue, s.tag, false, false, false, false, nil)
	if err != nil {
		return fail("consume", err)
	}
	s.chMu.Lock()
	old := s.ch
	s.ch = ch
	s.chMu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	s.deliveries = deliveries
	return nil
}

// ReceiveBatch waits for a delivery, then takes those already there, up
// to max. After a lost channel it subscribes again (waiting, within ctx,
// for the reconnect).
func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	if s.deliveries == nil {
		if err := s.open(ctx); err != nil {
			return nil, err
		}
	}
	var out []*driver.Message
	for len(out) < max {
		var d amqp.Delivery
		var ok bool
		if len(out) == 0 { // wait for the first
			select {
			case d, ok = <-s.deliveries:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		} else { // take what is there
			select {
			case d, ok = <-s.deliveries:
			default:
				return out, nil
			}
		}
		if !ok {
			s.deliveries = nil
			if len(out) == 0 {
				return nil, errChannelLost
			}
			return out, nil
		}
		out = s.take(out, &d)
	}
	return out, nil
}

// take appends the delivery to out as a message, or settles it when it is
// not for the subscription: a routing key that "#" matched with zero words
// is acked, a message that is no valid CloudEvent is rejected (so
// dead-lettered, with a dead-letter exchange) and logged.
func (s *subscription) take(out []*driver.Message, d *amqp.Delivery) []*driver.Message {
	if !topic.Match(s.pattern, d.RoutingKey) {
		_ = d.Ack(false)
		return out
	}
	ev, err := decode(d)
	if err != nil {
		if !errors.Is(err, eventkit.ErrNotCloudEvent) {
			err = fmt.Errorf("%w: %w", eventkit.ErrNotCloudEvent, err)
		}
		s.d.o.Logger.Error("amqp: rejecting a message that is not a valid CloudEvent", "queue", s.queue, "routing_key", d.RoutingKey, "err", err)
		_ = d.Reject(false)
		return out
	}
	return append(out, &driver.Message{Topic: d.RoutingKey, Event: ev, Attempt: attempt(d), ID: d, Raw: d})
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

// SendAcks acks each message on the channel that delivered it.
func (s *subscription) SendAcks(_ context.Context, ids []driver.AckID) error {
	var errs []error
	for _, id := range ids {
		if err := id.(*amqp.Delivery).Ack(false); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("amqp: ack %d of %d messages failed: %w", len(errs), len(ids), errors.Join(errs...))
	}
	return nil
}

// SendNacks rejects a message nacked with an eventkit.Permanent reason
// without requeueing it (dead-lettering it when the queue has a
// dead-letter exchange); it requeues the others, after their delay, which
// the subscription holds them for.
func (s *subscription) SendNacks(_ context.Context, nacks []driver.Nack) error {
	var errs []error
	for _, n := range nacks {
		if err := s.nack(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *subscription) nack(n driver.Nack) error {
	d := n.ID.(*amqp.Delivery)
	if eventkit.IsPermanent(n.Reason) {
		if err := d.Reject(false); err != nil {
			return fmt.Errorf("amqp: reject: %w", err)
		}
		return nil
	}
	if n.Delay <= 0 {
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
	tm = time.AfterFunc(n.Delay, func() {
		defer s.twg.Done()
		s.tmu.Lock()
		delete(s.timers, tm)
		s.tmu.Unlock()
		if err := d.Nack(false, true); err != nil {
			s.d.o.Logger.Warn("amqp: delayed nack failed; the broker requeues the message with its channel", "err", err)
		}
	})
	s.timers[tm] = struct{}{}
	return nil
}

// Close stops the delayed nacks and closes the channel, which requeues
// every unsettled message; a private queue is deleted (if the connection
// is up; x-expires removes it otherwise).
func (s *subscription) Close() error {
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
	var err error
	if ch != nil {
		if cerr := ch.Close(); cerr != nil && !errors.Is(cerr, amqp.ErrClosed) {
			err = fmt.Errorf("amqp: close channel of queue %q: %w", s.queue, cerr)
		}
	}
	if s.private {
		err = errors.Join(err, s.deleteQueue())
	}
	return err
}

// Shutdown is Close within ctx.
func (s *subscription) Shutdown(ctx context.Context) error { return within(ctx, s.Close) }

func (s *subscription) deleteQueue() error {
	c := s.d.current()
	if c == nil {
		return nil // x-expires removes it
	}
	ch, err := c.Channel()
	if err != nil {
		return nil // the connection is going: x-expires removes it
	}
	defer ch.Close()
	if _, err := ch.QueueDelete(s.queue, false, false, false); err != nil {
		return fmt.Errorf("amqp: delete private queue %q: %w", s.queue, err)
	}
	return nil
}

var (
	_ driver.Subscription = (*subscription)(nil)
	_ driver.Shutdowner   = (*subscription)(nil)
)
