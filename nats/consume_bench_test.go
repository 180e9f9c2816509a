package nats_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
)

// BenchmarkConsume consumes and acks b.N events, published beforehand to
// the shared embedded server (memory storage), through a group
// subscription. It reports cpu-ns/event, the CPU time of the whole process
// (the embedded server's included) per event, and the allocations per
// event of the whole process.
func BenchmarkConsume(b *testing.B) {
	tr, ns := benchTransport(b, "ekc")
	ctx := context.Background()
	evs := make([]event.Event, 0, 4096)
	for n := 0; n < b.N; n += len(evs) {
		evs = evs[:0]
		for j := 0; j < min(4096, b.N-n); j++ {
			evs = append(evs, eventkittest.NewEvent(fmt.Sprintf("e%d", n+j)))
		}
		if err := tr.Publish(ctx, ns+".x", evs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	s, err := tr.Subscribe(ctx, ns+".x", eventkit.WithGroup("bench"), eventkit.FromStart())
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		m, ok := <-s.Messages()
		if !ok {
			b.Fatalf("subscription ended: %v", s.Err())
		}
		if err := m.Ack(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/event")
	_ = s.Close()
}
