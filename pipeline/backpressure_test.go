package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/pipeline"
)

// A stage that does not keep up fills its queue, then the source's
// in-flight slots; the source stops taking messages, the transport's
// bounded buffer fills and the publisher blocks. Stats shows where: the
// full queue, the blocked time and the senders waiting.
func TestBackPressureReachesTheSource(t *testing.T) {
	const (
		total       = 200
		busBuffer   = 4
		maxInFlight = 8
		workers     = 2
	)
	for _, c := range []struct {
		name    string
		queue   int
		blocked string // where the wait shows
	}{
		{"small queue: the source waits on the stage's queue", 2, "slow"},
		{"large queue: the source waits for an in-flight slot", 64, "source"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := bus(t)
			release := make(chan struct{})
			var c2 collector
			p := pipeline.New(pipeline.WithMaxInFlight(maxInFlight), pipeline.WithQueue(c.queue))
			p.From(pipeline.Source{Subscriber: b, Pattern: "in", Options: []eventkit.SubscribeOption{eventkit.WithBuffer(busBuffer)}}).
				Then(pipeline.Map("slow", func(ctx context.Context, e event.Event) (event.Event, error) {
					<-release
					return e, nil
				}, pipeline.Workers(workers))).
				Then(c2.sink("end"))
			start(t, p)
			var once sync.Once
			free := func() { once.Do(func() { close(release) }) }
			t.Cleanup(free) // runs before the drain: a failed check must not hang it
			var published atomic.Int64
			pubDone := make(chan error, 1)
			go func() {
				for i := range total {
					if err := b.Publish(context.Background(), "in", eventkittest.NewEvent(fmt.Sprint("e", i))); err != nil {
						pubDone <- err
						return
					}
					published.Add(1)
				}
				pubDone <- nil
			}()
			// The steady state: a sender waits, and (small queue) the queue
			// is full. A worker taking an item makes room for a moment
			// before the waiting sender fills it: poll until it did.
			eventually(t, "a sender blocked at "+c.blocked, func() bool {
				s := stats(t, p, c.blocked)
				full := c.blocked != "slow" || s.Queue == s.QueueCap
				return s.Waiting > 0 && s.Blocked > 0 && full
			})
			src := stats(t, p, "source")
			if src.In > maxInFlight || src.Queue > maxInFlight {
				t.Fatalf("the source took %d messages (%d in flight) with at most %d in flight", src.In, src.Queue, maxInFlight)
			}
			if c.blocked == "slow" {
				if s := stats(t, p, "slow"); s.Queue != s.QueueCap || s.QueueCap != c.queue {
					t.Fatalf("stage stats %+v; want a full queue of %d", s, c.queue)
				}
			} else if src.Queue != maxInFlight {
				t.Fatalf("source stats %+v; want %d in flight", src, maxInFlight)
			}
			// What the publisher could hand over while the pipeline is full:
			// the messages in flight, the bus's buffer and the two batches
			// the transport layer holds, and not one more.
			if n, bound := published.Load(), int64(maxInFlight+busBuffer+2*busBuffer); n > bound {
				t.Fatalf("%d events published while the pipeline was full; the bound is %d", n, bound)
			}
			free()
			if err := <-pubDone; err != nil {
				t.Fatal(err)
			}
			eventually(t, "every event out", func() bool { return c2.len() == total })
			eventually(t, "every source message acked", func() bool { return stats(t, p, "source").Out == total })
		})
	}
}

// Shutdown stops taking messages, lets the events in flight reach the
// sink (flushing an open batch) and acks their source messages.
func TestShutdownDrains(t *testing.T) {
	b := bus(t)
	release := make(chan struct{})
	var c collector
	p := pipeline.New(pipeline.WithMaxInFlight(16))
	p.From(pipeline.Source{Subscriber: b, Pattern: "in"}).
		Then(pipeline.Map("slow", func(_ context.Context, e event.Event) (event.Event, error) {
			<-release
			return e, nil
		}, pipeline.Workers(2))).
		Then(pipeline.Batch("batch", 100, time.Hour, func(_ context.Context, evs []event.Event) ([]event.Event, error) {
			return evs, nil
		})).
		Then(c.sink("end"))
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := range 50 { // blocks when the pipeline is full; ends when the bus closes
			if b.Publish(context.Background(), "in", eventkittest.NewEvent(fmt.Sprint("e", i))) != nil {
				return
			}
		}
	}()
	eventually(t, "the source full", func() bool { return stats(t, p, "source").Queue == 16 })
	done := make(chan error, 1)
	go func() { done <- p.Shutdown(context.Background()) }()
	eventually(t, "the source stopped", func() bool { return stats(t, p, "source").Waiting == 0 })
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	src := stats(t, p, "source")
	if src.In != 16 || src.Out != 16 || c.len() != 16 {
		t.Fatalf("source %+v, %d out; want 16 taken, acked and out (the open batch flushed)", src, c.len())
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

// A drain cut short by its context cancels the stages' context and
// reports it; the unsettled messages are not acked.
func TestShutdownCutShort(t *testing.T) {
	b := bus(t)
	cancelled := make(chan struct{})
	p := pipeline.New()
	p.From(pipeline.Source{Subscriber: b, Pattern: "in"}).
		Then(pipeline.Sink("stuck", func(ctx context.Context, e event.Event) error {
			<-ctx.Done()
			close(cancelled)
			return ctx.Err()
		}))
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	publishN(t, b, "in", 1)
	eventually(t, "the event in the stage", func() bool { return stats(t, p, "stuck").In == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v; want the deadline", err)
	}
	<-cancelled
	if s := stats(t, p, "source"); s.Out != 0 {
		t.Fatalf("source %+v: an unfinished event was acked", s)
	}
}

// Run drains when its context ends and returns nil.
func TestRunDrainsOnCancel(t *testing.T) {
	b := bus(t)
	var c collector
	p := pipeline.New()
	p.From(pipeline.Source{Subscriber: b, Pattern: "in"}).Then(c.sink("end"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	eventually(t, "subscribed", func() bool {
		return b.Publish(context.Background(), "in", eventkittest.NewEvent("e0")) == nil && c.len() > 0
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}
