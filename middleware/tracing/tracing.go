// Package tracing is eventkit's OpenTelemetry middleware: a consumer span
// per handled message (Middleware), a child of the producer span whose
// context the event carries in the CloudEvents distributed tracing
// extension, and a producer span per publish (Publisher), which writes that
// context into the events. It is a package of its own so that only the
// programs that trace link OpenTelemetry.
package tracing

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/ceext"
	"github.com/eventkit/eventkit/middleware"
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

const tracerName = "github.com/eventkit/eventkit/middleware/tracing"

// Option configures Middleware and Publisher.
type Option func(*config)

type config struct {
	tp      trace.TracerProvider
	prop    propagation.TextMapPropagator
	minimal bool
}

// WithMinimalAttributes makes the spans carry only the attributes that the
// OpenTelemetry messaging semantic conventions require, or require when
// they apply: messaging.system, messaging.operation.name,
// messaging.operation.type, messaging.destination.name,
// messaging.consumer.group.name (for a route with a group),
// messaging.batch.message_count (producer spans) and error.type (on
// failure). It leaves out the recommended and eventkit's own:
// messaging.message.id, cloudevents.event_source, cloudevents.event_type,
// eventkit.route, messaging.message.delivery_attempt and eventkit.outcome.
//
// The default records them all: an event is found in a trace backend by
// its id and type, which is what most users look for. Each attribute costs
// the OpenTelemetry SDK a copy and a de-duplication at the span's end
// (about 0.2 µs per attribute on a small machine, where a bare span costs
// about 1.7 µs): this option is for handlers so light that the span is
// most of their cost.
func WithMinimalAttributes() Option {
	return func(c *config) { c.minimal = true }
}

// WithTracerProvider sets the tracer provider (default
// otel.GetTracerProvider()).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// WithPropagator sets the propagator that reads and writes the event's
// extensions (default propagation.TraceContext{}, the W3C format the
// CloudEvents extension specifies).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.prop = p }
}

func newConfig(opts []Option) config {
	c := config{}
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
	s, _ := ceext.String(c.e, key)
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

// Middleware starts an OpenTelemetry span of kind Consumer for each handled
// message, named "process <topic>", as a child of the producer's span whose
// context the event carries in its traceparent and tracestate extensions
// (set by Publisher). The handler's context carries the span, so
// that events published from the handler through a Publisher become
// its children. A handler error is recorded on the span and sets its status
// to Error.
//
// The span name and the attributes that depend only on the topic and the
// route are built once per route and topic (the last one seen), not per
// event; a span sampled out gets no attribute work at all.
func Middleware(opts ...Option) eventkit.Middleware {
	c := newConfig(opts)
	tracer := c.tp.Tracer(tracerName)
	startOpts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	return func(next eventkit.Handler) eventkit.Handler {
		// Per route (the Router applies middleware once per route): the
		// static part of the span for the last topic seen, and the last
		// source rendered.
		var static atomic.Pointer[consumerStatic]
		var lastSource atomic.Pointer[sourceString]
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
			if _, ok := ceext.Get(&m.Event, ExtTraceParent); ok {
				ctx = c.prop.Extract(ctx, eventCarrier{&m.Event})
			}
			ri, hasRoute := eventkit.RouteFromContext(ctx)
			st := static.Load()
			if st == nil || st.topic != m.Topic || st.hasRoute != hasRoute || st.route != ri.Name || st.group != ri.Group {
				st = newConsumerStatic(m.Topic, ri, hasRoute, c.minimal)
				static.Store(st)
			}
			// The report in which DeadLetter, Dedup and prom.Metrics record the
			// outcome, made here if no middleware outside made it, so that
			// the span can carry the outcome.
			ctx, rep := middleware.EnsureReport(ctx)
			ctx, span := tracer.Start(ctx, st.name, startOpts...)
			switch {
			case !span.IsRecording(): // no attribute work for a span sampled out
			case c.minimal:
				span.SetAttributes(st.attrs...) // the SDK copies them
			default:
				bp := attrPool.Get().(*[]attribute.KeyValue)
				attrs := append((*bp)[:0], st.attrs...)
				attrs = append(attrs,
					attribute.String("messaging.message.id", m.Event.ID()),
					attribute.String("cloudevents.event_source", eventSource(&m.Event, &lastSource)),
					attribute.String("cloudevents.event_type", m.Event.Type()))
				if m.Attempt > 1 {
					attrs = append(attrs, attribute.Int("messaging.message.delivery_attempt", m.Attempt))
				}
				span.SetAttributes(attrs...) // the SDK copies them
				clear(attrs)
				*bp = attrs[:0]
				attrPool.Put(bp)
			}
			err := next.Handle(ctx, m)
			if err != nil {
				recordError(span, err)
			} else if rep.Outcome != "" && !c.minimal {
				span.SetAttributes(attribute.String("eventkit.outcome", string(rep.Outcome)))
			}
			span.End()
			return err
		})
	}
}

