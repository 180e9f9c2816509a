package middleware_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/middleware"
	"github.com/eventkit/eventkit/middleware/prom"
	"github.com/eventkit/eventkit/middleware/tracing"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recommendedChain is the full recommended chain of the benchmark: tracing
// (a real SDK provider, every span sampled, exported in batches to a no-op
// exporter), metrics (a fresh registry), dead letter, retry, timeout and
// recover.
func recommendedChain(b *testing.B, pub eventkit.Publisher) (eventkit.Middleware, func()) {
	return recommendedChainSampled(b, pub, sdktrace.AlwaysSample())
}

// benchTracerProvider returns a real SDK provider that samples with
// sampler and exports in batches to a no-op exporter, and the function that
// shuts it down.
func benchTracerProvider(sampler sdktrace.Sampler) (*sdktrace.TracerProvider, func()) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler),
		sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	return tp, func() { _ = tp.Shutdown(context.Background()) }
}

func recommendedChainSampled(b *testing.B, pub eventkit.Publisher, sampler sdktrace.Sampler) (eventkit.Middleware, func()) {
	tp, stop := benchTracerProvider(sampler)
	metrics, err := prom.New(prom.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		b.Fatal(err)
	}
	chain := eventkit.Chain(
		tracing.Middleware(tracing.WithTracerProvider(tp)),
		metrics.Middleware(),
		middleware.DeadLetter(pub),
		middleware.Retry(),
		middleware.Timeout(30*time.Second),
		middleware.Recover(),
	)
	return chain, stop
}

// bare is the handler the benchmarked middleware wrap: it does nothing.
var bare = eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { return nil })

