package pipeline_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/pipeline"
)

// BenchmarkPipelineOverhead: memory bus → two pass-through stages with 2
// workers each → a counting sink; the cost of the pipeline itself per
// event. cpu-ns/event is the process's CPU time (user + system) per event,
// steadier than ns/op on a loaded machine.
func BenchmarkPipelineOverhead(b *testing.B) {
	bus := memory.New()
	defer bus.Close()
	var out atomic.Int64
	pass := func(_ context.Context, e event.Event) (event.Event, error) { return e, nil }
	p := pipeline.New(pipeline.WithMaxInFlight(1024))
	p.From(pipeline.Source{Subscriber: bus, Pattern: "in", Options: []eventkit.SubscribeOption{eventkit.WithBuffer(1024)}}).
		Then(pipeline.Map("one", pass, pipeline.Workers(2))).
		Then(pipeline.Map("two", pass, pipeline.Workers(2))).
		Then(pipeline.Sink("count", func(context.Context, event.Event) error { out.Add(1); return nil }))
	if err := p.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	evs := make([]event.Event, 64)
	for i := range evs {
		evs[i] = eventkittest.NewEvent(fmt.Sprint(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	sent := 0
	for sent < b.N {
		k := min(64, b.N-sent)
		if err := bus.Publish(context.Background(), "in", evs[:k]...); err != nil {
			b.Fatal(err)
		}
		sent += k
	}
	for p.Stats()[0].Out < uint64(b.N) { // every source message acked
		runtime.Gosched()
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/event")
	if err := p.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// cpuTime is the process's CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFeedPipeline: 16 producers push batches of 64 events into a
// Feed, each call waiting until its events were settled → two pass-through
// stages with 2 workers each → a counting sink; the pipeline's whole cost
// per event, from the input's call to the settlement, with no transport.
func BenchmarkFeedPipeline(b *testing.B) {
	feed := pipeline.NewFeed(pipeline.FeedCapacity(1024))
	defer feed.Close()
	var out atomic.Int64
	pass := func(_ context.Context, e event.Event) (event.Event, error) { return e, nil }
	p := pipeline.New(pipeline.WithMaxInFlight(1024), pipeline.WithQueue(256))
	p.From(pipeline.Source{Subscriber: feed}).
		Then(pipeline.Map("one", pass, pipeline.Workers(2))).
		Then(pipeline.Map("two", pass, pipeline.Workers(2))).
		Then(pipeline.Sink("count", func(context.Context, event.Event) error { out.Add(1); return nil }))
	if err := p.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	evs := make([]event.Event, 64)
	for i := range evs {
		evs[i] = eventkittest.NewEvent(fmt.Sprint(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(64)) - 64
				if i >= b.N {
					return
				}
				if err := feed.Publish(context.Background(), "in", evs[:min(64, b.N-i)]...); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/event")
	if out.Load() != int64(b.N) {
		b.Fatalf("%d events out, want %d", out.Load(), b.N)
	}
}
