// Package driver defines the interfaces that an eventkit transport
// implements, in the shape of database/sql/driver and gocloud.dev's
// pubsub/driver. Applications do not use this package: they hold the
// eventkit.Publisher and eventkit.Subscriber that package transport builds on a
// driver.
//
// A driver speaks its broker's protocol and nothing else. Package transport
// does, once for every transport, what each transport used to repeat:
// event validation (eventkit.ValidateEvents), topic and pattern validation
// (package topic), the closed state (eventkit.ErrClosed), the registry of
// live subscriptions, binding a subscription's life to its context,
// settle-once messages, batching of acks, retries of transient receive
// failures, option validation, refusal of what the driver's Capabilities do
// not cover, and a Shutdown(ctx) that bounds a graceful stop.
//
// # What a driver may rely on
//
//   - SendBatch receives a valid topic name (topic.ValidateName) and at
//     least one event, every one valid (eventkit.ValidateEvent). It does not
//     receive a call after Close.
//   - OpenSubscription receives a valid pattern, with wildcards only if the
//     driver declares eventkit.CapWildcards, a group only with
//     eventkit.CapConsumerGroups, a Config whose MaxBatch is positive.
//   - ReceiveBatch is never called concurrently with itself. SendAcks and
//     SendNacks may run concurrently with ReceiveBatch and with each other.
//     SendNacks is called only if the driver declares eventkit.CapNack, and
//     with a positive Delay only if it declares eventkit.CapNackDelay. No
//     method of a Subscription is called after its Close (or Shutdown)
//     began, and Close is called once, after every other call returned.
//   - Every ID passed to SendAcks or SendNacks was returned by ReceiveBatch
//     of the same Subscription, and is settled once.
//
// # Errors
//
// A driver does not retry: it returns the error. An error is transient
// unless it is marked with Permanent (or wraps eventkit.ErrClosed): package transport
// retries a transient ReceiveBatch failure with a capped exponential
// backoff and ends the subscription (Subscription.Err) on a permanent one.
// Errors of SendBatch are returned to the publisher's caller as they are;
// Package transport does not retry a publish, which may have been applied in part.
package driver

import (
	"context"
	"errors"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
)

// Publisher sends events to a broker.
type Publisher interface {
	// Capabilities returns what the driver guarantees on the publishing
	// side (eventkit.CapBatchPublish, eventkit.CapOrderPerKey). It is
	// constant and safe for concurrent use.
	Capabilities() eventkit.Capabilities
	// SendBatch publishes events to topic, in order, and returns only when
	// the broker has accepted every one of them by the driver's own
	// guarantee (a broker ack, a commit), or with an error. ctx bounds the
	// whole call. It may be called concurrently. The driver must not keep
	// events, nor modify them, after it returns (the caller owns them);
	// event data that it needs later is copied.
	SendBatch(ctx context.Context, topic string, events []event.Event) error
	// Close releases what the driver owns (not a client the caller gave
	// it). It is called once, after every SendBatch has returned.
	Close() error
}

// Subscriber opens subscriptions.
type Subscriber interface {
	// Capabilities returns what the driver's subscriptions guarantee. It is
	// constant and safe for concurrent use.
	Capabilities() eventkit.Capabilities
	// OpenSubscription starts a subscription to pattern and returns once
	// every event published afterwards will be delivered to it. ctx bounds
	// the opening only (creating a group, a queue, a consumer); the
	// subscription lives until its Close. It may be called concurrently.
	OpenSubscription(ctx context.Context, pattern string, cfg Config) (Subscription, error)
	// Close releases what the driver owns. It is called once, after every
	// subscription it opened has been closed.
	Close() error
}

// Config is a subscription's configuration, from the eventkit
// SubscribeOptions given to Subscribe.
type Config struct {
	// Group is the consumer group; "" subscribes alone.
	Group string
	// FromStart asks a new group (or subscription) to start at the oldest
	// retained event instead of the next one published.
	FromStart bool
	// StartTime and StartPosition are eventkit.StartAt and
	// eventkit.StartAtPosition. They are set only if the driver declares
	// eventkit.CapStartAtTime (eventkit.CapStartAtPosition); at most one of
	// FromStart, StartTime and StartPosition is set.
	StartTime     time.Time
	StartPosition string
	// MaxBatch is the most messages one ReceiveBatch returns, and the most
	// the driver should fetch from the broker at once (eventkit.WithBuffer,
	// else DefaultMaxBatch). It is positive.
	MaxBatch int
	// Buffer is the subscriber's eventkit.WithBuffer, or 0 when it set
	// none: a driver that holds messages in a buffer of its own sizes it
	// with Buffer, its default when Buffer is 0 (MaxBatch does not tell
	// WithBuffer(DefaultMaxBatch) from no WithBuffer).
	Buffer int
	// Options are the transport-specific options (eventkit.
	// WithTransportOption) that package transport does not handle itself. A driver
	// returns an error wrapping eventkit.ErrInvalidOption for a value it
	// does not know.
	Options []any
}

// DefaultMaxBatch is Config.MaxBatch when the subscriber set no buffer.
const DefaultMaxBatch = 100

// AckID identifies a received message to its driver, for SendAcks and
// SendNacks. Its dynamic type is the driver's choice.
type AckID any

