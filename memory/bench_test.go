package memory_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/memory"
)

// payload256 is 256 bytes of JSON.
var payload256 = func() []byte {
	const head = `{"order":"o-000001","customer":"c-42","items":[{"sku":"sku-1","qty":1}],"note":"`
	return []byte(head + strings.Repeat("x", 256-len(head)-2) + `"}`)
}()

func benchEvent() event.Event {
	e := event.New()
	e.SetID("evt-1")
	e.SetSource("https://eventkit.dev/bench")
	e.SetType("dev.eventkit.bench")
	_ = e.SetData("application/json", payload256)
	return e
}

// publishAll publishes b.N times the benchmark event to bench.orders,
// calls wait (which returns once they are consumed), and reports events/s
// over both.
func publishAll(b *testing.B, ctx context.Context, bus *memory.Bus, wait func()) {
	e := benchEvent()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := bus.Publish(ctx, "bench.orders", e); err != nil {
			b.Fatal(err)
		}
	}
	wait()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
}

// BenchmarkMemoryPublishConsume: one publisher, one subscriber that acks
// every message, 256-byte JSON data. Reports events/s.
func BenchmarkMemoryPublishConsume(b *testing.B) {
	if len(payload256) != 256 {
		b.Fatalf("payload is %d bytes", len(payload256))
	}
	bus := memory.New()
	defer bus.Close()
	ctx := context.Background()
	sub := testkit.Subscribe(b, ctx, bus, "bench.orders")
	done := make(chan int)
	go func() {
		n := 0
		for m := range sub.Messages() {
			_ = m.Ack()
			n++
			if n == b.N {
				break
			}
		}
		done <- n
	}()
	publishAll(b, ctx, bus, func() { <-done })
	_ = sub.Close()
}

// BenchmarkMemoryRouter: the same workload through a Router with a handler
// that returns nil (the Router acks).
func BenchmarkMemoryRouter(b *testing.B) {
	bus := memory.New()
	defer bus.Close()
	r := eventkit.NewRouter(bus)
	count := 0
	done := make(chan struct{})
	_ = r.HandleFunc("bench.orders", func(ctx context.Context, m *eventkit.Message) error {
		count++
		if count == b.N {
			close(done)
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	<-r.Running()
	publishAll(b, ctx, bus, func() { <-done })
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}
