package middleware

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/dlq"
)

// Extensions that DeadLetter sets on a dead-lettered event.
const (
	// ExtDLQTopic holds the topic the event was published to.
	ExtDLQTopic = "dlqtopic"
	// ExtDLQHandler holds the name of the route that failed to handle it.
	ExtDLQHandler = "dlqhandler"
	// ExtDLQAttempts holds the number of attempts made (a CloudEvents
	// Integer).
	ExtDLQAttempts = "dlqattempts"
	// ExtDLQError holds the last error's message (at most MaxDLQErrorLen
	// bytes of valid UTF-8).
	ExtDLQError = "dlqerror"
	// ExtDLQTime holds the time it was dead-lettered (a CloudEvents
	// Timestamp).
	ExtDLQTime = "dlqtime"
)

// MaxDLQErrorLen bounds the error message kept in the dlqerror extension,
// so that it fits the header limits of every transport.
const MaxDLQErrorLen = 1024

// DefaultDLQRetryDelay is the delay of the nack that follows a failed
// dead-letter publish.
const DefaultDLQRetryDelay = time.Second

// DefaultDLQMaxDeliveries is the delivery attempt on which DeadLetter
// dead-letters a message whose handler still fails (see DeadLetterAfter).
const DefaultDLQMaxDeliveries = 5

// DeadLetterOption configures DeadLetter.
type DeadLetterOption func(*deadLetterConfig)

type deadLetterConfig struct {
	topic      func(string) string
	when       func(error) bool
	retryDelay time.Duration
	after      int
	logger     *slog.Logger
	now        func() time.Time
}

// DeadLetterTopic sets how the dead-letter topic is named from the
// message's topic (default: topic + ".dlq").
func DeadLetterTopic(fn func(topic string) string) DeadLetterOption {
	return func(c *deadLetterConfig) { c.topic = fn }
}

// DeadLetterIf replaces the rule that decides which errors are
// dead-lettered (default: IsPermanent(err) || IsExhausted(err), that is a
// permanent error or a Retry that gave up). Errors it rejects go up the
// chain and the Router nacks the message, until the DeadLetterAfter-th
// delivery. A *eventkit.RetryAfterError is never dead-lettered.
func DeadLetterIf(pred func(error) bool) DeadLetterOption {
	return func(c *deadLetterConfig) { c.when = pred }
}

// DeadLetterAfter sets the delivery attempt (Message.Attempt) from which a
// failing message is dead-lettered whatever its error, besides the errors
// the rule of DeadLetterIf takes (default DefaultDLQMaxDeliveries, 5; 0
// disables it). It bounds the deliveries of a message that always fails
// even when no Retry runs inside DeadLetter (no Retry, or Retry outside
// it). A *eventkit.RetryAfterError (a retry by nack in progress) is not
// taken. On a transport that does not count attempts it never applies.
func DeadLetterAfter(n int) DeadLetterOption {
	return func(c *deadLetterConfig) { c.after = n }
}

// DeadLetterRetryDelay sets the redelivery delay asked for when the
// dead-letter publish fails (default DefaultDLQRetryDelay).
func DeadLetterRetryDelay(d time.Duration) DeadLetterOption {
	return func(c *deadLetterConfig) { c.retryDelay = d }
}

// DeadLetterLogger sets the logger of the one Warn record written per
// dead-lettered event (default slog.Default()).
func DeadLetterLogger(l *slog.Logger) DeadLetterOption {
	return func(c *deadLetterConfig) { c.logger = l }
}

// DeadLetterError is returned when an event that should be dead-lettered
// could not be published to its dead-letter topic. The Router nacks the
// original (with a delay), so it is redelivered, never lost.
type DeadLetterError struct {
	Topic string // the dead-letter topic
	Err   error  // the publish error
	Cause error  // the handler's error that led to the dead letter
}

func (e *DeadLetterError) Error() string {
	return fmt.Sprintf("dead letter to %q failed: %v (handler error: %v)", e.Topic, e.Err, e.Cause)
}

