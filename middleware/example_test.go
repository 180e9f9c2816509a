package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/middleware"
	"github.com/eventkit/eventkit/middleware/internal/mwtest"
	"github.com/eventkit/eventkit/middleware/prom"
	"github.com/eventkit/eventkit/middleware/tracing"
	"github.com/prometheus/client_golang/prometheus"
)

// The recommended chain, outermost first: Tracing, Metrics, DeadLetter,
// Retry, Timeout, Recover. DeadLetter wraps Retry, so that only what Retry
// gives up on is dead-lettered.
func Example() {
	bus := memory.New()
	defer bus.Close()
	reg := prometheus.NewRegistry()
	metrics, _ := prom.New(prom.WithRegisterer(reg))

	r := eventkit.NewRouter(bus)
	r.Use(
		tracing.Middleware(),
		metrics.Middleware(),
		middleware.DeadLetter(bus),
		middleware.Retry(middleware.MaxAttempts(3), middleware.Backoff(time.Millisecond, 10*time.Millisecond, 2)),
		middleware.Timeout(5*time.Second),
		middleware.Recover(),
	)
	calls := 0
	done := make(chan struct{})
	_ = r.HandleFunc("orders.created", func(ctx context.Context, m *eventkit.Message) error {
		calls++
		if m.Event.ID() == "o-2" {
			return middleware.Permanent(errors.New("unknown customer"))
		}
		if calls == 1 {
			return errors.New("database busy") // retried in place
		}
		fmt.Println("handled", m.Event.ID())
		return nil
	}, eventkit.RouteName("orders"))
	_ = r.HandleFunc("orders.created.dlq", func(ctx context.Context, m *eventkit.Message) error {
		fmt.Println("dead letter", m.Event.ID(), "error:", m.Event.Extensions()[middleware.ExtDLQError])
		close(done)
		return nil
	})
	go func() { _ = r.Run(context.Background()) }()
	<-r.Running()

	_ = bus.Publish(context.Background(), "orders.created",
		mwtest.ExampleEvent("o-1", "shop.order.created", `{}`), mwtest.ExampleEvent("o-2", "shop.order.created", `{}`))
	<-done
	_ = r.Shutdown(context.Background())
	fmt.Println("retries:", counter(reg, "eventkit_retries_total"), "dead letters:", counter(reg, "eventkit_dead_letters_total"))
	// Output:
	// handled o-1
	// dead letter o-2 error: permanent error after 1 attempt: unknown customer
	// retries: 1 dead letters: 1
}

// counter returns the sum of the counter name in reg.
func counter(reg *prometheus.Registry, name string) float64 {
	fams, _ := reg.Gather()
	sum := 0.0
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.Metric {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// Retry by nack frees the handler while it waits: the Router nacks the
// message with the backoff delay and the transport redelivers it.
func ExampleRetryByNack() {
	bus := memory.New()
	defer bus.Close()
	r := eventkit.NewRouter(bus, eventkit.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))))
	r.Use(middleware.Retry(middleware.RetryByNack(), middleware.Backoff(5*time.Millisecond, time.Second, 2)))
	done := make(chan struct{})
	_ = r.HandleFunc("payments.requested", func(ctx context.Context, m *eventkit.Message) error {
		fmt.Println("delivery attempt", m.Attempt)
		if m.Attempt < 3 {
			return errors.New("gateway timeout")
		}
		close(done)
		return nil
	})
	go func() { _ = r.Run(context.Background()) }()
	<-r.Running()
	_ = bus.Publish(context.Background(), "payments.requested", mwtest.ExampleEvent("p-1", "shop.payment.requested", `{}`))
	<-done
	_ = r.Shutdown(context.Background())
	// Output:
	// delivery attempt 1
	// delivery attempt 2
	// delivery attempt 3
}

// Dedup skips an event that was already handled successfully.
func ExampleDedup() {
	h := middleware.Dedup(memory.NewDedupStore())(eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
		fmt.Println("charging for", m.Event.ID())
		return nil
	}))
	e := mwtest.ExampleEvent("o-1", "shop.order.paid", `{}`)
	for i := 0; i < 3; i++ { // delivered three times
		_ = h.Handle(context.Background(), eventkit.NewMessage("orders.paid", e, 1, nil, nil))
	}
	// Output:
	// charging for o-1
}

// Events published from a handler carry the correlation and causation ids.
func ExampleCorrelationPublisher() {
	bus := memory.New()
	defer bus.Close()
	pub := middleware.CorrelationPublisher(bus)
	r := eventkit.NewRouter(bus)
	r.Use(middleware.Correlation())
	done := make(chan struct{})
	_ = r.HandleFunc("orders.created", func(ctx context.Context, m *eventkit.Message) error {
		return pub.Publish(ctx, "invoices.created", mwtest.ExampleEvent("i-1", "shop.invoice.created", `{}`))
	})
	_ = r.HandleFunc("invoices.created", func(ctx context.Context, m *eventkit.Message) error {
		ext := m.Event.Extensions()
		fmt.Println("correlationid:", ext[middleware.ExtCorrelationID], "causationid:", ext[middleware.ExtCausationID])
		close(done)
		return nil
	})
	go func() { _ = r.Run(context.Background()) }()
	<-r.Running()
	_ = bus.Publish(context.Background(), "orders.created", mwtest.ExampleEvent("o-1", "shop.order.created", `{}`))
	<-done
	_ = r.Shutdown(context.Background())
	// Output:
	// correlationid: o-1 causationid: o-1
}
