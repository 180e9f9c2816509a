package eventkit

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Acknowledger settles messages for a transport. A transport gives one to
// NewMessage; Message calls it at most once per message.
type Acknowledger interface {
	// Ack confirms that the message was handled.
	Ack(m *Message) error
	// Nack reports that handling failed; the transport redelivers the message
	// after delay (zero: as soon as it can), or dead-letters it by its own
	// policy. reason is the handler's error, for logging and dead letters.
	Nack(m *Message, reason error, delay time.Duration) error
}

// Message is an event in flight: delivered by a Subscription, settled once
// with Ack or Nack.
type Message struct {
	// Event is the CloudEvent delivered.
	Event event.Event
	// Topic is the topic the event was published to.
	Topic string
	// Attempt is the delivery attempt, 1 for the first delivery.
	Attempt int
	// Position is where the event is stored on the transport (a JetStream
	// stream sequence, a Kafka partition and offset, a Redis stream ID, a
	// queue row), as a string StartAtPosition accepts; "" when the
	// transport has no positions.
	Position string

	acker Acknowledger
	raw   any
	state atomic.Uint32
}

const (
	statePending uint32 = iota
	stateAcked
	stateNacked
)

// NewMessage returns a message for a transport to deliver. raw is the
// transport's native message (returned by Raw), and may be nil.
func NewMessage(topic string, e event.Event, attempt int, acker Acknowledger, raw any) *Message {
	return &Message{Event: e, Topic: topic, Attempt: attempt, acker: acker, raw: raw}
}

// Raw returns the transport's native message (a jetstream.Msg, a
// *kgo.Record, ...), or nil.
func (m *Message) Raw() any { return m.raw }

// Ack confirms the message. A second Ack is a no-op; an Ack after Nack
// returns ErrAlreadySettled.
func (m *Message) Ack() error {
	if ok, err := m.settle(stateAcked); !ok || m.acker == nil {
		return err
	}
	return m.acker.Ack(m)
}

// settle moves the message from pending to state to, and reports whether
// it did: not when it was settled before, and with ErrAlreadySettled when
// that was the other way.
func (m *Message) settle(to uint32) (bool, error) {
	if m.state.CompareAndSwap(statePending, to) {
		return true, nil
	}
	if m.state.Load() == to {
		return false, nil
	}
	return false, ErrAlreadySettled
}

// Nack reports that handling failed, asking for redelivery as soon as the
// transport can.
func (m *Message) Nack(reason error) error { return m.NackAfter(reason, 0) }

// NackAfter reports that handling failed, asking for redelivery after delay.
// A second Nack is a no-op; a Nack after Ack returns ErrAlreadySettled.
//
// A transport that cannot redeliver (no CapNack), or cannot wait before a
// redelivery (no CapNackDelay, with delay > 0), refuses the nack with an
// error wrapping ErrUnsupported; the message then stays unsettled, so that
// the caller can still Ack it (or nack it without a delay).
func (m *Message) NackAfter(reason error, delay time.Duration) error {
	if ok, err := m.settle(stateNacked); !ok || m.acker == nil {
		return err
	}
	err := m.acker.Nack(m, reason, delay)
	if err != nil && errors.Is(err, ErrUnsupported) {
		m.state.CompareAndSwap(stateNacked, statePending)
	}
	return err
}

// Settled reports whether the message was acked or nacked.
func (m *Message) Settled() bool { return m.state.Load() != statePending }

// Key returns the ordering key of the message's event (see EventKey).
func (m *Message) Key() string { return EventKey(m.Event) }

// PartitionKeyExtension is the CloudEvents partitioning extension attribute.
const PartitionKeyExtension = "partitionkey"

// EventKey returns the key that orders an event: its "partitionkey"
// extension if set, else its subject, else "".
func EventKey(e event.Event) string {
	if v, ok := e.Extensions()[PartitionKeyExtension]; ok {
		if s, ok := v.(string); ok && s != "" {
			return s
		}
	}
	return e.Subject()
}
