// Package breaker is eventkit's circuit-breaker middleware, on
// github.com/sony/gobreaker/v2: while the breaker is open, messages are
// refused with a redelivery delay (never dropped). It is a package of its
// own so that only the programs that use it link gobreaker.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/sony/gobreaker/v2"
)

// Option configures Middleware.
type Option func(*config)

type config struct {
	settings   gobreaker.Settings
	failures   uint32
	retryDelay time.Duration
	reporter   StateReporter
}

// Circuit breaker defaults.
const (
	DefaultFailures   = 5
	DefaultOpenPeriod = 30 * time.Second
	DefaultRetryDelay = 5 * time.Second
)

// StateReporter receives the state of a breaker when it is created and at
// each change: 0 closed, 1 half-open, 2 open. *prom.Metrics (package
// middleware/prom) is one: it sets the gauge eventkit_breaker_state.
type StateReporter interface {
	SetBreakerState(name string, state int)
}

// Name names the breaker, in errors and in the breaker-state metric
// (default "eventkit").
func Name(name string) Option {
	return func(c *config) { c.settings.Name = name }
}

// Failures opens the breaker after n consecutive failures (default
// DefaultFailures). Settings can set any other rule.
func Failures(n uint32) Option { return func(c *config) { c.failures = n } }

// OpenPeriod sets how long the breaker stays open before it lets a trial
// message through (half-open) (default DefaultOpenPeriod).
func OpenPeriod(d time.Duration) Option {
	return func(c *config) { c.settings.Timeout = d }
}

// RetryDelay sets the redelivery delay of the messages nacked while the
// breaker is open (default DefaultRetryDelay).
func RetryDelay(d time.Duration) Option {
	return func(c *config) { c.retryDelay = d }
}

// Metrics reports the breaker's state to r, for example a *prom.Metrics
// (the eventkit_breaker_state gauge).
func Metrics(r StateReporter) Option { return func(c *config) { c.reporter = r } }

// Settings lets fn adjust the gobreaker settings after the other
// options are applied (ReadyToTrip, Interval, BucketPeriod, MaxRequests...).
// An OnStateChange set here is called after the metric is updated.
func Settings(fn func(*gobreaker.Settings)) Option {
	return func(c *config) { fn(&c.settings) }
}

// ErrOpen is wrapped in the error of a message refused while the circuit
// breaker is open (or half-open and busy with trial messages).
var ErrOpen = errors.New("circuit breaker open")

// Middleware stops calling a failing handler (github.com/sony/gobreaker/v2):
// after Failures consecutive failures it opens, and for OpenPeriod every
// message is refused with eventkit.RetryAfter(ErrOpen..., RetryDelay): the
// Router
// nacks it with that delay, so it is redelivered later, never dropped. Then
// trial messages go through (half-open); a success closes the breaker, a
// failure opens it again.
//
// Permanent errors (a poison message) and context cancellations do not count
// as failures: they say nothing about the health of what the handler calls.
// One Middleware value is one breaker: use it on several routes to trip
// them together.
func Middleware(opts ...Option) eventkit.Middleware {
	c := config{
		settings:   gobreaker.Settings{Name: "eventkit", Timeout: DefaultOpenPeriod},
		failures:   DefaultFailures,
		retryDelay: DefaultRetryDelay,
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
	report := func(name string, st gobreaker.State) {
		if c.reporter != nil {
			c.reporter.SetBreakerState(name, stateValue(st))
		}
	}
	c.settings.OnStateChange = func(name string, from, to gobreaker.State) {
		report(name, to)
		if userChange != nil {
			userChange(name, from, to)
		}
	}
	cb := gobreaker.NewCircuitBreaker[struct{}](c.settings)
	report(cb.Name(), cb.State())
	delay := c.retryDelay
	return func(next eventkit.Handler) eventkit.Handler {
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
			_, err := cb.Execute(func() (struct{}, error) {
				return struct{}{}, next.Handle(ctx, m)
			})
			if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
				return eventkit.RetryAfter(fmt.Errorf("%w: %q: %w", ErrOpen, cb.Name(), err), delay)
			}
			return err
		})
	}
}

// stateValue is the number a StateReporter receives for st.
func stateValue(st gobreaker.State) int {
	switch st {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}
