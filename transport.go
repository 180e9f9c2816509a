package eventkit

import (
	"context"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Publisher publishes events to a topic. Implementations are safe for
// concurrent use.
type Publisher interface {
	// Publish validates every event (ValidateEvent) and publishes them to
	// topic, in order. It returns only when the transport has accepted every
	// event by its own guarantee (a broker ack, a commit), or with an error;
	// no event is published if one is invalid.
	Publish(ctx context.Context, topic string, events ...event.Event) error
	// Close releases the publisher; later publishes return ErrClosed.
	Close() error
}

// Subscriber subscribes to topic patterns. Implementations are safe for
// concurrent use and may hold many subscriptions.
type Subscriber interface {
	// Subscribe starts delivering the events published to topics that match
	// pattern (see package topic). With WithGroup, subscriptions of one group
	// share the events (each goes to one member); each group, and each
	// subscription without a group, gets every event. The subscription ends
	// when ctx ends, when it is closed, or when the subscriber is closed.
	Subscribe(ctx context.Context, pattern string, opts ...SubscribeOption) (Subscription, error)
	// Close ends every subscription and releases the subscriber.
	Close() error
}

// Subscription is a stream of messages.
type Subscription interface {
	// Messages returns the channel of delivered messages. It is closed when
	// the subscription ends. Each message must be settled with Ack or Nack.
	Messages() <-chan *Message
	// Err returns why the subscription ended after Messages is closed: nil
	// after Close or the subscribing context's end, an error otherwise.
	Err() error
	// Close ends the subscription. Messages delivered and not yet settled
	// are redelivered by persistent transports.
	Close() error
}

// Seeker is implemented by the subscribers (and transports) that can move
// an existing consumer group: the next events its members receive are
// those from the starting point to, which is FromStart(), StartAt(t) or
// StartAtPosition(pos), and the group's earlier progress is forgotten
// (events acked after that point are delivered again). A group that does
// not exist yet is created there, so that its first member starts at that
// point. pattern is the pattern the group subscribes to.
//
// Stop the group's members before a Seek: a member connected at the time
// may go on from where it was, or fail, depending on the transport (each
// transport's package says which), and the events it had received and not
// yet acked are delivered again. A subscriber built with package transport
// refuses a starting point that its capabilities lack (CapFromStart,
// CapStartAtTime, CapStartAtPosition) with a *CapabilityError, and
// anything but exactly one starting point with an error wrapping
// ErrInvalidOption.
type Seeker interface {
	Seek(ctx context.Context, pattern, group string, to SubscribeOption) error
}

// SubscribeConfig is the result of applying SubscribeOptions; transports
// read it with NewSubscribeConfig.
type SubscribeConfig struct {
	// Group is the consumer group; "" subscribes alone.
	Group string
	// FromStart asks a new group (or subscription) of a persistent
	// transport to start at the oldest retained event instead of the next
	// one published.
	FromStart bool
	// StartTime, when not zero, asks a new group (or subscription) to start
	// at the first event stored at or after it (StartAt). It needs
	// CapStartAtTime.
	StartTime time.Time
	// StartPosition, when not empty, asks a new group (or subscription) to
	// start at the event at this position, as the transport gave it in
	// Message.Position (StartAtPosition). It needs CapStartAtPosition.
	StartPosition string
	// Buffer is the number of messages the subscription may hold delivered
	// but not yet taken; 0 lets the transport choose.
	Buffer int
	// Transport holds transport-specific options (see each transport's
	// package), added with WithTransportOption.
	Transport []any
}

// SubscribeOption configures a subscription.
type SubscribeOption func(*SubscribeConfig)

// WithGroup subscribes as a member of the named consumer group.
func WithGroup(name string) SubscribeOption { return func(c *SubscribeConfig) { c.Group = name } }

// FromStart starts a new group or subscription at the oldest retained event.
func FromStart() SubscribeOption { return func(c *SubscribeConfig) { c.FromStart = true } }

// StartAt starts a new group or subscription at the first event stored at
// or after t (by the broker's clock: the time it stored the event, not the
// event's own time attribute). It needs CapStartAtTime; a subscriber that
// lacks it refuses the subscription with a *CapabilityError.
func StartAt(t time.Time) SubscribeOption { return func(c *SubscribeConfig) { c.StartTime = t } }

// StartAtPosition starts a new group or subscription at the event at
// position pos, a Message.Position given by the same transport (and, for a
// partitioned transport, the positions it documents). It needs
// CapStartAtPosition.
func StartAtPosition(pos string) SubscribeOption {
	return func(c *SubscribeConfig) { c.StartPosition = pos }
}

// WithBuffer bounds the messages held for the subscription.
func WithBuffer(n int) SubscribeOption { return func(c *SubscribeConfig) { c.Buffer = n } }

// WithTransportOption passes a transport-specific option (for example
// memory.WithPolicy) through Subscribe.
func WithTransportOption(v any) SubscribeOption {
	return func(c *SubscribeConfig) { c.Transport = append(c.Transport, v) }
}

// NewSubscribeConfig applies opts to a zero SubscribeConfig.
func NewSubscribeConfig(opts ...SubscribeOption) SubscribeConfig {
	var c SubscribeConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}
