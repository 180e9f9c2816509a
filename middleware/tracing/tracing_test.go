package tracing_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/middleware"
	"github.com/eventkit/eventkit/middleware/internal/mwtest"
	"github.com/eventkit/eventkit/middleware/prom"
	"github.com/eventkit/eventkit/middleware/tracing"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestTracingLinksPublishAndHandle(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	h := mwtest.NewHarness(t)
	pub := tracing.Publisher(h.Bus, tracing.WithTracerProvider(tp))
	done := make(chan struct{})
	h.Router.Use(tracing.Middleware(tracing.WithTracerProvider(tp)))
	if err := h.Router.HandleFunc(h.Topic("orders"), func(ctx context.Context, m *eventkit.Message) error {
		return pub.Publish(ctx, h.Topic("shipments"), mwtest.NewEvent("s-of-"+m.Event.ID()))
	}, eventkit.RouteName("orders")); err != nil {
		t.Fatal(err)
	}
	if err := h.Router.HandleFunc(h.Topic("shipments"), func(ctx context.Context, m *eventkit.Message) error {
		if m.Attempt > 1 {
			return nil
		}
		defer close(done)
		return errors.New("carrier unavailable")
	}, eventkit.RouteName("shipments")); err != nil {
		t.Fatal(err)
	}
	h.Start()

	ctx, root := tp.Tracer("test").Start(context.Background(), "checkout")
	orig := mwtest.NewEvent("o-1")
	if err := pub.Publish(ctx, h.Topic("orders"), orig); err != nil {
		t.Fatal(err)
	}
	root.End()
	mwtest.Wait(t, done, "the shipment handled")
	if _, ok := orig.Extensions()[tracing.ExtTraceParent]; ok {
		t.Fatal("TracingPublisher modified the caller's event")
	}
	// The consumer span of shipments ends after the handler returns.
	var spans tracetest.SpanStubs
	mwtest.Eventually(t, "five spans", func() bool { spans = exp.GetSpans(); return len(spans) >= 5 })

	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		if _, ok := byName[s.Name]; !ok { // the first: a redelivery adds a second "process" span
			byName[s.Name] = s
		}
	}
	get := func(name string, kind trace.SpanKind) tracetest.SpanStub {
		s, ok := byName[name]
		if !ok {
			t.Fatalf("no span %q among %d", name, len(spans))
		}
		if s.SpanKind != kind {
			t.Errorf("span %q kind %v, want %v", name, s.SpanKind, kind)
		}
		return s
	}
	checkout := get("checkout", trace.SpanKindInternal)
	pubOrders := get("publish "+h.Topic("orders"), trace.SpanKindProducer)
	procOrders := get("process "+h.Topic("orders"), trace.SpanKindConsumer)
	pubShip := get("publish "+h.Topic("shipments"), trace.SpanKindProducer)
	procShip := get("process "+h.Topic("shipments"), trace.SpanKindConsumer)

	chain := []tracetest.SpanStub{checkout, pubOrders, procOrders, pubShip, procShip}
	for i := 1; i < len(chain); i++ {
		parent, child := chain[i-1], chain[i]
		if child.Parent.SpanID() != parent.SpanContext.SpanID() {
			t.Errorf("span %q has parent %s, want %q (%s)", child.Name, child.Parent.SpanID(), parent.Name, parent.SpanContext.SpanID())
		}
		if child.SpanContext.TraceID() != checkout.SpanContext.TraceID() {
			t.Errorf("span %q in trace %s, want %s", child.Name, child.SpanContext.TraceID(), checkout.SpanContext.TraceID())
		}
	}
	if !procOrders.Parent.IsRemote() {
		t.Error("the consumer span's parent was not extracted from the event (not remote)")
	}
	if procShip.Status.Code != codes.Error {
		t.Errorf("failed handling has span status %v, want Error", procShip.Status.Code)
	}
	if procOrders.Status.Code == codes.Error {
		t.Error("successful handling has status Error")
	}
	attrs := map[string]string{}
	for _, kv := range procOrders.Attributes {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	if attrs["messaging.destination.name"] != h.Topic("orders") || attrs["messaging.message.id"] != "o-1" || attrs["eventkit.route"] != "orders" {
		t.Errorf("consumer span attributes %v", attrs)
	}
}

func TestTracingWithoutTraceParentStartsRoot(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	h := tracing.Middleware(tracing.WithTracerProvider(tp))(eventkit.HandlerFunc(func(ctx context.Context, _ *eventkit.Message) error {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return errors.New("no span in the handler's context")
		}
		return nil
	}))
	if err := h.Handle(context.Background(), eventkit.NewMessage("t", mwtest.NewEvent("1"), 1, nil, nil)); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Parent.IsValid() {
		t.Fatalf("spans %v; want one root span", spans)
	}
}

// In the recommended order Tracing is outside Metrics and DeadLetter; the
// consumer span still carries the outcome they record.
func TestTracingRecordsOutcome(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	metrics, err := prom.New(prom.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	for _, withMetrics := range []bool{true, false} {
		exp.Reset()
		mw := []eventkit.Middleware{tracing.Middleware(tracing.WithTracerProvider(tp))}
		if withMetrics {
			mw = append(mw, metrics.Middleware())
		}
		mw = append(mw, middleware.DeadLetter(mwtest.PublisherFunc(func(context.Context, string, ...event.Event) error { return nil }), middleware.DeadLetterLogger(mwtest.QuietLogger)), middleware.Retry())
		h := eventkit.Chain(mw...)(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error {
			return middleware.Permanent(errors.New("malformed order"))
		}))
		if err := h.Handle(context.Background(), eventkit.NewMessage("orders", mwtest.NewEvent("1"), 1, nil, nil)); err != nil {
			t.Fatal(err)
		}
		spans := exp.GetSpans()
		if len(spans) != 1 {
			t.Fatalf("%d spans, want 1", len(spans))
		}
		outcome := ""
		for _, kv := range spans[0].Attributes {
			if kv.Key == "eventkit.outcome" {
				outcome = kv.Value.String()
			}
		}
		if outcome != string(middleware.OutcomeDeadLettered) {
			t.Errorf("with metrics %v: span outcome %q, want %q", withMetrics, outcome, middleware.OutcomeDeadLettered)
		}
	}
}
