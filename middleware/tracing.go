package middleware

import (
	"context"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Extensions of the CloudEvents distributed tracing extension, which carry
// the W3C Trace Context inside the event.
const (
	ExtTraceParent = "traceparent"
	ExtTraceState  = "tracestate"
)

const tracerName = "github.com/eventkit/eventkit/middleware"

// TracingOption configures Tracing and TracingPublisher.
type TracingOption func(*tracingConfig)

type tracingConfig struct {
	tp   trace.TracerProvider
	prop propagation.TextMapPropagator
}

// WithTracerProvider sets the tracer provider (default
// otel.GetTracerProvider()).
func WithTracerProvider(tp trace.TracerProvider) TracingOption {
	return func(c *tracingConfig) { c.tp = tp }
}

// WithPropagator sets the propagator that reads and writes the event's
// extensions (default propagation.TraceContext{}, the W3C format the
// CloudEvents extension specifies).
func WithPropagator(p propagation.TextMapPropagator) TracingOption {
	return func(c *tracingConfig) { c.prop = p }
}

func newTracingConfig(opts []TracingOption) tracingConfig {
	c := tracingConfig{}
	for _, o := range opts {
		o(&c)
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.prop == nil {
		c.prop = propagation.TraceContext{}
	}
	return c
}

// eventCarrier adapts an event's extensions to propagation.TextMapCarrier.
type eventCarrier struct{ e *event.Event }

func (c eventCarrier) Get(key string) string {
	s, _ := stringExtension(*c.e, key)
	return s
}

func (c eventCarrier) Set(key, value string) { c.e.SetExtension(key, value) }

func (c eventCarrier) Keys() []string {
	ext := c.e.Extensions()
	keys := make([]string, 0, len(ext))
	for k := range ext {
		keys = append(keys, k)
	}
	return keys
}

// Tracing starts an OpenTelemetry span of kind Consumer for each handled
// message, named "process <topic>", as a child of the producer's span whose
// context the event carries in its traceparent and tracestate extensions
// (set by TracingPublisher). The handler's context carries the span, so
// that events published from the handler through a TracingPublisher become
// its children. A handler error is recorded on the span and sets its status
// to Error.
func Tracing(opts ...TracingOption) eventkit.Middleware {
	c := newTracingConfig(opts)
	tracer := c.tp.Tracer(tracerName)
	return func(next eventkit.Handler) eventkit.Handler {
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
			if _, ok := m.Event.Extensions()[ExtTraceParent]; ok {
				ctx = c.prop.Extract(ctx, eventCarrier{&m.Event})
			}
			ctx, span := tracer.Start(ctx, "process "+m.Topic, trace.WithSpanKind(trace.SpanKindConsumer))
			if span.IsRecording() { // no attribute work for a span sampled out
				attrs := make([]attribute.KeyValue, 0, 9)
				attrs = append(attrs,
					attribute.String("messaging.system", "eventkit"),
					attribute.String("messaging.operation.type", "process"),
					attribute.String("messaging.destination.name", m.Topic),
					attribute.String("messaging.message.id", m.Event.ID()),
					attribute.String("cloudevents.event_source", m.Event.Source()),
					attribute.String("cloudevents.event_type", m.Event.Type()))
				if m.Attempt > 1 {
					attrs = append(attrs, attribute.Int("messaging.message.delivery_attempt", m.Attempt))
				}
				if ri, ok := eventkit.RouteFromContext(ctx); ok {
					attrs = append(attrs, attribute.String("eventkit.route", ri.Name))
					if ri.Group != "" {
						attrs = append(attrs, attribute.String("messaging.consumer.group.name", ri.Group))
					}
				}
				span.SetAttributes(attrs...)
			}
			err := next.Handle(ctx, m)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			} else if rep := ReportFromContext(ctx); rep != nil && rep.Outcome != "" {
				span.SetAttributes(attribute.String("eventkit.outcome", string(rep.Outcome)))
			}
			span.End()
			return err
		})
	}
}

// TracingPublisher returns a Publisher that starts a span of kind Producer,
// "publish <topic>", for each Publish call (a child of the span in ctx, for
// example the consumer span of Tracing), and writes its context into the
// traceparent and tracestate extensions of every event published, replacing
// any value they had. Events are copied, never modified in place.
func TracingPublisher(pub eventkit.Publisher, opts ...TracingOption) eventkit.Publisher {
	c := newTracingConfig(opts)
	return &tracingPublisher{pub: pub, prop: c.prop, tracer: c.tp.Tracer(tracerName)}
}

type tracingPublisher struct {
	pub    eventkit.Publisher
	prop   propagation.TextMapPropagator
	tracer trace.Tracer
}

func (p *tracingPublisher) Publish(ctx context.Context, topic string, events ...event.Event) error {
	ctx, span := p.tracer.Start(ctx, "publish "+topic,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "eventkit"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", topic),
			attribute.Int("messaging.batch.message_count", len(events)),
		))
	defer span.End()
	out := make([]event.Event, len(events))
	for i := range events {
		out[i] = events[i].Clone()
		p.prop.Inject(ctx, eventCarrier{&out[i]})
	}
	if len(events) == 1 {
		span.SetAttributes(attribute.String("messaging.message.id", events[0].ID()),
			attribute.String("cloudevents.event_type", events[0].Type()))
	}
	err := p.pub.Publish(ctx, topic, out...)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

func (p *tracingPublisher) Close() error { return p.pub.Close() }
