package eventkit

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"
)

// BatchHandler handles the messages of a batch route (Router.HandleBatch):
// up to BatchSize messages at once, in delivery order.
//
// The handler may settle messages itself (Ack, Nack, NackAfter); the Router
// leaves those alone. It settles the others by the returned error:
//   - nil: every message left unsettled is acked;
//   - a *BatchError: the messages it names are nacked with the Router's
//     redelivery backoff (or the delay of a *RetryAfterError), the others
//     acked — a partial failure;
//   - any other error (or a panic, as a *PanicError): every message left
//     unsettled is nacked.
//
// With OrderedByKey, a message is never acked after an earlier message of
// the same key in the batch was nacked: the Router nacks it too, so that the
// key's messages are redelivered in order. The handler should therefore
// not apply the messages that follow a failed one of their key (see
// BatchError.KeyFailed): they come back.
type BatchHandler interface {
	HandleBatch(ctx context.Context, msgs []*Message) error
}

// BatchHandlerFunc adapts a function to BatchHandler.
type BatchHandlerFunc func(ctx context.Context, msgs []*Message) error

// HandleBatch calls f(ctx, msgs).
func (f BatchHandlerFunc) HandleBatch(ctx context.Context, msgs []*Message) error {
	return f(ctx, msgs)
}

// BatchError reports the messages of a batch that failed; a BatchHandler
// returns it for a partial failure. The zero value is ready to use:
//
//	var failed eventkit.BatchError
//	for _, m := range msgs {
//		if err := apply(m); err != nil {
//			failed.Fail(m, err)
//		}
//	}
//	return failed.Err()
type BatchError struct {
	// Failed maps each failed message to its error.
	Failed map[*Message]error
}

// Fail records that m failed with err (a nil err is recorded as a generic
// failure).
func (e *BatchError) Fail(m *Message, err error) {
	if err == nil {
		err = errors.New("failed")
	}
	if e.Failed == nil {
		e.Failed = make(map[*Message]error)
	}
	e.Failed[m] = err
}

// KeyFailed reports whether a message of key (Message.Key) failed. With
// OrderedByKey the Router nacks the messages that follow a failed message
// of their key, so a handler may skip them:
//
//	if failed.KeyFailed(m.Key()) {
//		continue // nacked by the Router, handled again after the failed one
//	}
func (e *BatchError) KeyFailed(key string) bool {
	for m := range e.Failed {
		if m.Key() == key {
			return true
		}
	}
	return false
}

// Err returns e if a message failed, else nil.
func (e *BatchError) Err() error {
	if len(e.Failed) == 0 {
		return nil
	}
	return e
}

// Error names how many messages failed and the first errors.
func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "eventkit: %d message(s) of the batch failed", len(e.Failed))
	n := 0
	for _, err := range e.Failed {
		if n == 3 {
			b.WriteString("; ...")
			break
		}
		b.WriteString("; ")
		b.WriteString(err.Error())
		n++
	}
	return b.String()
}

// Unwrap returns the errors of the failed messages.
func (e *BatchError) Unwrap() []error {
	errs := make([]error, 0, len(e.Failed))
	for _, err := range e.Failed {
		errs = append(errs, err)
	}
	return errs
}

// Default batch of a batch route (BatchSize, BatchWait).
const (
	DefaultBatchSize = 100
	DefaultBatchWait = 100 * time.Millisecond
)

// MaxBatchSize bounds BatchSize, and with it the messages a batch route
// holds per worker.
const MaxBatchSize = 10000

// BatchSize sets the most messages a batch route hands its handler at once
// (default DefaultBatchSize, at most MaxBatchSize). Only for HandleBatch.
func BatchSize(n int) RouteOption {
	return func(rt *route) { rt.batchSize, rt.batchOpt = n, true }
}

// BatchWait sets how long a batch route waits, after the first message of
// a batch, for more messages before it hands over a batch that is not full
// (default DefaultBatchWait; 0: hand over what has already arrived). Only
// for HandleBatch.
func BatchWait(d time.Duration) RouteOption {
	return func(rt *route) { rt.batchWait, rt.batchOpt = d, true }
}

// HandleBatch binds pattern to a batch handler: the route collects up to
// BatchSize messages, or what arrived within BatchWait of the first one, and
// hands them to h in delivery order (see BatchHandler for how they are
// settled). Concurrency(n) runs n batches at once; with OrderedByKey the
// messages of one key go to one worker, so they are handled in delivery
// order and never in two batches at once.
//
// A batch route holds at most BatchSize messages per worker beyond what the
// subscription buffers. At shutdown a partial batch is handed to the
// handler at once; if the handlers' context is cancelled (the shutdown
// timed out), the messages the handler leaves unsettled are nacked. No
// message taken from the subscription is left unsettled.
//
// Batch routes run no message middleware (Use, RouteMiddleware): a
// RouteMiddleware option is an error, and the router-wide middleware wraps
// only the message routes. A handler's panic becomes a *PanicError.
//
// HandleBatch returns an error for an invalid pattern or option, or after
// Start (or Run); Start and Run report the same errors.
func (r *Router) HandleBatch(pattern string, h BatchHandler, opts ...RouteOption) error {
	rt := newRoute(pattern, opts, func(rt *route) {
		rt.bh, rt.batch, rt.batchSize, rt.batchWait = h, true, DefaultBatchSize, DefaultBatchWait
	})
	var err error
	switch {
	case h == nil:
		err = errors.New("nil batch handler")
	case rt.batchSize < 1 || rt.batchSize > MaxBatchSize:
		err = InvalidOption("BatchSize", fmt.Sprintf("must be between 1 and %d, got %d", MaxBatchSize, rt.batchSize))
	case rt.batchWait < 0:
		err = InvalidOption("BatchWait", fmt.Sprintf("must not be negative, got %v", rt.batchWait))
	case len(rt.mw) > 0:
		err = InvalidOption("RouteMiddleware", "a batch route runs no message middleware")
	}
	return r.add(rt, err)
}

