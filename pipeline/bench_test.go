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
	b.Cleanup(func() { _ = bus.Close() }) // after the pipeline's drain
	p, _ := passThrough(b, pipeline.Source{Subscriber: bus, Pattern: "in", Options: []eventkit.SubscribeOption{eventkit.WithBuffer(1024)}})
	evs := events64()
	done := measureCPU(b)
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
	done()
}

// BenchmarkFeedPipeline: 16 producers push batches of 64 events into a
// Feed, each call waiting until its events were settled → two pass-through
// stages with 2 workers each → a counting sink; the pipeline's whole cost
// per event, from the input's call to the settlement, with no transport.
func BenchmarkFeedPipeline(b *testing.B) {
	feed := pipeline.NewFeed(pipeline.FeedCapacity(1024))
	b.Cleanup(func() { _ = feed.Close() }) // after the pipeline's drain
	_, out := passThrough(b, pipeline.Source{Subscriber: feed}, pipeline.WithQueue(256))
	evs := events64()
	done := measureCPU(b)
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
	done()
	if out.Load() != int64(b.N) {
		b.Fatalf("%d events out, want %d", out.Load(), b.N)
	}
}

// passThrough starts src → two pass-through stages of 2 workers → a
// counting sink, shut down when the benchmark ends; it returns the
// pipeline and the sink's count.
func passThrough(b *testing.B, src pipeline.Source, opts ...pipeline.PipelineOption) (*pipeline.Pipeline, *atomic.Int64) {
	var out atomic.Int64
	pass := func(_ context.Context, e event.Event) (event.Event, error) { return e, nil }
	p := pipeline.New(append([]pipeline.PipelineOption{pipeline.WithMaxInFlight(1024)}, opts...)...)
	p.From(src).
		Then(pipeline.Map("one", pass, pipeline.Workers(2))).
		Then(pipeline.Map("two", pass, pipeline.Workers(2))).
		Then(pipeline.Sink("count", func(context.Context, event.Event) error { out.Add(1); return nil }))
	if err := p.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := p.Shutdown(context.Background()); err != nil {
			b.Error(err)
		}
	})
	return p, &out
}

func events64() []event.Event {
	evs := make([]event.Event, 64)
	for i := range evs {
		evs[i] = eventkittest.NewEvent(fmt.Sprint(i))
	}
	return evs
}

// measureCPU starts the benchmark's clock; the function it returns stops
// it and reports the CPU time per event (cpu-ns/event).
func measureCPU(b *testing.B) func() {
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/event")
	}
}

// cpuTime is the process's CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
