package middleware

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/eventkit/eventkit"
)

// Permanent marks err as permanent: Retry does not retry it and DeadLetter
// dead-letters it at once. It is eventkit.Permanent; Permanent(nil) is nil.
func Permanent(err error) error { return eventkit.Permanent(err) }

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent (eventkit.IsPermanent).
func IsPermanent(err error) bool { return eventkit.IsPermanent(err) }

// RetryError is the error Retry returns when it gives up on a message: the
// error was permanent, or the attempts (or the time) allowed ran out.
type RetryError struct {
	// Attempts is the number of times the handler ran for this message: in
	// place, the calls made in this delivery; by nack, the delivery attempt.
	Attempts int
	// Exhausted is true when Retry gave up because the attempts or the
	// elapsed time ran out, false when the error was permanent.
	Exhausted bool
	// Err is the handler's last error.
	Err error
}

func (e *RetryError) Error() string {
	attempts := "attempts"
	if e.Attempts == 1 {
		attempts = "attempt"
	}
	if e.Exhausted {
		return fmt.Sprintf("gave up after %d %s: %v", e.Attempts, attempts, e.Err)
	}
	return fmt.Sprintf("permanent error after %d %s: %v", e.Attempts, attempts, e.Err)
}

// Unwrap returns the handler's last error.
func (e *RetryError) Unwrap() error { return e.Err }

// IsExhausted reports whether err is (or wraps) a *RetryError whose
// attempts ran out.
func IsExhausted(err error) bool {
	var re *RetryError
	return errors.As(err, &re) && re.Exhausted
}

// RetryOption configures Retry.
type RetryOption func(*retryConfig)

type retryConfig struct {
	maxAttempts  int
	maxElapsed   time.Duration
	initial      time.Duration
	maxInterval  time.Duration
	multiplier   float64
	randomFactor float64
	byNack       bool
	permanentIf  func(error) bool
	logger       *slog.Logger
}

// Retry defaults.
const (
	DefaultMaxAttempts     = 5
	DefaultMaxElapsed      = time.Minute
	DefaultInitialInterval = 100 * time.Millisecond
	DefaultMaxInterval     = 10 * time.Second
)

// MaxAttempts sets how many times the handler may run for one message,
// the first attempt included (default 5; 1 disables retrying).
func MaxAttempts(n int) RetryOption { return func(c *retryConfig) { c.maxAttempts = n } }

// MaxElapsed bounds the time spent retrying one message in place: no retry
// starts whose backoff would end after it (default 1 minute; 0: no bound).
// In nack mode Retry keeps no state between deliveries, so only MaxAttempts
// applies.
func MaxElapsed(d time.Duration) RetryOption { return func(c *retryConfig) { c.maxElapsed = d } }

// Backoff sets the exponential backoff: the first interval, the cap of the
// interval, and the multiplier between intervals (defaults 100ms, 10s, 2).
// A multiplier below 1 is taken as 1.
func Backoff(initial, max time.Duration, multiplier float64) RetryOption {
	return func(c *retryConfig) { c.initial, c.maxInterval, c.multiplier = initial, max, multiplier }
}

// Jitter sets the randomization factor of each interval: an interval i
// becomes a random value in [i*(1-f), i*(1+f)] (default 0.5; 0 disables
// jitter).
func Jitter(f float64) RetryOption { return func(c *retryConfig) { c.randomFactor = f } }

// RetryByNack makes Retry retry through the transport instead of in place:
// a failed attempt returns eventkit.RetryAfter(err, backoff) so that the
// Router nacks the message with that delay and the transport redelivers it;
// the attempt number is the message's Attempt. The handler's goroutine is
// free while it waits, and the retry survives a restart on a persistent
// transport; the price is a redelivery per retry.
func RetryByNack() RetryOption { return func(c *retryConfig) { c.byNack = true } }

// PermanentIf adds a predicate for errors that must not be retried, besides
// those marked with Permanent (for example a validation error of the
// domain). Retry gives up on them at once, marking them Permanent, so that
// DeadLetter dead-letters them.
func PermanentIf(pred func(error) bool) RetryOption {
	return func(c *retryConfig) { c.permanentIf = pred }
}

// RetryLogger sets the logger for the failed attempts retried in place, at
// Debug level (default slog.Default()). The final failure is logged once by
// the Router (or DeadLetter), not here.
func RetryLogger(l *slog.Logger) RetryOption { return func(c *retryConfig) { c.logger = l } }

