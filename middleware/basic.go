package middleware

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/eventkit/eventkit"
	"golang.org/x/time/rate"
)

// Timeout ends the context given to the next handler d after it starts. A
// handler that honours its context then returns context.DeadlineExceeded (an
// error Retry retries). Put Timeout inside Retry to bound each attempt, or
// outside it to bound all of them. d <= 0 disables it. The context ends
// when the handler returns, and behaves as one from context.WithTimeout,
// but starts its timer only when something waits on Done, so a handler that
// finishes without waiting costs no timer.
func Timeout(d time.Duration) eventkit.Middleware {
	return func(next eventkit.Handler) eventkit.Handler {
		if d <= 0 {
			return next
		}
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
			deadline := time.Now().Add(d)
			if pd, ok := ctx.Deadline(); ok && pd.Before(deadline) {
				deadline = pd // the context already ends sooner
			}
			dc := withDeadline(ctx, deadline)
			defer dc.cancel(context.Canceled)
			return next.Handle(dc, m)
		})
	}
}

// Recover turns a panic of the next handler into an *eventkit.PanicError
// carrying the panic value and the stack, so that the middleware around it
// (Retry, DeadLetter, Metrics, Tracing) see an ordinary (permanent) error.
//
// Recover is optional: the Router already recovers each handler's panics
// the same way, innermost (inside all middleware), and a middleware's
// panics outside all middleware. Recover only adds a recovery point for the
// middleware placed inside it; any order is safe.
func Recover() eventkit.Middleware {
	return func(next eventkit.Handler) eventkit.Handler {
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = &eventkit.PanicError{Value: v, Stack: debug.Stack()}
				}
			}()
			return next.Handle(ctx, m)
		})
	}
}

// RateLimit lets messages through to the next handler at the rate of l
// (golang.org/x/time/rate), waiting for a token with the handler's context.
// Share one limiter between routes to limit them together. If the context
// ends while waiting, RateLimit returns the error and the Router nacks the
// message; the handler did not run.
func RateLimit(l *rate.Limiter) eventkit.Middleware {
	return func(next eventkit.Handler) eventkit.Handler {
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
			if err := l.Wait(ctx); err != nil {
				return fmt.Errorf("rate limit: %w", err)
			}
			return next.Handle(ctx, m)
		})
	}
}
