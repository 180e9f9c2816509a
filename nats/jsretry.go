package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// errReconnected ends an attempt at a JetStream API call during which the
// connection was lost or re-established: a request written just before
// the client noticed that the server went away is lost, and its answer
// would never come.
var errReconnected = errors.New("connection re-established during the request")

// retryJS runs op, a JetStream API call (or an idempotent series of them),
// until it succeeds, fails for a reason that does not pass by itself, or
// ctx ends. Each attempt is bounded by the setup timeout, and ends at once
// when the connection reconnects under it. An attempt fails for a passing
// reason while JetStream is unavailable: a server restarting (no
// responders, JetStream not enabled yet, a lost request), or recovering
// its streams (503). When ctx ends first, the error wraps ctx's and
// JetStream's last answer: that of the last attempt, or of the one before
// when ctx's end cut the last one short.
func (t *drv) retryJS(ctx context.Context, op func(ctx context.Context) error) error {
	backoff := t.cfg.retryBackoff
	var answer error // the last attempt's error that ctx's end did not cause
	for attempt := 1; ; attempt++ {
		err := t.attemptJS(ctx, op)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			if attempt == 1 && !jsUnavailable(err) {
				return err
			}
			if answer != nil && errors.Is(err, ctx.Err()) {
				err = answer
			}
			return gaveUp(ctx, attempt, err)
		}
		answer = err
		if !jsUnavailable(err) || t.nc.IsClosed() {
			return err
		}
		t.log.Debug("nats: JetStream unavailable; retrying", "attempt", attempt, "error", err)
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return gaveUp(ctx, attempt, err)
		}
		backoff = min(backoff*2, t.cfg.maxRetryBackof)
	}
}

// gaveUp is the error of retryJS when ctx ended: it wraps the last
// attempt's error and ctx's.
func gaveUp(ctx context.Context, attempts int, err error) error {
	return fmt.Errorf("%w (JetStream still unavailable after %d attempts when the context ended: %w)", err, attempts, context.Cause(ctx))
}

// attemptJS runs op once, bounded by the setup timeout, and cancelled with
// errReconnected when the connection changes state under it.
func (t *drv) attemptJS(ctx context.Context, op func(ctx context.Context) error) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	actx, cancelTimeout := context.WithTimeout(actx, t.cfg.setupTimeout)
	defer cancelTimeout()
	status := t.nc.StatusChanged(nats.RECONNECTING, nats.CONNECTED, nats.DISCONNECTED)
	defer t.nc.RemoveStatusListener(status)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-status:
			cancel(errReconnected)
		case <-done:
		}
	}()
	err := op(actx)
	close(done)
	wg.Wait()
	if err != nil && errors.Is(context.Cause(actx), errReconnected) && ctx.Err() == nil {
		return fmt.Errorf("%w: %w", errReconnected, err)
	}
	return err
}

// jsUnavailable reports whether err, from a JetStream API call, may pass
// by itself: JetStream is restarting or recovering, or the request or its
// answer was lost.
func jsUnavailable(err error) bool {
	switch {
	case errors.Is(err, errReconnected),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrReconnectBufExceeded):
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == 503
}
