package middleware_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/middleware"
)

// orders returns every ordering of every subset of names.
func orders(names []string) [][]string {
	out := [][]string{{}}
	var rec func(prefix []string, rest []string)
	rec = func(prefix []string, rest []string) {
		for i, n := range rest {
			p := append(append([]string(nil), prefix...), n)
			out = append(out, p)
			r := append(append([]string(nil), rest[:i]...), rest[i+1:]...)
			rec(p, r)
		}
	}
	rec(nil, names)
	return out
}

// No order of Recover, DeadLetter and Retry (nor any subset) makes a hot
// loop: with a handler that panics, or that always fails, the handler runs
// a bounded number of times in a minute; where DeadLetter is present the
// message is dead-lettered once and the handler is not called again. The
// Router's defaults (innermost recovery, redelivery backoff) and the
// middleware's defaults are used. The test runs in a synctest bubble, so
// the minute is simulated.
func TestNoHotLoopInAnyOrder(t *testing.T) {
	for _, order := range orders([]string{"Recover", "DeadLetter", "Retry"}) {
		for _, kind := range []string{"panics", "fails"} {
			name := strings.Join(order, ",")
			if name == "" {
				name = "none"
			}
			t.Run(name+"/"+kind, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { testNoHotLoop(t, order, kind) })
			})
		}
	}
}

func testNoHotLoop(t *testing.T, order []string, kind string) {
	bus := memory.New()
	defer bus.Close()
	r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLogger))
	hasDLQ := false
	for _, n := range order {
		switch n {
		case "Recover":
			r.Use(middleware.Recover())
		case "DeadLetter":
			hasDLQ = true
			r.Use(middleware.DeadLetter(bus, middleware.DeadLetterLogger(quietLogger)))
		case "Retry":
			r.Use(middleware.Retry(middleware.RetryLogger(quietLogger)))
		}
	}
	// A hot loop makes tens of thousands of calls a second. The bound: the
	// Router's backoff allows 12 deliveries in a minute, Retry 5 calls each.
	const bound = 100
	var calls atomic.Int64
	if err := r.HandleFunc("orders", func(ctx context.Context, _ *eventkit.Message) error {
		if calls.Add(1) > bound {
			// A hot loop: block, so that the bubble's clock can advance
			// and the test fails instead of spinning.
			<-ctx.Done()
			return ctx.Err()
		}
		if kind == "panics" {
			panic("boom")
		}
		return errors.New("always fails")
	}); err != nil {
		t.Fatal(err)
	}
	dlq := testkit.Subscribe(t, context.Background(), bus, "orders.dlq")
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, "orders", newEvent("o-1")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Minute)
	synctest.Wait()
	n := calls.Load()
	var dead int
	// Take every dead letter that is ready: the subscription's goroutines
	// are durably blocked once synctest.Wait returns, so a message is ready
	// exactly when a receive does not block.
drain:
	for {
		select {
		case m := <-dlq.Messages():
			dead++
			if m.Event.ID() != "o-1" {
				t.Errorf("dead letter %q", m.Event.ID())
			}
			synctest.Wait()
		default:
			break drain
		}
	}
	if n == 0 || n > bound {
		t.Errorf("handler called %d times in a minute, want 1 to %d", n, bound)
	}
	if hasDLQ && dead != 1 {
		t.Errorf("dead-lettered %d times, want once", dead)
	}
	if !hasDLQ && dead != 0 {
		t.Errorf("dead-lettered %d times without DeadLetter", dead)
	}
	if hasDLQ {
		// Dead-lettered means acked: no more calls.
		time.Sleep(time.Minute)
		synctest.Wait()
		if more := calls.Load() - n; more != 0 {
			t.Errorf("handler called %d more times after the dead letter", more)
		}
	}
	t.Logf("order %v, handler %s: %d calls in a minute, %d dead letters", order, kind, n, dead)
	cancel()
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	_ = dlq.Close()
}