// HandleBatchFunc binds pattern to a batch handler function.
func (r *Router) HandleBatchFunc(pattern string, fn func(context.Context, []*Message) error, opts ...RouteOption) error {
	return r.HandleBatch(pattern, BatchHandlerFunc(fn), opts...)
}

// startBatch starts the workers of a batch route.
func (r *Router) startBatch(rt *route) {
	if !rt.ordered || rt.concurrency == 1 {
		for i := 0; i < rt.concurrency; i++ {
			r.workers.Add(1)
			go func() {
				defer r.workers.Done()
				r.collect(rt, rt.sub.Messages(), r.stopTake, func() { r.subscriptionEnded(rt) })
			}()
		}
		return
	}
	r.startLanes(rt, func(lane <-chan *Message) { r.collect(rt, lane, nil, func() {}) })
}

// collect reads batches from in until stop is closed or in is closed
// (calling ended), handing each to the route's handler. A partial batch is
// handed over at once when stop is closed or in ends.
func (r *Router) collect(rt *route, in <-chan *Message, stop <-chan struct{}, ended func()) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var first *Message
		select {
		case <-stop:
			return
		case m, ok := <-in:
			if !ok {
				ended()
				return
			}
			first = m
		}
		batch, open, stopped := r.fill(rt, in, stop, timer, first)
		r.handleBatch(rt, batch)
		if !open {
			ended()
			return
		}
		if stopped {
			return
		}
	}
}

// fill adds to a batch that starts with first until it is full, BatchWait
// has passed, stop is closed (stopped) or in is closed (not open).
func (r *Router) fill(rt *route, in <-chan *Message, stop <-chan struct{}, timer *time.Timer, first *Message) (batch []*Message, open, stopped bool) {
	batch = make([]*Message, 1, rt.batchSize)
	batch[0] = first
	var expired <-chan time.Time
	if rt.batchWait > 0 {
		timer.Reset(rt.batchWait)
		defer timer.Stop()
		expired = timer.C
	}
	for len(batch) < rt.batchSize {
		if expired == nil {
			// BatchWait 0: only what has already arrived.
			select {
			case m, ok := <-in:
				if !ok {
					return batch, false, false
				}
				batch = append(batch, m)
				continue
			default:
				return batch, true, false
			}
		}
		select {
		case m, ok := <-in:
			if !ok {
				return batch, false, false
			}
			batch = append(batch, m)
		case <-expired:
			return batch, true, false
		case <-stop:
			return batch, true, true
		}
	}
	return batch, true, false
}

// handleBatch hands batch to the route's handler and settles what the
// handler left unsettled.
func (r *Router) handleBatch(rt *route, batch []*Message) {
	err := safeHandleBatch(rt.ctx, rt.bh, batch)
	var be *BatchError
	if !errors.As(err, &be) {
		be = nil
	}
	var failedKeys map[string]error
	failed := 0
	for _, m := range batch {
		if rt.ordered && m.state.Load() == stateNacked {
			failedKeys = markFailed(failedKeys, m.Key(), errors.New("nacked by the handler"))
		}
		if m.Settled() {
			continue
		}
		merr := err
		if be != nil {
			merr = be.Failed[m]
		}
		if merr == nil && rt.ordered {
			if ferr, ok := failedKeys[m.Key()]; ok {
				merr = fmt.Errorf("eventkit: an earlier message of key %q failed in the batch: %w", m.Key(), ferr)
			}
		}
		if merr == nil {
			if aerr := m.Ack(); aerr != nil {
				r.logger.Warn("eventkit: ack failed", "route", rt.info.Name, "topic", m.Topic, "id", m.Event.ID(), "err", aerr)
			}
			continue
		}
		if rt.ordered {
			failedKeys = markFailed(failedKeys, m.Key(), merr)
		}
		failed++
		r.nackFailed(rt, m, merr)
	}
	if failed > 0 {
		attrs := []any{"route", rt.info.Name, "batch", len(batch), "failed", failed, "err", err}
		var pe *PanicError
		if errors.As(err, &pe) {
			attrs = append(attrs, "stack", string(pe.Stack))
		}
		r.logger.Warn("eventkit: batch handler failed", attrs...)
	}
}

func markFailed(keys map[string]error, key string, err error) map[string]error {
	if keys == nil {
		keys = make(map[string]error)
	}
	if _, ok := keys[key]; !ok {
		keys[key] = err
	}
	return keys
}

func safeHandleBatch(ctx context.Context, h BatchHandler, msgs []*Message) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return h.HandleBatch(ctx, msgs)
}