// handleLoop calls h b.N times with a message of e, and reports the CPU
// time per call.
func handleLoop(b *testing.B, h eventkit.Handler, e event.Event) {
	m := eventkit.NewMessage("bench.orders", e, 1, nil, nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		if err := h.Handle(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/event")
}

// BenchmarkMiddlewareChain measures the cost of the recommended chain per
// event, against a bare handler, in the same run:
//
//   - direct: the chain called directly (no transport), so the figure is
//     the middleware alone;
//   - bus: events published on the memory bus and handled by a Router,
//     bare and with the chain; the overhead metric is the difference.
func BenchmarkMiddlewareChain(b *testing.B) {
	direct := func(b *testing.B, sampler sdktrace.Sampler, e event.Event) {
		chain, stop := recommendedChainSampled(b, memory.New(), sampler)
		defer stop()
		handleLoop(b, chain(bare), e)
	}
	b.Run("direct", func(b *testing.B) { direct(b, sdktrace.AlwaysSample(), newEvent("e-1")) })
	// The same with an event that carries a traceparent, as events published
	// through a TracingPublisher do: the consumer span's parent is extracted.
	b.Run("direct-traceparent", func(b *testing.B) { direct(b, sdktrace.AlwaysSample(), tracedEvent(b)) })
	// The same chain with the span sampled out (what most events cost under
	// a ratio sampler in production).
	b.Run("direct-sampled-out", func(b *testing.B) { direct(b, sdktrace.NeverSample(), newEvent("e-1")) })
	// Each middleware alone, called directly: where the cost of the chain goes.
	for _, part := range chainParts(b) {
		b.Run("direct/"+part.name, func(b *testing.B) {
			handleLoop(b, part.mw(bare), newEvent("e-1"))
		})
	}
	// "bus-traced" is the same with the publishing side traced too: events
	// are published through a TracingPublisher (a producer span each,
	// traceparent injected) and the chain extracts it. The overhead is both
	// sides together.
	for _, traced := range []bool{false, true} {
		name := map[bool]string{false: "bus", true: "bus-traced"}[traced]
		b.Run(name, func(b *testing.B) {
			bareNs, bareCPU := runBus(b, false, false)
			chainNs, chainCPU := runBus(b, true, traced)
			b.ReportMetric(bareNs, "bare-ns/event")
			b.ReportMetric(chainNs, "chain-ns/event")
			b.ReportMetric(chainNs-bareNs, "overhead-ns/event")
			b.ReportMetric(chainCPU-bareCPU, "overhead-cpu-ns/event")
		})
	}
}

// tracedEvent returns an event carrying the traceparent of a sampled span,
// as a TracingPublisher writes it.
func tracedEvent(b *testing.B) event.Event {
	var got event.Event
	pub := tracing.Publisher(publisherFunc(func(_ context.Context, _ string, events ...event.Event) error {
		got = events[0]
		return nil
	}), tracing.WithTracerProvider(sdktrace.NewTracerProvider()))
	if err := pub.Publish(context.Background(), "bench.orders", newEvent("e-1")); err != nil {
		b.Fatal(err)
	}
	if _, ok := got.Extensions()[tracing.ExtTraceParent]; !ok {
		b.Fatal("no traceparent injected")
	}
	return got
}

type publisherFunc func(ctx context.Context, topic string, events ...event.Event) error

func (f publisherFunc) Publish(ctx context.Context, topic string, events ...event.Event) error {
	return f(ctx, topic, events...)
}

func (publisherFunc) Close() error { return nil }

// BenchmarkTracingPublisher is the publishing side alone: a producer span
// (real SDK provider, sampled, no-op exporter) and the traceparent injected
// into a copy of the event, in front of a publisher that discards it.
func BenchmarkTracingPublisher(b *testing.B) {
	tp, stop := benchTracerProvider(sdktrace.AlwaysSample())
	defer stop()
	pub := tracing.Publisher(publisherFunc(func(context.Context, string, ...event.Event) error { return nil }),
		tracing.WithTracerProvider(tp))
	e := newEvent("e-1")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		if err := pub.Publish(ctx, "bench.orders", e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/event")
}

// cpuTime returns the CPU time (user and system) the process has used. On a
// loaded machine it varies less than the wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type part struct {
	name string
	mw   eventkit.Middleware
}

func chainParts(b *testing.B) []part {
	tp, stop := benchTracerProvider(sdktrace.AlwaysSample())
	b.Cleanup(stop)
	metrics, err := prom.New(prom.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		b.Fatal(err)
	}
	return []part{
		{"tracing", tracing.Middleware(tracing.WithTracerProvider(tp))},
		{"tracing-minimal", tracing.Middleware(tracing.WithTracerProvider(tp), tracing.WithMinimalAttributes())},
		{"metrics", metrics.Middleware()},
		{"deadletter", middleware.DeadLetter(memory.New())},
		{"retry", middleware.Retry()},
		{"timeout", middleware.Timeout(30 * time.Second)},
		{"recover", middleware.Recover()},
	}
}

// runBus publishes b.N events on a memory bus to a Router and returns the
// wall and CPU nanoseconds per event from the first publish to the last
// handled.
func runBus(b *testing.B, withChain, tracedPublish bool) (wallNs, cpuNs float64) {
	bus := memory.New()
	defer bus.Close()
	var pub eventkit.Publisher = bus
	if tracedPublish {
		tp, stop := benchTracerProvider(sdktrace.AlwaysSample())
		defer stop()
		pub = tracing.Publisher(bus, tracing.WithTracerProvider(tp))
	}
	r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLogger))
	if withChain {
		chain, stop := recommendedChain(b, bus)
		defer stop()
		r.Use(chain)
	}
	n := b.N
	done := make(chan struct{})
	count := 0
	if err := r.HandleFunc("bench.orders", func(context.Context, *eventkit.Message) error {
		count++
		if count == n {
			close(done)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- r.Run(context.Background()) }()
	<-r.Running()
	e := newEvent("e-1")
	ctx := context.Background()
	start, cpu := time.Now(), cpuTime()
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, "bench.orders", e); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	elapsed, cpuUsed := time.Since(start), cpuTime()-cpu
	if err := r.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	<-errc
	return float64(elapsed.Nanoseconds()) / float64(n), float64(cpuUsed.Nanoseconds()) / float64(n)
}

// BenchmarkSpanReference is one bare OpenTelemetry SDK span (start and end,
// no attributes, no-op exporter): the floor of Tracing's cost, to read the
// chain's figures against on a loaded machine.
func BenchmarkSpanReference(b *testing.B) {
	tp, stop := benchTracerProvider(sdktrace.AlwaysSample())
	defer stop()
	tr := tp.Tracer("reference")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		_, s := tr.Start(ctx, "span")
		s.End()
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/event")
}

// BenchmarkSpanReferenceAttributes is one OpenTelemetry SDK span carrying
// what Tracing's consumer span carries (kind Consumer and the same eight
// messaging and CloudEvents attributes, set after start, as Tracing sets
// them), with no eventkit code: the floor of Tracing's cost once the span
// holds the semantic conventions' attributes, whose copying and
// de-duplication at End the SDK does.
func BenchmarkSpanReferenceAttributes(b *testing.B) {
	tp, stop := benchTracerProvider(sdktrace.AlwaysSample())
	defer stop()
	tr := tp.Tracer("reference")
	ctx := context.Background()
	static := []attribute.KeyValue{
		attribute.String("messaging.system", "eventkit"),
		attribute.String("messaging.operation.name", "process"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", "bench.orders"),
		attribute.String("eventkit.route", "bench"),
	}
	attrs := make([]attribute.KeyValue, 0, 8)
	kind := trace.WithSpanKind(trace.SpanKindConsumer)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		_, s := tr.Start(ctx, "process bench.orders", kind)
		attrs = append(append(attrs[:0], static...),
			attribute.String("messaging.message.id", "e-1"),
			attribute.String("cloudevents.event_source", "urn:example:shop"),
			attribute.String("cloudevents.event_type", "shop.order.created"))
		s.SetAttributes(attrs...)
		s.End()
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/event")
}
