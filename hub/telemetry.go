package hub

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/ceext"
	"github.com/eventkit/eventkit/internal/version"
	"github.com/eventkit/eventkit/middleware/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TelemetryConfig configures the server's OpenTelemetry traces.
type TelemetryConfig struct {
	// OTLP exports spans to an OpenTelemetry collector; nil (the
	// default) traces nothing.
	OTLP *OTLPConfig `yaml:"otlp"`
}

// OTLPConfig is an OTLP trace exporter. With it, each request to
// POST /events is a server span ("POST /events"), the store of its events
// a producer span ("publish <topic>", its child, ended once the broker
// acknowledged them) whose context the stored events carry in the
// CloudEvents distributed tracing extension (traceparent, tracestate), and
// each webhook delivery attempt a consumer span ("process <topic>", a child
// of the store span). The trace id is in the live tail's items and in the
// log records of retried and dead-lettered deliveries (trace_id).
type OTLPConfig struct {
	// Endpoint is the collector's URL: "http://collector:4318" (the path
	// /v1/traces is added when the URL has none) or
	// "https://collector:4317" for gRPC. http:// sends in clear.
	Endpoint string `yaml:"endpoint"`
	// Protocol is "http" (OTLP/HTTP with protobuf, the default) or "grpc".
	Protocol string `yaml:"protocol"`
	// Headers are sent with every export (an API key of a hosted
	// collector); a value "env:NAME" reads the environment.
	Headers map[string]string `yaml:"headers"`
	// SampleRatio is the share of new traces recorded, 0 to 1 (nil: 1,
	// every trace). A request that carries a sampled trace context (the
	// W3C traceparent header) is recorded whatever the ratio.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name of the spans ("eventkit").
	ServiceName string `yaml:"service_name"`
}

// validate checks the exporter's settings.
func (c *TelemetryConfig) validate() error {
	o := c.OTLP
	if o == nil {
		return nil
	}
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return configError("telemetry.otlp.endpoint %q: want an http:// or https:// URL", o.Endpoint)
	}
	if o.Protocol != "" && o.Protocol != "http" && o.Protocol != "grpc" {
		return configError("telemetry.otlp.protocol %q: want http or grpc", o.Protocol)
	}
	if r := o.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		return configError("telemetry.otlp.sample_ratio %v: want 0 to 1", *r)
	}
	return nil
}

// telemetry is the server's tracing: a no-op without an exporter.
type telemetry struct {
	tp   *sdktrace.TracerProvider // nil: tracing off
	opts []tracing.Option
	prop propagation.TextMapPropagator
}

// newTelemetry starts the exporter of cfg (none when cfg.OTLP is nil).
// The exporter connects lazily: a collector that is down loses spans,
// never events.
func newTelemetry(cfg TelemetryConfig) (*telemetry, error) {
	o := cfg.OTLP
	if o == nil {
		return &telemetry{}, nil
	}
	headers := make(map[string]string, len(o.Headers))
	for k, v := range o.Headers {
		headers[k] = secret(v)
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	ctx := context.Background() // the exporters do no I/O at creation
	if o.Protocol == "grpc" {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(o.Endpoint), otlptracegrpc.WithHeaders(headers)}
		if strings.HasPrefix(o.Endpoint, "http://") {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	} else {
		endpoint := o.Endpoint
		if u, _ := url.Parse(endpoint); u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
			endpoint = u.String()
		}
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint), otlptracehttp.WithHeaders(headers))
	}
	if err != nil {
		return nil, fmt.Errorf("hub: telemetry: %w", err)
	}
	ratio := 1.0
	if o.SampleRatio != nil {
		ratio = *o.SampleRatio
	}
	name := o.ServiceName
	if name == "" {
		name = "eventkit"
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", name), attribute.String("service.version", version.Get()))),
	)
	prop := propagation.TraceContext{}
	return &telemetry{tp: tp, prop: prop, opts: []tracing.Option{tracing.WithTracerProvider(tp), tracing.WithPropagator(prop)}}, nil
}

// shutdown exports the spans still buffered, within ctx.
func (t *telemetry) shutdown(ctx context.Context) error {
	if t.tp == nil {
		return nil
	}
	if err := t.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("hub: telemetry: %w", err)
	}
	return nil
}

// publisher wraps the ingress publisher: the store span, whose context the
// events carry.
func (t *telemetry) publisher(p eventkit.Publisher) eventkit.Publisher {
	if t.tp == nil {
		return p
	}
	return tracing.Publisher(p, t.opts...)
}

// delivery is the middleware of each webhook route: the delivery span, a
// child of the store span the event names.
func (t *telemetry) delivery() eventkit.Middleware {
	if t.tp == nil {
		return func(next eventkit.Handler) eventkit.Handler { return next }
	}
	return tracing.Middleware(t.opts...)
}

// ingress wraps POST /events in the server span, a child of the trace
// context of the request's W3C traceparent header when it has one.
func (t *telemetry) ingress(next http.Handler) http.Handler {
	if t.tp == nil {
		return next
	}
	tracer := t.tp.Tracer("github.com/eventkit/eventkit/hub")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, r.Method+" /events", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
				attribute.String("http.route", "/events")))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		span.SetAttributes(attribute.Int("http.response.status_code", sw.code))
		if sw.code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.code))
		}
	})
}

// TraceID returns the trace id (32 lowercase hex digits) of the W3C trace
// context that e carries in its traceparent extension, or "" when it
// carries none or a malformed one.
func TraceID(e *event.Event) string {
	tp, ok := ceext.String(e, tracing.ExtTraceParent)
	if !ok {
		return ""
	}
	// version "-" trace-id "-" parent-id "-" flags
	parts := strings.Split(tp, "-")
	if len(parts) < 4 || len(parts[1]) != 32 {
		return ""
	}
	id, err := trace.TraceIDFromHex(parts[1])
	if err != nil || !id.IsValid() {
		return ""
	}
	return id.String()
}

// traceLog adds the trace id of the span in a record's context
// (trace_id) to each record written with one.
type traceLog struct{ slog.Handler }

func (h traceLog) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceLog) WithAttrs(a []slog.Attr) slog.Handler { return traceLog{h.Handler.WithAttrs(a)} }
func (h traceLog) WithGroup(name string) slog.Handler   { return traceLog{h.Handler.WithGroup(name)} }
