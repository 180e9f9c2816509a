package mqtt

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/topic"
)

// subscription is one MQTT connection with one subscription.
type subscription struct {
	t       *Transport
	pattern string
	filter  string
	qos     byte

	cm       *autopaho.ConnectionManager
	cancelCM context.CancelFunc
	ups      atomic.Int32

	out    chan *eventkit.Message
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // resubscriptions after a reconnect

	mu     sync.RWMutex // senders on out and Ack hold it shared; Close exclusively
	closed bool

	stopCtx   func() bool
	closeOnce sync.Once
}

func newSubscription(ctx context.Context, t *Transport, pattern string, cfg eventkit.SubscribeConfig) (*subscription, error) {
	size := cfg.Buffer
	if size <= 0 {
		size = DefaultBuffer
	}
	s := &subscription{t: t, pattern: pattern, filter: topic.ToMQTT(pattern), qos: t.o.qos, out: make(chan *eventkit.Message, size)}
	if cfg.Group != "" {
		if strings.ContainsAny(cfg.Group, "/+#") {
			return nil, fmt.Errorf("mqtt: subscribe: group %q must not contain '/', '+' or '#'", cfg.Group)
		}
		s.filter = "$share/" + cfg.Group + "/" + s.filter
	}
	clientID, persistent := "eventkit-sub-"+randomHex(8), false
	for _, o := range cfg.Transport {
		if id, ok := o.(sessionOption); ok {
			clientID, persistent = string(id), true
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	cm, cancel, err := t.connect(ctx, clientID, persistent, s.onUp, s.onPublish)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.cm, s.cancelCM = cm, cancel
	if err := s.subscribe(ctx); err != nil {
		s.cancel()
		disconnect(cm, cancel)
		return nil, err
	}
	s.stopCtx = context.AfterFunc(ctx, func() { _ = s.Close() })
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
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			err := s.subscribe(ctx)
			cancel()
			if err == nil {
				return
			}
			s.t.o.logger.Warn("mqtt: subscribe after reconnect failed", "filter", s.filter, "err", err)
			select {
			case <-time.After(time.Second):
			case <-s.ctx.Done():
			}
		}
	}()
}

func (s *subscription) onPublish(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	name := topic.FromMQTT(p.Topic)
	if !topic.Match(s.pattern, name) {
		_ = pr.Client.Ack(p) // '#' matched the parent level: not for this pattern
		return true, nil
	}
	ev, err := decode(p)
	if err != nil {
		s.t.o.logger.Error("mqtt: dropping a message that is not a valid CloudEvent", "topic", p.Topic, "err", err)
		_ = pr.Client.Ack(p)
		return true, nil
	}
	m := eventkit.NewMessage(name, ev, 1, &acker{s: s, c: pr.Client, p: p}, p)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return true, nil // not acked: a persistent session gets it again
	}
	select {
	case s.out <- m:
	case <-s.ctx.Done():
	}
	return true, nil
}

type acker struct {
	s *subscription
	c *paho.Client
	p *paho.Publish
}

func (a *acker) Ack(*eventkit.Message) error {
	a.s.mu.RLock()
	defer a.s.mu.RUnlock()
	if a.s.closed {
		return eventkit.ErrClosed
	}
	if err := a.c.Ack(a.p); err != nil {
		return fmt.Errorf("mqtt: ack: %w", err)
	}
	return nil
}

// Nack acknowledges the message too: MQTT cannot ask for a redelivery.
func (a *acker) Nack(m *eventkit.Message, reason error, _ time.Duration) error {
	a.s.t.o.logger.Warn("mqtt: nacked message acknowledged: MQTT has no redelivery", "topic", m.Topic, "id", m.Event.ID(), "reason", reason)
	return a.Ack(m)
}

func (s *subscription) Messages() <-chan *eventkit.Message { return s.out }

func (s *subscription) Err() error { return nil }

// Close disconnects the subscription's connection. A persistent session
// stays on the broker (its subscription and its undelivered and unacked
// QoS >= 1 messages) until the session expiry.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		if s.stopCtx != nil {
			s.stopCtx()
		}
		s.cancel()
		s.mu.Lock()
		s.closed = true
		close(s.out)
		s.mu.Unlock()
		// paho sends acknowledgements on a ticker and forgets unsent ones
		// when the connection closes: let the last ones go out first.
		time.Sleep(5 * sendAcksInterval)
		disconnect(s.cm, s.cancelCM)
		s.wg.Wait()
		s.t.forget(s)
	})
	return nil
}
