package tracing_test

import (
	"context"
	"errors"
	"maps"
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

// spanAttrs returns the attributes of span as strings.
func spanAttrs(s tracetest.SpanStub) map[string]string {
	attrs := map[string]string{}
	for _, kv := range s.Attributes {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	return attrs
}

// TestTracingSemanticConventionAttributes: with and without
// WithMinimalAttributes, the spans carry the attributes the messaging
// semantic conventions require (messaging.operation.name and, on failure,
// error.type were missing before); the default adds the recommended ones,
// the minimal set nothing else.
func TestTracingSemanticConventionAttributes(t *testing.T) {
	required := map[string]string{
		"messaging.system":              "eventkit",
		"messaging.operation.name":      "process",
		"messaging.operation.type":      "process",
		"messaging.destination.name":    "orders",
		"messaging.consumer.group.name": "billing",
		"error.type":                    "*errors.errorString",
	}
	recommended := map[string]string{
		"messaging.message.id":               "o-1",
		"cloudevents.event_type":             mwtest.NewEvent("o-1").Type(),
		"cloudevents.event_source":           mwtest.NewEvent("o-1").Source(),
		"eventkit.route":                     "bill",
		"messaging.message.delivery_attempt": "2",
	}
	for _, minimal := range []bool{false, true} {
		exp := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		opts := []tracing.Option{tracing.WithTracerProvider(tp)}
		if minimal {
			opts = append(opts, tracing.WithMinimalAttributes())
		}
		h := mwtest.NewHarness(t)
		h.Router.Use(tracing.Middleware(opts...))
		second := make(chan struct{})
		if err := h.Router.HandleFunc(h.Topic("orders"), func(_ context.Context, m *eventkit.Message) error {
			switch m.Attempt {
			case 1:
				return errors.New("no stock")
			case 2:
				defer close(second)
				return errors.New("no stock")
			}
			return nil
		}, eventkit.RouteName("bill"), eventkit.RouteGroup("billing")); err != nil {
			t.Fatal(err)
		}
		h.Start()
		h.Publish(h.Topic("orders"), mwtest.NewEvent("o-1"))
		mwtest.Wait(t, second, "the second attempt")
		required["messaging.destination.name"] = h.Topic("orders")
		var spans tracetest.SpanStubs
		mwtest.Eventually(t, "two spans", func() bool { spans = exp.GetSpans(); return len(spans) >= 2 })
		got := spanAttrs(spans[1])
		want := maps.Clone(required)
		if !minimal {
			maps.Copy(want, recommended)
		}
		if !maps.Equal(got, want) {
			t.Errorf("minimal=%v: consumer span attributes\n%v\nwant\n%v", minimal, got, want)
		}
		pub := tracing.Publisher(mwtest.PublisherFunc(func(context.Context, string, ...event.Event) error { return nil }), opts...)
		if err := pub.Publish(context.Background(), "orders", mwtest.NewEvent("o-2"), mwtest.NewEvent("o-3")); err != nil {
			t.Fatal(err)
		}
		var producer []tracetest.SpanStub // later attempts may end meanwhile
		for _, s := range exp.GetSpans() {
			if s.SpanKind == trace.SpanKindProducer {
				producer = append(producer, s)
			}
		}
		if len(producer) != 1 {
			t.Fatalf("%d producer spans; want 1", len(producer))
		}
		got = spanAttrs(producer[0])
		want = map[string]string{"messaging.system": "eventkit", "messaging.operation.name": "send", "messaging.operation.type": "send",
			"messaging.destination.name": "orders", "messaging.batch.message_count": "2"}
		if !maps.Equal(got, want) {
			t.Errorf("minimal=%v: producer span attributes\n%v\nwant\n%v", minimal, got, want)
		}
		_ = tp.Shutdown(context.Background())
	}
}
