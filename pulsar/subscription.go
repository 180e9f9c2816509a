package pulsar

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"

	ps "github.com/apache/pulsar-client-go/pulsar"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
)

// subscription is the driver subscription of one consumer on one topic.
type subscription struct {
	consumer ps.Consumer
	name     string // the eventkit topic
	log      *slog.Logger
}

// newSubscription subscribes to topic name: a durable Key_Shared
// subscription named after the group, or a private exclusive one (a
// random name, non-durable: the broker drops it when its consumer
// closes). It returns once the broker made the subscription, so that every
// event published afterwards reaches it.
func newSubscription(ctx context.Context, d *drv, name string, cfg driver.Config) (*subscription, error) {
	sub, typ, private := cfg.Group, ps.KeyShared, cfg.Group == ""
	mode := ps.Durable
	if private {
		sub, typ, mode = "eventkit-"+randomHex(8), ps.Exclusive, ps.NonDurable
	}
	pos := ps.SubscriptionPositionLatest
	if cfg.FromStart {
		pos = ps.SubscriptionPositionEarliest
	}
	opts := ps.ConsumerOptions{
		Topic: d.topic(name), SubscriptionName: sub, Type: typ,
		SubscriptionInitialPosition: pos, SubscriptionMode: mode, NackRedeliveryDelay: d.o.nackDelay,
		ReceiverQueueSize: max(cfg.MaxBatch, 1),
		// Producers batch by key: without acks per batch index, a nack of
		// one message of a batch brings back the whole batch, the messages
		// already acked included (the broker's setting must agree:
		// acknowledgmentAtBatchIndexLevelEnabled).
		EnableBatchIndexAcknowledgment: true,
		// A consumer that seeks to a position starts at that message.
		StartMessageIDInclusive: cfg.StartPosition != "",
		// SendAcks returns once the broker has the acks: grouped acks
		// (the client's default, flushed every 100 ms) could still be on
		// the client when a nacked neighbour of the same batch is
		// redelivered, and the broker would send the acked ones again.
		// The transport hands acks over in batches, so this is one round
		// trip per batch, not per message.
		AckWithResponse: true,
	}
	if !private && d.o.dlqMax > 0 {
		opts.DLQ = &ps.DLQPolicy{MaxDeliveries: uint32(d.o.dlqMax), DeadLetterTopic: d.topic(d.o.dlqTopic)}
	}
	type result struct {
		c   ps.Consumer
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := d.client.Subscribe(opts)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("pulsar: subscribe to %q as %q: %w", opts.Topic, sub, r.err)
		}
		if err := startConsumer(r.c, cfg); err != nil {
			r.c.Close()
			return nil, fmt.Errorf("pulsar: subscribe to %q as %q: start: %w", opts.Topic, sub, err)
		}
		return &subscription{consumer: r.c, name: name, log: d.o.Logger}, nil
	case <-ctx.Done():
		// The subscription may still be made: close it when it is.
		go func() {
			if r := <-done; r.err == nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// ReceiveBatch waits for one message, then takes those already received,
// up to max.
func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	var out []*driver.Message
	ch := s.consumer.Chan()
	for len(out) < max {
		var cm ps.ConsumerMessage
		var ok bool
		if len(out) == 0 {
			select {
			case cm, ok = <-ch:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		} else {
			select {
			case cm, ok = <-ch:
			default:
				return out, nil
			}
		}
		if !ok {
			return out, fmt.Errorf("pulsar: consumer of %q closed: %w", s.name, eventkit.ErrClosed)
		}
		if m := s.message(cm.Message); m != nil {
			out = append(out, m)
		}
	}
	return out, nil
}

// message returns the driver message of m, or nil for a message that is
// not a CloudEvent, which it acknowledges and logs.
func (s *subscription) message(m ps.Message) *driver.Message {
	e, err := decode(m)
	if err != nil {
		s.log.Warn("pulsar: dropping a message that is not a CloudEvent", "topic", m.Topic(), "id", m.ID().String(), "error", err)
		_ = s.consumer.Ack(m)
		return nil
	}
	return &driver.Message{Topic: s.name, Event: e, Attempt: int(m.RedeliveryCount()) + 1, Position: position(m.ID()), ID: m.ID(), Raw: m}
}

// SendAcks acknowledges the messages.
func (s *subscription) SendAcks(_ context.Context, ids []driver.AckID) error {
	list := make([]ps.MessageID, len(ids))
	for i, id := range ids {
		list[i] = id.(ps.MessageID)
	}
	if err := s.consumer.AckIDList(list); err != nil {
		return fmt.Errorf("pulsar: ack on %q: %w", s.name, err)
	}
	return nil
}

// SendNacks asks for the messages again, after the consumer's nack delay.
func (s *subscription) SendNacks(_ context.Context, nacks []driver.Nack) error {
	for _, n := range nacks {
		s.consumer.NackID(n.ID.(ps.MessageID))
	}
	return nil
}

// Close closes the consumer (the broker drops a private subscription
// then).
func (s *subscription) Close() error {
	s.consumer.Close()
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