// Message is a message received by a Subscription.
type Message struct {
	// Topic is the topic the event was published to.
	Topic string
	// Event is the decoded event. The driver gives up its ownership: each
	// Message must carry its own event (no data or extensions map shared
	// with another delivery).
	Event event.Event
	// Attempt is the delivery attempt, 1 for the first delivery. A driver
	// that does not count (no eventkit.CapAttemptCount) sets 1.
	Attempt int
	// Position is where the event is stored (eventkit.Message.Position),
	// or "".
	Position string
	// ID identifies the message for SendAcks and SendNacks.
	ID AckID
	// Raw is the broker's native message (returned by
	// eventkit.Message.Raw), or nil.
	Raw any
}

// Nack is one negative acknowledgement.
type Nack struct {
	// ID is the message's AckID.
	ID AckID
	// Delay is how long the broker should wait before it delivers the
	// message again; 0 means as soon as it can. It is positive only if the
	// driver declares eventkit.CapNackDelay.
	Delay time.Duration
	// Reason is the handler's error, for logs and dead letters; it may be
	// nil.
	Reason error
}

// Subscription receives messages in batches and settles them in batches.
type Subscription interface {
	// ReceiveBatch returns at least one and at most max messages, or an
	// error. It blocks while nothing is available, until ctx is done (then
	// it returns ctx's error, or nil and no message). It should wait in
	// the broker (a long poll) rather than spin; when it must return empty,
	// it returns (nil, nil) at most every few seconds.
	//
	// A message the driver returns is in flight until it is acked or
	// nacked; messages received and never settled (the subscription closed
	// first) are the broker's to deliver again, by the driver's
	// persistence guarantees. A message that is not a CloudEvent is not
	// returned: the driver settles it (acks or dead-letters it) and logs
	// it, with an error wrapping eventkit.ErrNotCloudEvent.
	ReceiveBatch(ctx context.Context, max int) ([]*Message, error)
	// SendAcks acknowledges the messages. It returns when the broker has
	// them, or with an error (the messages are then delivered again, by
	// the broker's rules). ctx bounds the call. The slice is the
	// caller's: the driver does not keep it after the call.
	SendAcks(ctx context.Context, ids []AckID) error
	// SendNacks asks for the redelivery of the messages, each after its
	// Delay. ctx bounds the call (not the delays); the slice is the
	// caller's, as in SendAcks. A driver without
	// eventkit.CapNack returns an error wrapping eventkit.ErrUnsupported;
	// package transport does not call it then.
	SendNacks(ctx context.Context, nacks []Nack) error
	// Close ends the subscription and releases its resources. Messages in
	// flight are left to the broker.
	Close() error
}

// Seeker is implemented by a Subscriber that can move an existing
// consumer group (eventkit.Seeker). Package transport calls Seek with a
// valid pattern and a Config whose Group is not empty and in which exactly
// one of FromStart, StartTime and StartPosition is set, each only if the
// driver declares its capability; the other fields are zero. Seek creates
// the group at that point when it does not exist. Its package documents
// what members connected at the time see.
type Seeker interface {
	Seek(ctx context.Context, pattern string, cfg Config) error
}

// Shutdowner is implemented by a Subscription, a Subscriber or a Publisher
// whose stop has work worth waiting for (destroying a private group,
// flushing a producer). Package transport calls Shutdown instead of Close, with the
// context that bounds the stop; when ctx ends first, Shutdown releases
// what it can and returns an error wrapping ctx's.
type Shutdowner interface {
	Shutdown(ctx context.Context) error
}

// Stopper is implemented by a driver (the Publisher or Subscriber given to
// transport.New) that must know when a stop begins, before package
// transport waits for the publishes in flight: for example, to make a
// publish that waits for a reconnect return eventkit.ErrClosed at once.
// transport.Transport calls Stopping at the start of each Shutdown (and
// Close), with the context that bounds it; Stopping must not block.
type Stopper interface {
	Stopping(ctx context.Context)
}

// DeliveryObserver is implemented by a Subscription that needs to know
// when a received message reaches the application: for example, to keep
// it from being reclaimed by another group member while it waits in a
// buffer, but not longer. Package transport calls Delivered once per message, from one
// goroutine, right after the application took it from
// eventkit.Subscription.Messages, and never for a message that was not
// taken.
type DeliveryObserver interface {
	Delivered(id AckID)
}

// InlineAcker is implemented by a Subscription whose ack is cheap and
// does not wait on the network: it records the ack in memory (a later
// commit sends it, as Kafka's offsets) or hands it to a client that
// queues it. Package transport then settles each eventkit.Message.Ack by
// calling AckInline from the caller's goroutine and returns its error
// to that caller, instead of queueing the ack for an ack goroutine that
// calls SendAcks with a batch. The rules of SendAcks hold: AckInline may
// run concurrently with itself, ReceiveBatch and SendNacks, receives
// each ID once, and is not called after the subscription's Close began.
// It must not block on I/O.
type InlineAcker interface {
	AckInline(id AckID) error
}

// permanentError marks a driver error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: package transport ends the subscription with it
// instead of retrying. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsRetryable reports whether err is transient: it is neither marked with
// Permanent or eventkit.Permanent, nor wraps eventkit.ErrClosed,
// eventkit.ErrUnsupported or eventkit.ErrInvalidOption. A context error is
// transient too (a driver's own timeout); the caller knows whether its ctx
// ended.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var p *permanentError
	switch {
	case errors.As(err, &p), eventkit.IsPermanent(err),
		errors.Is(err, eventkit.ErrClosed), errors.Is(err, eventkit.ErrUnsupported),
		errors.Is(err, eventkit.ErrInvalidOption):
		return false
	}
	return true
}
