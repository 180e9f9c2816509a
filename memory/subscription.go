package memory

import (
	"context"
	"errors"
	"sync"

	"github.com/eventkit/eventkit/driver"
)

// sub is a lone subscription: the only reader of its queue.
type sub struct {
	q     *queue
	taken []*delivery // ReceiveBatch's scratch
}

// ReceiveBatch implements driver.Subscription: it waits for the first
// delivery, then takes what else is queued, up to max.
func (s *sub) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	var d *delivery
	select {
	case d = <-s.q.ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	taken := append(s.taken[:0], d)
drain:
	for len(taken) < max {
		select {
		case d = <-s.q.ch:
			taken = append(taken, d)
		default:
			break drain
		}
	}
	s.taken = taken
	msgs := make([]driver.Message, len(taken))
	out := make([]*driver.Message, len(taken))
	for i, d := range taken {
		msgs[i] = driver.Message{Topic: d.topic, Event: d.event(), Attempt: d.attempt, ID: d}
		out[i] = &msgs[i]
		taken[i] = nil
	}
	return out, nil
}

// SendAcks implements driver.Subscription: nothing to tell anyone in
// memory; the deliveries are done.
func (s *sub) SendAcks(_ context.Context, ids []driver.AckID) error {
	for _, id := range ids {
		id.(*delivery).release()
	}
	return nil
}

// AckInline implements driver.InlineAcker: an ack only returns the
// delivery to its pool, so package transport calls it from
// eventkit.Message.Ack.
func (s *sub) AckInline(id driver.AckID) error {
	id.(*delivery).release()
	return nil
}

// SendNacks implements driver.Subscription: each event, as published, is
// queued again to the same subscription or group, with its attempt
// incremented, after the nack's delay.
func (s *sub) SendNacks(_ context.Context, nacks []driver.Nack) error {
	var errs []error
	for _, n := range nacks {
		d := n.ID.(*delivery)
		d.attempt++
		if err := s.q.requeue(d, n.Delay); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close implements driver.Subscription: the subscription leaves its queue;
// a lone subscription's buffered events are gone with it.
func (s *sub) Close() error {
	s.q.bus.leave(s.q)
	return nil
}

// member is a group member's subscription. It takes one message at a time,
// so that members compete for each message, and gives the messages it
// received but package transport did not hand over back to the group when
// it closes.
type member struct {
	*sub
	mu      sync.Mutex
	pending []*delivery // received, not yet taken by the application
}

// ReceiveBatch implements driver.Subscription with batches of one message.
func (m *member) ReceiveBatch(ctx context.Context, _ int) ([]*driver.Message, error) {
	msgs, err := m.sub.ReceiveBatch(ctx, 1)
	if len(msgs) == 1 {
		m.mu.Lock()
		m.pending = append(m.pending, msgs[0].ID.(*delivery))
		m.mu.Unlock()
	}
	return msgs, err
}

// Delivered implements driver.DeliveryObserver.
func (m *member) Delivered(id driver.AckID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, d := range m.pending {
		if d == id {
			m.pending = append(m.pending[:i], m.pending[i+1:]...)
			return
		}
	}
}

// Close implements driver.Subscription: the messages not taken go back to
// the group, for its other members.
func (m *member) Close() error {
	m.mu.Lock()
	pending := m.pending
	m.pending = nil
	m.mu.Unlock()
	for _, d := range pending {
		_ = m.q.requeue(d, 0) // fails only when the bus is closing: the events are gone
	}
	return m.sub.Close()
}
