package tracing_test

import (
	"context"
	"fmt"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/middleware/internal/mwtest"
	"github.com/eventkit/eventkit/middleware/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// The consumer span of a handled event is a child of the span that
// published it, through the traceparent extension.
func Example() {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	bus := memory.New()
	defer bus.Close()
	pub := tracing.Publisher(bus, tracing.WithTracerProvider(tp))
	r := eventkit.NewRouter(bus)
	r.Use(tracing.Middleware(tracing.WithTracerProvider(tp)))
	done := make(chan struct{})
	_ = r.HandleFunc("orders.created", func(ctx context.Context, m *eventkit.Message) error {
		defer close(done)
		return nil
	})
	go func() { _ = r.Run(context.Background()) }()
	<-r.Running()
	_ = pub.Publish(context.Background(), "orders.created", mwtest.ExampleEvent("o-1", "shop.order.created", `{}`))
	<-done
	_ = r.Shutdown(context.Background()) // the consumer span has ended
	var producer, consumer tracetest.SpanStub
	for _, s := range exp.GetSpans() { // in the order they ended
		switch s.SpanKind {
		case trace.SpanKindProducer:
			producer = s
		case trace.SpanKindConsumer:
			consumer = s
		}
	}
	fmt.Println(producer.Name, "->", consumer.Name)
	fmt.Println("same trace:", consumer.SpanContext.TraceID() == producer.SpanContext.TraceID())
	fmt.Println("consumer is the producer's child:", consumer.Parent.SpanID() == producer.SpanContext.SpanID())
	// Output:
	// publish orders.created -> process orders.created
	// same trace: true
	// consumer is the producer's child: true
}
