package command

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
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
// runs fn again (AggregateRetries). Commands on one aggregate handled by
// one HandleAggregate run one at a time, so that concurrent handling
// (eventkit.Concurrency) does not make them conflict with each other;
// other processes still may, and are retried; conflicts on every attempt end with an
// *Error with CodeConflict (a request gets it as its reply; a sent command
// is redelivered, not rejected). An error fn returns is returned as is.
func HandleAggregate[T es.Aggregate, C any](repo *es.Repository[T], id func(C) string, fn func(T, C) error, opts ...AggregateOption) func(context.Context, C) error {
	cfg := aggConfig{retries: 5}
	for _, o := range opts {
		o(&cfg)
	}
	locks := &keyLocks{m: map[string]*keyLock{}}
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
		// Commands on one aggregate run one at a time in this process, so
		// that they do not conflict with each other; conflicts with other
		// processes are retried below.
		unlock, err := locks.lock(ctx, aid)
		if err != nil {
			return err
		}
		defer unlock()
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

// keyLocks is a lock per key, held only while in use.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds a token while locked
	refs int           // holders and waiters
}

// lock takes the lock of key, or returns ctx's error if ctx ends first.
func (k *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	l := k.m[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