// consumerStatic is the part of a consumer span that depends only on the
// topic and the route.
type consumerStatic struct {
	topic, route, group string
	hasRoute            bool
	name                string
	attrs               []attribute.KeyValue
}

// Attributes of every span, built once.
var (
	attrSystem      = attribute.String("messaging.system", "eventkit")
	attrProcessName = attribute.String("messaging.operation.name", "process")
	attrProcessType = attribute.String("messaging.operation.type", "process")
	attrSendName    = attribute.String("messaging.operation.name", "send")
	attrSendType    = attribute.String("messaging.operation.type", "send")
)

func newConsumerStatic(topic string, ri eventkit.RouteInfo, hasRoute, minimal bool) *consumerStatic {
	st := &consumerStatic{topic: topic, route: ri.Name, group: ri.Group, hasRoute: hasRoute, name: "process " + topic}
	st.attrs = []attribute.KeyValue{attrSystem, attrProcessName, attrProcessType, attribute.String("messaging.destination.name", topic)}
	if hasRoute {
		if !minimal {
			st.attrs = append(st.attrs, attribute.String("eventkit.route", ri.Name))
		}
		if ri.Group != "" {
			st.attrs = append(st.attrs, attribute.String("messaging.consumer.group.name", ri.Group))
		}
	}
	return st
}

// recordError records err on span: an exception event, the status Error
// and error.type, the Go type of err (the semantic conventions' choice
// when there is no error code).
func recordError(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(attribute.String("error.type", fmt.Sprintf("%T", err)))
}

// attrPool holds scratch attribute slices: span.SetAttributes copies its
// arguments, so one slice serves event after event.
var attrPool = sync.Pool{New: func() any {
	s := make([]attribute.KeyValue, 0, 10)
	return &s
}}

// sourceString caches the string form of a source URI (rendering a
// url.URL allocates; consecutive events of a route mostly share a source).
type sourceString struct {
	u url.URL
	s string
}

// eventSource returns e.Source(), from cache when the source is the one last
// rendered.
func eventSource(e *event.Event, cache *atomic.Pointer[sourceString]) string {
	ec, ok := e.Context.(*event.EventContextV1)
	if !ok {
		return e.Source()
	}
	if c := cache.Load(); c != nil && c.u == ec.Source.URL {
		return c.s
	}
	c := &sourceString{u: ec.Source.URL, s: ec.Source.String()}
	cache.Store(c)
	return c.s
}

// Publisher returns a Publisher that starts a span of kind Producer,
// "publish <topic>", for each Publish call (a child of the span in ctx, for
// example the consumer span of Middleware), and writes its context into the
// traceparent and tracestate extensions of every event published, replacing
// any value they had. Events are copied, never modified in place: each
// event published gets its own copy of the context attributes and
// extensions; its data is shared with the caller's event, as it would be
// by the wrapped Publisher.
func Publisher(pub eventkit.Publisher, opts ...Option) eventkit.Publisher {
	c := newConfig(opts)
	return &tracingPublisher{pub: pub, prop: c.prop, tracer: c.tp.Tracer(tracerName), minimal: c.minimal}
}

type tracingPublisher struct {
	pub     eventkit.Publisher
	prop    propagation.TextMapPropagator
	tracer  trace.Tracer
	minimal bool
	static  atomic.Pointer[producerStatic]
}

