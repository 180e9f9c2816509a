package es

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/dlq"
	"github.com/eventkit/eventkit/topic"
)

// ErrorPolicy says what a Projector does when its handler fails on an
// event. Make one with StopOnError (the default), DeadLetterOnError or
// RetryOnError, and add retries to the first two with WithRetry:
//
//	es.WithErrorPolicy(es.DeadLetterOnError(bus, "projections.dlq").WithRetry(3, 100*time.Millisecond, 2*time.Second))
//
// Retries wait initial, doubling up to max, between attempts. An error
// marked permanent (eventkit.Permanent) and a handler's panic (an
// *eventkit.PanicError) are not retried: the policy's last step applies at
// once.
type ErrorPolicy struct {
	retries      int // -1: without limit
	initial, max time.Duration
	pub          eventkit.Publisher
	topic        string
	deadLetter   bool
	err          error // an invalid argument, reported by NewProjector
}

// StopOnError stops the projection at the failing event: Run returns the
// error, and the checkpoint stays before the event, which is handled again
// when the projection runs next. It is the default policy.
func StopOnError() ErrorPolicy { return ErrorPolicy{} }

// DeadLetterOnError skips a failing event after publishing a copy of it to
// topic through pub, with the error and where it came from as extensions
// (dlqerror, dlqhandler = the projection's name, dlqattempts, dlqtime, as
// middleware.DeadLetter sets them; dlqposition and dlqstream): the
// projection goes on and its checkpoint advances past the event. If the
// publish fails, the projection stops (as StopOnError), so that no event is
// skipped without a record.
func DeadLetterOnError(pub eventkit.Publisher, topicName string) ErrorPolicy {
	p := ErrorPolicy{pub: pub, topic: topicName, deadLetter: true}
	switch {
	case pub == nil:
		p.err = eventkit.InvalidOption("DeadLetterOnError", "nil publisher")
	default:
		if err := topic.ValidateName(topicName); err != nil {
			p.err = eventkit.InvalidOption("DeadLetterOnError", err.Error())
		}
	}
	return p
}

// RetryOnError handles a failing event again and again, waiting initial,
// doubling up to max, between attempts, until it succeeds or the context
// ends: no event is skipped, and the projection waits while, say, its read
// model's database is down. A permanent error stops the projection.
func RetryOnError(initial, max time.Duration) ErrorPolicy {
	return StopOnError().retry("RetryOnError", -1, initial, max)
}

// WithRetry returns p that first handles a failing event again up to n
// times, waiting initial, doubling up to max, between attempts; p applies
// when the last attempt fails.
func (p ErrorPolicy) WithRetry(n int, initial, max time.Duration) ErrorPolicy {
	if n < 0 {
		p.err = cmpErr(p.err, eventkit.InvalidOption("WithRetry", fmt.Sprintf("retries must not be negative, got %d", n)))
		return p
	}
	return p.retry("WithRetry", n, initial, max)
}

func (p ErrorPolicy) retry(name string, n int, initial, max time.Duration) ErrorPolicy {
	if initial <= 0 || max < initial {
		p.err = cmpErr(p.err, eventkit.InvalidOption(name, fmt.Sprintf("want 0 < initial <= max, got initial %v, max %v", initial, max)))
	}
	p.retries, p.initial, p.max = n, initial, max
	return p
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// WithErrorPolicy sets what the projection does when its handler fails
// (default StopOnError()).
func WithErrorPolicy(p ErrorPolicy) ProjectionOption {
	return func(c *projConfig) { c.policy = p }
}

// Extensions that a projection's dead letter carries besides those of
// middleware.DeadLetter (dlqerror, dlqhandler, dlqattempts, dlqtime).
const (
	// ExtDLQPosition holds the event's global position (a decimal string).
	ExtDLQPosition = "dlqposition"
	// ExtDLQStream holds the event's stream id.
	ExtDLQStream = "dlqstream"
)

// maxDLQErrorLen is middleware.MaxDLQErrorLen.
const maxDLQErrorLen = 1024

// project hands r to the handler under the error policy. It returns nil
// when the event was handled or dead-lettered, ctx's error when ctx ended,
// and the error that stops the projection otherwise.
func (p *Projector) project(ctx context.Context, r RecordedEvent) error {
	pol := p.cfg.policy
	delay := pol.initial
	var timer *time.Timer
	for attempt := 1; ; attempt++ {
		err := p.call(ctx, r)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if eventkit.IsPermanent(err) || (pol.retries >= 0 && attempt > pol.retries) {
			return p.giveUp(ctx, r, err, attempt)
		}
		p.cfg.logger.Warn("es: projection handler failed; retrying", "projection", p.name,
			"position", r.Position, "stream", r.StreamID, "attempt", attempt, "delay", delay, "err", err)
		if timer == nil {
			timer = time.NewTimer(delay)
			defer timer.Stop()
		} else {
			timer.Reset(delay)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		delay = min(delay*2, pol.max)
	}
}

// call runs the handler, its panic becoming an *eventkit.PanicError.
func (p *Projector) call(ctx context.Context, r RecordedEvent) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &eventkit.PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return p.handler(ctx, r)
}

// giveUp applies the policy's last step to r, which failed with cause.
func (p *Projector) giveUp(ctx context.Context, r RecordedEvent, cause error, attempts int) error {
	stop := fmt.Errorf("es: projection %s at position %d: %w", p.name, r.Position, cause)
	pol := p.cfg.policy
	if !pol.deadLetter {
		return stop
	}
	e := r.Event.Clone()
	e.SetExtension("dlqhandler", p.name)
	e.SetExtension("dlqattempts", int32(min(attempts, 1<<31-1)))
	e.SetExtension("dlqerror", dlq.Clip(cause.Error(), maxDLQErrorLen))
	e.SetExtension("dlqtime", time.Now().UTC())
	e.SetExtension(ExtDLQPosition, strconv.FormatUint(r.Position, 10))
	if r.StreamID != "" {
		e.SetExtension(ExtDLQStream, r.StreamID)
	}
	if err := pol.pub.Publish(ctx, pol.topic, e); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errors.Join(stop, fmt.Errorf("es: dead-letter to %s: %w", pol.topic, err))
	}
	p.deadLettered.Add(1)
	p.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "es: event dead-lettered", slog.String("projection", p.name),
		slog.String("dlq", pol.topic), slog.Uint64("position", r.Position), slog.String("stream", r.StreamID),
		slog.String("id", r.Event.ID()), slog.String("type", r.Event.Type()), slog.Int("attempts", attempts),
		slog.Any("err", cause))
	return nil
}

// DeadLettered returns how many events the projection dead-lettered
// (DeadLetterOnError) since it was made.
func (p *Projector) DeadLettered() uint64 { return p.deadLettered.Load() }
