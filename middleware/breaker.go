package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/sony/gobreaker/v2"
)

// BreakerOption configures CircuitBreaker.
type BreakerOption func(*breakerConfig)

type breakerConfig struct {
	settings   gobreaker.Settings
	failures   uint32
	retryDelay time.Duration
	metrics    *Metrics
}

// Circuit breaker defaults.
const (
	DefaultBreakerFailures   = 5
	DefaultBreakerOpenPeriod = 30 * time.Second
	DefaultBreakerRetryDelay = 5 * time.Second
)

// BreakerName names the breaker, in errors and in the breaker-state metric
// (default "eventkit").
func BreakerName(name string) BreakerOption {
	return func(c *breakerConfig) { c.settings.Name = name }
}

// BreakerFailures opens the breaker after n consecutive failures (default
// DefaultBreakerFailures). BreakerSettings can set any other rule.
func BreakerFailures(n uint32) BreakerOption { return func(c *breakerConfig) { c.failures = n } }

// BreakerOpenPeriod sets how long the breaker stays open before it lets a
// trial message through (half-open) (default DefaultBreakerOpenPeriod).
func BreakerOpenPeriod(d time.Duration) BreakerOption {
	return func(c *breakerConfig) { c.settings.Timeout = d }
}

// BreakerRetryDelay sets the redelivery delay of the messages nacked while
// the breaker is open (default DefaultBreakerRetryDelay).
func BreakerRetryDelay(d time.Duration) BreakerOption {
	return func(c *breakerConfig) { c.retryDelay = d }
}

// BreakerMetrics reports the breaker's state to m (the
// eventkit_breaker_state gauge).
func BreakerMetrics(m *Metrics) BreakerOption { return func(c *breakerConfig) { c.metrics = m } }

// BreakerSettings lets fn adjust the gobreaker settings after the other
// options are applied (ReadyToTrip, Interval, BucketPeriod, MaxRequests...).
// An OnStateChange set here is called after the metric is updated.
func BreakerSettings(fn func(*gobreaker.Settings)) BreakerOption {
	return func(c *breakerConfig) { fn(&c.settings) }
}

// ErrBreakerOpen is wrapped in the error of a message refused while the
// circuit breaker is open (or half-open and busy with trial messages).
var ErrBreakerOpen = errors.New("circuit breaker open")

// CircuitBreaker stops calling a failing handler (github.com/sony/gobreaker/v2):
// after BreakerFailures consecutive failures it opens, and for
// BreakerOpenPeriod every message is refused with
// eventkit.RetryAfter(ErrBreakerOpen..., BreakerRetryDelay): the Router
// nacks it with that delay, so it is redelivered later, never dropped. Then
// trial messages go through (half-open); a success closes the breaker, a
// failure opens it again.
//
// Permanent errors (a poison message) and context cancellations do not count
// as failures: they say nothing about the health of what the handler calls.
// One CircuitBreaker value is one breaker: use it on several routes to trip
// them together.
func CircuitBreaker(opts ...BreakerOption) eventkit.Middleware {
	c := breakerConfig{
		settings:   gobreaker.Settings{Name: "eventkit", Timeout: DefaultBreakerOpenPeriod},
		failures:   DefaultBreakerFailures,
		retryDelay: DefaultBreakerRetryDelay,
	}
	for _, o := range opts {
		o(&c)
	}
	failures := max(c.failures, 1)
	if c.settings.ReadyToTrip == nil {
		c.settings.ReadyToTrip = func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= failures }
	}
	if c.settings.IsExcluded == nil {
		c.settings.IsExcluded = func(err error) bool {
			return eventkit.IsPermanent(err) || errors.Is(err, context.Canceled)
		}
	}
	userChange := c.settings.OnStateChange
	metrics := c.metrics
	c.settings.OnStateChange = func(name string, from, to gobreaker.State) {
		metrics.setBreakerState(name, to)
		if userChange != nil {
			userChange(name, from, to)
		}
	}
	cb := gobreaker.NewCircuitBreaker[struct{}](c.settings)
	metrics.setBreakerState(cb.Name(), cb.State())
	delay := c.retryDelay
	return func(next eventkit.Handler) eventkit.Handler {
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
			_, err := cb.Execute(func() (struct{}, error) {
				return struct{}{}, next.Handle(ctx, m)
			})
			if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
				return eventkit.RetryAfter(fmt.Errorf("%w: %q: %w", ErrBreakerOpen, cb.Name(), err), delay)
			}
			return err
		})
	}
}
