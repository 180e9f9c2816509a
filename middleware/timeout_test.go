package middleware_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/middleware"
)

// runWithTimeout runs f as the handler behind Timeout(d) with parent, and
// fails t with the error that f returns (what it found wrong with ctx).
func runWithTimeout(t *testing.T, parent context.Context, d time.Duration, f func(ctx context.Context) error) {
	t.Helper()
	h := middleware.Timeout(d)(eventkit.HandlerFunc(func(ctx context.Context, _ *eventkit.Message) error { return f(ctx) }))
	if err := h.Handle(parent, eventkit.NewMessage("t", newEvent("1"), 1, nil, nil)); err != nil {
		t.Fatal(err)
	}
}

// Timeout's context starts no timer until Done is asked for; these tests
// check that it behaves like context.WithTimeout all the same.
func TestTimeoutContextSemantics(t *testing.T) {
	t.Run("Err without Done", func(t *testing.T) {
		// A cancellable parent, as the Router gives: Cause must not report
		// the parent's (nil) cause.
		parent, cancel := context.WithCancel(context.Background())
		defer cancel()
		runWithTimeout(t, parent, 5*time.Millisecond, func(ctx context.Context) error {
			if ctx.Err() != nil {
				return errors.New("ended early")
			}
			time.Sleep(20 * time.Millisecond)
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return errors.New("Err or Cause is not DeadlineExceeded after the deadline")
			}
			select {
			case <-ctx.Done():
			default:
				return errors.New("Done not closed after the deadline")
			}
			return nil
		})
	})
	t.Run("derived context ends at the deadline", func(t *testing.T) {
		runWithTimeout(t, context.Background(), 10*time.Millisecond, func(ctx context.Context) error {
			child, cancel := context.WithCancel(ctx)
			defer cancel()
			select {
			case <-child.Done():
			case <-time.After(10 * time.Second):
				return errors.New("derived context did not end")
			}
			if !errors.Is(child.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return errors.New("derived context's Err or Cause is not DeadlineExceeded")
			}
			return nil
		})
	})
	t.Run("parent cancelled", func(t *testing.T) {
		parent, cancel := context.WithCancelCause(context.Background())
		cause := errors.New("shutting down")
		runWithTimeout(t, parent, time.Hour, func(ctx context.Context) error {
			child, stop := context.WithCancel(ctx)
			defer stop()
			cancel(cause)
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
				return errors.New("context did not end with its parent")
			}
			<-child.Done()
			if !errors.Is(ctx.Err(), context.Canceled) || !errors.Is(child.Err(), context.Canceled) {
				return errors.New("Err is not Canceled")
			}
			return nil
		})
	})
	t.Run("ended when the handler returns", func(t *testing.T) {
		var kept context.Context
		runWithTimeout(t, context.Background(), time.Hour, func(ctx context.Context) error {
			kept = ctx
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("no deadline")
			}
			return nil
		})
		if !errors.Is(kept.Err(), context.Canceled) {
			t.Fatalf("after the handler returned, Err = %v; want Canceled", kept.Err())
		}
		select {
		case <-kept.Done():
		default:
			t.Fatal("Done not closed after the handler returned")
		}
		stopped := make(chan struct{})
		context.AfterFunc(kept, func() { close(stopped) })
		wait(t, stopped, "AfterFunc on an ended context")
	})
	t.Run("earlier parent deadline kept", func(t *testing.T) {
		parent, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		want, _ := parent.Deadline()
		runWithTimeout(t, parent, time.Hour, func(ctx context.Context) error {
			if got, _ := ctx.Deadline(); !got.Equal(want) {
				return errors.New("the parent's earlier deadline was replaced")
			}
			return nil
		})
		runWithTimeout(t, parent, time.Millisecond, func(ctx context.Context) error {
			if got, _ := ctx.Deadline(); !got.Before(want) {
				return errors.New("the shorter timeout was not applied")
			}
			return nil
		})
	})
}