// producerStatic is the span name and the start options of the producer
// span for one topic and batch size (the last seen), built once.
type producerStatic struct {
	topic string
	n     int
	name  string
	opts  []trace.SpanStartOption
}

func (p *tracingPublisher) staticFor(topic string, n int) *producerStatic {
	if st := p.static.Load(); st != nil && st.topic == topic && st.n == n {
		return st
	}
	st := &producerStatic{topic: topic, n: n, name: "publish " + topic, opts: []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes( // given at start, so that a sampler sees them
			attrSystem, attrSendName, attrSendType,
			attribute.String("messaging.destination.name", topic),
			attribute.Int("messaging.batch.message_count", n),
		),
	}}
	p.static.Store(st)
	return st
}

// fieldCarrier collects what the propagator injects, once per Publish call.
type fieldCarrier struct{ kv []string }

func (c *fieldCarrier) Get(key string) string {
	for i := 0; i+1 < len(c.kv); i += 2 {
		if c.kv[i] == key {
			return c.kv[i+1]
		}
	}
	return ""
}

func (c *fieldCarrier) Set(key, value string) {
	for i := 0; i+1 < len(c.kv); i += 2 {
		if c.kv[i] == key {
			c.kv[i+1] = value
			return
		}
	}
	c.kv = append(c.kv, key, value)
}

func (c *fieldCarrier) Keys() []string {
	keys := make([]string, 0, len(c.kv)/2)
	for i := 0; i+1 < len(c.kv); i += 2 {
		keys = append(keys, c.kv[i])
	}
	return keys
}

func (p *tracingPublisher) Publish(ctx context.Context, topic string, events ...event.Event) error {
	st := p.staticFor(topic, len(events))
	ctx, span := p.tracer.Start(ctx, st.name, st.opts...)
	defer span.End()
	// The span context is the same for every event of the call: inject it
	// once, then copy the fields into each event's copy.
	fields := carrierPool.Get().(*fieldCarrier)
	p.prop.Inject(ctx, fields)
	out := make([]event.Event, len(events))
	for i := range events {
		out[i] = withExtensions(events[i], fields.kv)
	}
	clear(fields.kv)
	fields.kv = fields.kv[:0]
	carrierPool.Put(fields)
	if len(events) == 1 && !p.minimal && span.IsRecording() {
		bp := attrPool.Get().(*[]attribute.KeyValue)
		attrs := append((*bp)[:0],
			attribute.String("messaging.message.id", events[0].ID()),
			attribute.String("cloudevents.event_type", events[0].Type()))
		span.SetAttributes(attrs...) // the SDK copies them
		clear(attrs)
		*bp = attrs[:0]
		attrPool.Put(bp)
	}
	err := p.pub.Publish(ctx, topic, out...)
	if err != nil {
		recordError(span, err)
	}
	return err
}

var carrierPool = sync.Pool{New: func() any { return &fieldCarrier{kv: make([]string, 0, 4)} }}

// withExtensions returns a copy of e with the extensions kv (name, value
// pairs) set. The copy has its own context attributes and extension map;
// the data is shared (never modified here). Unlike event.Event.Clone it does
// not deep-copy the source URL, time, data schema, every extension value and
// the data.
func withExtensions(e event.Event, kv []string) event.Event {
	v1, ok := e.Context.(*event.EventContextV1)
	if !ok {
		c := e.Clone()
		for i := 0; i+1 < len(kv); i += 2 {
			c.SetExtension(kv[i], kv[i+1])
		}
		return c
	}
	ec := *v1
	ec.Extensions = make(map[string]any, len(v1.Extensions)+len(kv)/2)
	for k, v := range v1.Extensions {
		ec.Extensions[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		_ = ec.SetExtension(kv[i], kv[i+1]) // a propagator's field names are valid extension names
	}
	e.Context = &ec
	if e.FieldErrors != nil {
		e.FieldErrors = maps.Clone(e.FieldErrors)
	}
	return e
}

func (p *tracingPublisher) Close() error { return p.pub.Close() }
