package mqtt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/internal/randid"
	"github.com/eventkit/eventkit/topic"
)

// subscription is one MQTT connection with one subscription. paho's
// callback (onPublish) queues the messages in in; ReceiveBatch takes them.
type subscription struct {
	d       *drv
	pattern string
	filter  string
	qos     byte

	cm       *autopaho.ConnectionManager
	cancelCM context.CancelFunc
	ups      atomic.Int32

	in     chan *driver.Message // capacity MaxBatch: the messages held
	ctx    context.Context      // cancelled when the stop begins
	cancel context.CancelFunc
	wg     sync.WaitGroup // resubscriptions after a reconnect

	mu     sync.RWMutex // onPublish and acks hold it shared; the stop exclusively
	closed bool
}

// ackID is a message's driver.AckID: the packet and the client (of the
// connection) that received it.
type ackID struct {
	c *paho.Client
	p *paho.Publish
}

func newSubscription(ctx context.Context, d *drv, pattern string, cfg driver.Config) (*subscription, error) {
	s := &subscription{d: d, pattern: pattern, filter: topic.ToMQTT(pattern), qos: d.o.qos, in: make(chan *driver.Message, cfg.MaxBatch)}
	if cfg.Group != "" {
		if strings.ContainsAny(cfg.Group, "/+#") {
			return nil, fmt.Errorf("mqtt: subscribe: group %q must not contain '/', '+' or '#'", cfg.Group)
		}
		s.filter = "$share/" + cfg.Group + "/" + s.filter
	}
	clientID, persistent := "eventkit-sub-"+randid.Hex(8), false
	for _, o := range cfg.Options {
		id, ok := o.(sessionOption)
		if !ok {
			return nil, eventkit.InvalidOption("eventkit.WithTransportOption", fmt.Sprintf("the mqtt transport has no subscription option of type %T", o))
		}
		if id == "" {
			return nil, eventkit.InvalidOption("mqtt.Session", "the session id must not be empty")
		}
		if s.qos == 0 {
			return nil, eventkit.InvalidOption("mqtt.Session", "a persistent session needs QoS 1 or 2 (WithQoS): at QoS 0 the broker keeps nothing for it")
		}
		clientID, persistent = string(id), true
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	cm, cancel, err := d.connect(ctx, clientID, persistent, s.onUp, s.onPublish)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.cm, s.cancelCM = cm, cancel
	if err := s.subscribe(ctx); err != nil {
		s.cancel()
		return nil, errors.Join(err, disconnect(ctx, cm, cancel))
	}
	return s, nil
}

func (s *subscription) subscribe(ctx context.Context) error {
	ack, err := s.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.filter, QoS: s.qos}}})
	if err != nil {
		return fmt.Errorf("mqtt: subscribe %q: %w", s.filter, err)
	}
	if len(ack.Reasons) != 1 || ack.Reasons[0] >= 0x80 {
		return fmt.Errorf("mqtt: subscribe %q: refused by the broker (reason codes %v)", s.filter, ack.Reasons)
	}
	return nil
}

// onUp subscribes again after a reconnect whose session the broker did
// not keep. It must not block.
func (s *subscription) onUp(_ *autopaho.ConnectionManager, c *paho.Connack) {
	if s.ups.Add(1) == 1 || c.SessionPresent {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for s.ctx.Err() == nil {
			ctx, cancel := context.WithTimeout(s.ctx, connectTimeout)
			err := s.subscribe(ctx)
			cancel()
			if err == nil {
				return
			}
			s.d.o.Logger.Warn("mqtt: subscribe after reconnect failed", "filter", s.filter, "err", err)
			select {
			case <-time.After(resubscribeEvery):
			case <-s.ctx.Done():
			}
		}
	}()
}

// onPublish queues a received message, waiting while the queue is full
// (which holds the connection's later messages back). A message not for
// the pattern, or that is no valid CloudEvent, is acked (and the latter
// logged).
func (s *subscription) onPublish(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	name := topic.FromMQTT(p.Topic)
	if !topic.Match(s.pattern, name) {
		_ = pr.Client.Ack(p) // '#' matched the parent level: not for this pattern
		return true, nil
	}
	ev, err := decode(p)
	if err != nil {
		if !errors.Is(err, eventkit.ErrNotCloudEvent) {
			err = fmt.Errorf("%w: %w", eventkit.ErrNotCloudEvent, err)
		}
		s.d.o.Logger.Error("mqtt: dropping a message that is not a valid CloudEvent", "topic", p.Topic, "err", err)
		_ = pr.Client.Ack(p)
		return true, nil
	}
	m := &driver.Message{Topic: name, Event: ev, Attempt: 1, ID: &ackID{c: pr.Client, p: p}, Raw: p}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return true, nil // not acked: a persistent session gets it again
	}
	select {
	case s.in <- m:
	case <-s.ctx.Done():
	}
	return true, nil
}

// ReceiveBatch waits for a message, then takes those already queued, up
// to max.
func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	var out []*driver.Message
	select {
	case m := <-s.in:
		out = append(out, m)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for len(out) < max {
		select {
		case m := <-s.in:
			out = append(out, m)
		default:
			return out, nil
		}
	}
	return out, nil
}

// SendAcks gives the acks to paho, which sends them in the order the
// messages were received (at QoS 0 there is nothing to send).
func (s *subscription) SendAcks(_ context.Context, ids []driver.AckID) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return eventkit.ErrClosed
	}
	var errs []error
	for _, id := range ids {
		a := id.(*ackID)
		if err := a.c.Ack(a.p); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("mqtt: ack %d of %d messages failed: %w", len(errs), len(ids), errors.Join(errs...))
	}
	return nil
}

// SendNacks is refused: MQTT cannot ask the broker for a redelivery.
// Package transport does not call it (the driver lacks eventkit.CapNack);
// a Nack returns a *eventkit.CapabilityError and leaves the message
// unacknowledged.
func (s *subscription) SendNacks(context.Context, []driver.Nack) error {
	return &eventkit.CapabilityError{Transport: "mqtt", Op: "nack", Missing: eventkit.CapNack}
}

// Close is Shutdown without a bound.
func (s *subscription) Close() error { return s.Shutdown(context.Background()) }

// Shutdown disconnects the subscription's connection within ctx, after a
// short grace (ackGrace) for paho to send the last acks. A persistent
// session stays on the broker (its subscription and its undelivered and
// unacked QoS >= 1 messages) until the session expiry.
func (s *subscription) Shutdown(ctx context.Context) error {
	s.cancel()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case <-time.After(ackGrace):
	case <-ctx.Done():
	}
	err := disconnect(ctx, s.cm, s.cancelCM)
	s.wg.Wait()
	return err
}

var (
	_ driver.Subscription = (*subscription)(nil)
	_ driver.Shutdowner   = (*subscription)(nil)
)
