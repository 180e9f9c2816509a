package command

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/eventkit/eventkit/es"
)

// AggregateOption configures HandleAggregate.
type AggregateOption func(*aggConfig)

type aggConfig struct {
	retries int
}

// AggregateRetries sets how many more times HandleAggregate runs the
// command on a freshly loaded aggregate after a version conflict (default
// 5), on top of the repository's own es.WithRetryOnConflict.
func AggregateRetries(n int) AggregateOption { return func(c *aggConfig) { c.retries = max(n, 0) } }

// HandleAggregate returns a command handler (for Handle) that runs fn on
// the aggregate of repo that the command is for, and saves the events fn
// raised (es.Repository.Update). id returns the aggregate's id from the
// command; nil takes the command's subject (WithSubject). A version
// conflict, when another writer saved the aggregate first, reloads it and
// runs fn again (AggregateRetries); conflicts on every attempt end with an
// *Error with CodeConflict (a request gets it as its reply; a sent command
// is redelivered, not rejected). An error fn returns is returned as is.
func HandleAggregate[T es.Aggregate, C any](repo *es.Repository[T], id func(C) string, fn func(T, C) error, opts ...AggregateOption) func(context.Context, C) error {
	cfg := aggConfig{retries: 5}
	for _, o := range opts {
		o(&cfg)
	}
	return func(ctx context.Context, c C) error {
		var aid string
		if id != nil {
			aid = id(c)
		} else if e, ok := EventFromContext(ctx); ok {
			aid = e.Subject()
		}
		if aid == "" {
			return &Error{Code: CodeInvalid, Message: "the command names no aggregate (empty id or subject)"}
		}
		for attempt := 0; ; attempt++ {
			_, err := repo.Update(ctx, aid, func(a T) error { return fn(a, c) })
			if err == nil || !errors.Is(err, es.ErrConflict) {
				return err
			}
			if attempt >= cfg.retries {
				return &Error{Code: CodeConflict, Message: fmt.Sprintf("aggregate %q: %v", aid, err)}
			}
			// Spread contending writers: a random wait up to 1 ms, doubling
			// per attempt, at most 100 ms.
			limit := min(time.Millisecond<<min(attempt, 7), 100*time.Millisecond)
			t := time.NewTimer(time.Duration(rand.Int64N(int64(limit) + 1)))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return err
			}
		}
	}
}