// Unwrap returns the publish error. The handler's error is deliberately not
// unwrapped, so that a permanent handler error does not make this error
// look permanent to outer middleware.
func (e *DeadLetterError) Unwrap() error { return e.Err }

// DeadLetter publishes the events its inner chain gives up on to a
// dead-letter topic (default `<topic>.dlq`) through pub, then acks the
// original by returning nil. The dead-lettered event is the original with
// the extensions dlqtopic, dlqhandler, dlqattempts, dlqerror and dlqtime
// added. If the publish fails, DeadLetter returns a *DeadLetterError
// wrapped in eventkit.RetryAfter, so the Router nacks the original: it is
// never lost.
//
// DeadLetter takes the permanent errors (those marked Permanent, a
// *eventkit.PanicError, a *eventkit.DecodeError) and those of a Retry that
// gave up (a *RetryError), so it is best put outside Retry; and, whatever
// the order, any failure on the DeadLetterAfter-th delivery (default 5).
// Any other error (a retry by nack still in progress, a shutdown, an
// earlier delivery) passes through to the Router, which nacks the message
// with its redelivery backoff. DeadLetter writes one Warn log record per
// dead-lettered event, since the Router, seeing nil, logs nothing.
func DeadLetter(pub eventkit.Publisher, opts ...DeadLetterOption) eventkit.Middleware {
	c := deadLetterConfig{
		topic:      func(t string) string { return t + ".dlq" },
		when:       func(err error) bool { return IsPermanent(err) || IsExhausted(err) },
		retryDelay: DefaultDLQRetryDelay,
		after:      DefaultDLQMaxDeliveries,
		now:        time.Now,
	}
	for _, o := range opts {
		o(&c)
	}
	c.logger = cmp.Or(c.logger, slog.Default())
	return func(next eventkit.Handler) eventkit.Handler {
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
			err := next.Handle(ctx, m)
			if err == nil || m.Settled() {
				return err
			}
			var ra *eventkit.RetryAfterError
			if errors.As(err, &ra) || !(c.when(err) || (c.after > 0 && m.Attempt >= c.after)) {
				return err
			}
			return c.deadLetter(ctx, pub, m, err)
		})
	}
}

func (c *deadLetterConfig) deadLetter(ctx context.Context, pub eventkit.Publisher, m *eventkit.Message, cause error) error {
	attempts := m.Attempt
	var re *RetryError
	if errors.As(cause, &re) {
		attempts = re.Attempts
	}
	route := ""
	if ri, ok := eventkit.RouteFromContext(ctx); ok {
		route = ri.Name
	}
	e := m.Event.Clone()
	e.SetExtension(ExtDLQTopic, m.Topic)
	if route != "" {
		e.SetExtension(ExtDLQHandler, route)
	}
	e.SetExtension(ExtDLQAttempts, int32(min(attempts, 1<<31-1)))
	e.SetExtension(ExtDLQError, clipError(cause.Error()))
	e.SetExtension(ExtDLQTime, c.now().UTC())
	dlq := c.topic(m.Topic)
	if err := pub.Publish(ctx, dlq, e); err != nil {
		return eventkit.RetryAfter(&DeadLetterError{Topic: dlq, Err: err, Cause: cause}, c.retryDelay)
	}
	if rep := ReportFromContext(ctx); rep != nil {
		rep.SetOutcome(OutcomeDeadLettered)
		rep.DeadLettered = true
	}
	c.logger.LogAttrs(ctx, slog.LevelWarn, "eventkit: event dead-lettered",
		slog.String("route", route), slog.String("topic", m.Topic), slog.String("dlq", dlq),
		slog.String("id", m.Event.ID()), slog.String("type", m.Event.Type()),
		slog.String("source", m.Event.Source()), slog.Int("attempt", m.Attempt),
		slog.Int("attempts", attempts), slog.Any("err", cause))
	return nil
}

func clipError(s string) string { return dlq.Clip(s, MaxDLQErrorLen) }