// Retry retries a failing handler with exponential backoff and jitter
// (github.com/cenkalti/backoff/v5), up to MaxAttempts attempts and, in
// place, MaxElapsed time. An error marked Permanent (or matching
// PermanentIf) is not retried. When Retry gives up it returns a *RetryError
// wrapping the last error, which DeadLetter recognises; without DeadLetter
// the Router nacks the message.
//
// In place (the default), the retries happen within one delivery: the
// handler runs again after each backoff, and the message is not settled
// in between. A context that ends during a backoff stops the retries and
// returns the last error joined with the context's error, not a
// *RetryError: the message is nacked, never dead-lettered, on shutdown.
//
// With RetryByNack, see that option.
func Retry(opts ...RetryOption) eventkit.Middleware {
	c := retryConfig{
		maxAttempts:  DefaultMaxAttempts,
		maxElapsed:   DefaultMaxElapsed,
		initial:      DefaultInitialInterval,
		maxInterval:  DefaultMaxInterval,
		multiplier:   2,
		randomFactor: 0.5,
	}
	for _, o := range opts {
		o(&c)
	}
	if c.maxAttempts < 1 {
		c.maxAttempts = 1
	}
	if c.multiplier < 1 {
		c.multiplier = 1
	}
	if c.initial <= 0 {
		c.initial = time.Millisecond
	}
	if c.maxInterval < c.initial {
		c.maxInterval = c.initial
	}
	c.randomFactor = min(max(c.randomFactor, 0), 0.99)
	c.logger = cmp.Or(c.logger, slog.Default())
	return func(next eventkit.Handler) eventkit.Handler {
		if c.byNack {
			return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
				return c.handleByNack(ctx, next, m)
			})
		}
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
			return c.handleInPlace(ctx, next, m)
		})
	}
}

func (c *retryConfig) newBackOff() *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     c.initial,
		RandomizationFactor: c.randomFactor,
		Multiplier:          c.multiplier,
		MaxInterval:         c.maxInterval,
	}
	b.Reset()
	return b
}

func (c *retryConfig) permanent(err error) bool {
	return eventkit.IsPermanent(err) || (c.permanentIf != nil && c.permanentIf(err))
}

func (c *retryConfig) giveUp(err error, attempts int, exhausted bool) error {
	if !exhausted {
		err = eventkit.Permanent(err)
	}
	return &RetryError{Attempts: attempts, Exhausted: exhausted, Err: err}
}

func (c *retryConfig) handleInPlace(ctx context.Context, next eventkit.Handler, m *eventkit.Message) error {
	err := next.Handle(ctx, m)
	if err == nil || m.Settled() {
		return err
	}
	var (
		b     *backoff.ExponentialBackOff
		start = time.Now()
		rep   = ReportFromContext(ctx)
	)
	for attempt := 1; ; attempt++ {
		if c.permanent(err) {
			return c.giveUp(err, attempt, false)
		}
		var ra *eventkit.RetryAfterError
		if errors.As(err, &ra) {
			return err // the handler asked for a redelivery with a delay
		}
		if ctx.Err() != nil { // shutting down: nack, never dead-letter
			return errors.Join(err, fmt.Errorf("retry interrupted: %w", ctx.Err()))
		}
		if attempt >= c.maxAttempts {
			return c.giveUp(err, attempt, true)
		}
		if b == nil {
			b = c.newBackOff()
		}
		wait := b.NextBackOff()
		if c.maxElapsed > 0 && time.Since(start)+wait > c.maxElapsed {
			return c.giveUp(err, attempt, true)
		}
		c.logger.LogAttrs(ctx, slog.LevelDebug, "eventkit: retrying handler",
			slog.String("topic", m.Topic), slog.String("id", m.Event.ID()),
			slog.Int("attempt", attempt), slog.Duration("backoff", wait), slog.Any("err", err))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, fmt.Errorf("retry interrupted: %w", ctx.Err()))
		}
		rep.AddRetry()
		err = next.Handle(ctx, m)
		if err == nil || m.Settled() {
			return err
		}
	}
}

func (c *retryConfig) handleByNack(ctx context.Context, next eventkit.Handler, m *eventkit.Message) error {
	err := next.Handle(ctx, m)
	if err == nil || m.Settled() {
		return err
	}
	attempt := max(m.Attempt, 1)
	if c.permanent(err) {
		return c.giveUp(err, attempt, false)
	}
	var ra *eventkit.RetryAfterError
	if errors.As(err, &ra) {
		return err
	}
	if attempt >= c.maxAttempts {
		return c.giveUp(err, attempt, true)
	}
	return eventkit.RetryAfter(err, c.delay(attempt))
}

// delay returns the backoff before delivery attempt+1.
func (c *retryConfig) delay(attempt int) time.Duration {
	b := c.newBackOff()
	d := b.NextBackOff()
	for i := 1; i < attempt && i < 64; i++ {
		d = b.NextBackOff()
	}
	return d
}
