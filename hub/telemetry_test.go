package hub_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/cehttp"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/hub"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an in-process OTLP/HTTP trace receiver. Its handler
// hands each export to the test goroutine, which keeps the spans.
type otlpReceiver struct {
	exports chan export
	spans   []*tracepb.Span // the test goroutine's
	apiKey  string          // the last export's x-api-key header
	srv     *httptest.Server
}

type export struct {
	spans  []*tracepb.Span
	apiKey string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	rc := &otlpReceiver{exports: make(chan export, 1024)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || err != nil || proto.Unmarshal(b, &req) != nil {
			http.Error(w, "not an OTLP/HTTP trace export", http.StatusBadRequest)
			return
		}
		ex := export{apiKey: r.Header.Get("x-api-key")}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				ex.spans = append(ex.spans, ss.Spans...)
			}
		}
		select {
		case rc.exports <- ex:
		default:
			http.Error(w, "the test keeps no more exports", http.StatusServiceUnavailable)
			return
		}
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// span returns the span named name of kind received so far, or nil.
func (rc *otlpReceiver) span(name string, kind tracepb.Span_SpanKind) *tracepb.Span {
	for more := true; more; {
		select {
		case ex := <-rc.exports:
			rc.spans, rc.apiKey = append(rc.spans, ex.spans...), ex.apiKey
		default:
			more = false
		}
	}
	for _, s := range rc.spans {
		if s.Name == name && s.Kind == kind {
			return s
		}
	}
	return nil
}

// TestTelemetrySpansFromIngressToDelivery posts one event to a server
// exporting to an in-process OTLP receiver: the ingress (server), store
// (producer) and delivery (consumer) spans share one trace and are
// parented in that order; the trace id is in the tail's item, in the
// event the webhook gets (traceparent) and in the dead-letter log record.
func TestTelemetrySpansFromIngressToDelivery(t *testing.T) {
	rc := newOTLPReceiver(t)
	delivered := make(chan string, 16) // trace ids of the events delivered
	hook := httptest.NewServer(cehttp.NewHandler(recorderFunc(func(_ string, e event.Event) error {
		select {
		case delivered <- hub.TraceID(&e):
			return nil
		default:
			return errors.New("delivered more than the test sent")
		}
	}), cehttp.WithLogger(quiet)))
	t.Cleanup(hook.Close)
	gone := newWebhook(t, 0, http.StatusGone) // dead-lettered at once
	var logs eventkittest.SyncBuffer
	cfg := hub.Config{DataDir: t.TempDir(),
		Telemetry: hub.TelemetryConfig{OTLP: &hub.OTLPConfig{Endpoint: rc.srv.URL, Headers: map[string]string{"x-api-key": "k"}}},
		Subscriptions: []hub.SubscriptionConfig{
			{Name: "hook", Topic: "orders.>", URL: hook.URL},
			{Name: "gone", Topic: "orders.>", URL: gone.srv.URL},
		}}
	s := start(t, cfg, hub.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	items := sse(t, s.URL(), "orders.>")
	if r := postEvent(t, s.URL(), "t-1", "orders.created"); r.StatusCode != http.StatusNoContent {
		t.Fatalf("POST: %d", r.StatusCode)
	}
	var item hub.StreamItem
	select {
	case item = <-items:
	case <-time.After(30 * time.Second):
		t.Fatal("no tail item")
	}

	var ingress, store, delivery *tracepb.Span
	eventkittest.WaitFor(t, time.Minute, "the ingress, store and delivery spans exported", func() bool {
		ingress = rc.span("POST /events", tracepb.Span_SPAN_KIND_SERVER)
		store = rc.span("publish orders.created", tracepb.Span_SPAN_KIND_PRODUCER)
		delivery = rc.span("process orders.created", tracepb.Span_SPAN_KIND_CONSUMER)
		return ingress != nil && store != nil && delivery != nil
	})
	trace := hex.EncodeToString(ingress.TraceId)
	for name, sp := range map[string]*tracepb.Span{"store": store, "delivery": delivery} {
		if got := hex.EncodeToString(sp.TraceId); got != trace {
			t.Errorf("%s span in trace %s, the ingress span in %s", name, got, trace)
		}
	}
	if hex.EncodeToString(store.ParentSpanId) != hex.EncodeToString(ingress.SpanId) {
		t.Errorf("store span's parent %x, want the ingress span %x", store.ParentSpanId, ingress.SpanId)
	}
	if hex.EncodeToString(delivery.ParentSpanId) != hex.EncodeToString(store.SpanId) {
		t.Errorf("delivery span's parent %x, want the store span %x", delivery.ParentSpanId, store.SpanId)
	}
	if len(ingress.ParentSpanId) != 0 {
		t.Errorf("ingress span has a parent %x, the request had no traceparent", ingress.ParentSpanId)
	}
	if rc.apiKey != "k" {
		t.Errorf("export's x-api-key header %q, want the configured k", rc.apiKey)
	}
	if item.TraceID != trace {
		t.Errorf("tail item's trace id %q, want %s", item.TraceID, trace)
	}
	select {
	case got := <-delivered:
		if got != trace {
			t.Errorf("delivered event's trace id %q, want %s", got, trace)
		}
	case <-time.After(time.Minute):
		t.Fatal("no delivery to the webhook")
	}
	waitFor(t, "the dead-letter log record with the trace id", func() bool {
		for _, l := range bytes.Split([]byte(logs.String()), []byte("\n")) {
			if bytes.Contains(l, []byte("dead-lettered")) && bytes.Contains(l, []byte(`"trace_id":"`+trace+`"`)) {
				return true
			}
		}
		return false
	})
}

// TestTelemetryFollowsTheRequestsTrace: a request with a W3C traceparent
// header makes the ingress span its child.
func TestTelemetryFollowsTheRequestsTrace(t *testing.T) {
	rc := newOTLPReceiver(t)
	cfg := hub.Config{DataDir: t.TempDir(), Telemetry: hub.TelemetryConfig{OTLP: &hub.OTLPConfig{Endpoint: rc.srv.URL + "/v1/traces"}}}
	s := start(t, cfg)
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if r := postEvent(t, s.URL(), "t-2", "orders.created", "traceparent", parent); r.StatusCode != http.StatusNoContent {
		t.Fatalf("POST: %d", r.StatusCode)
	}
	var ingress *tracepb.Span
	eventkittest.WaitFor(t, time.Minute, "the ingress span exported", func() bool {
		ingress = rc.span("POST /events", tracepb.Span_SPAN_KIND_SERVER)
		return ingress != nil
	})
	if hex.EncodeToString(ingress.TraceId) != "0af7651916cd43dd8448eb211c80319c" || hex.EncodeToString(ingress.ParentSpanId) != "b7ad6b7169203331" {
		t.Fatalf("ingress span %x/%x, want a child of %s", ingress.TraceId, ingress.ParentSpanId, parent)
	}
}

func TestTelemetryConfig(t *testing.T) {
	c, err := hub.ParseConfig([]byte("telemetry:\n  otlp:\n    endpoint: https://collector:4317\n    protocol: grpc\n    headers: {authorization: env:OTLP_AUTH}\n    sample_ratio: 0.25\n    service_name: edge\n"))
	if o := c.Telemetry.OTLP; err != nil || o == nil || o.Endpoint != "https://collector:4317" || o.Protocol != "grpc" ||
		o.Headers["authorization"] != "env:OTLP_AUTH" || *o.SampleRatio != 0.25 || o.ServiceName != "edge" {
		t.Fatalf("telemetry from YAML: %+v, %v", c.Telemetry.OTLP, err)
	}
	bad := 1.5
	for _, o := range []hub.OTLPConfig{
		{Endpoint: "collector:4318"},
		{Endpoint: "ftp://collector"},
		{Endpoint: "http://collector:4318", Protocol: "thrift"},
		{Endpoint: "http://collector:4318", SampleRatio: &bad},
	} {
		cfg := hub.Config{Telemetry: hub.TelemetryConfig{OTLP: &o}}
		cfg.Defaults()
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	for _, o := range []hub.OTLPConfig{{Endpoint: "http://collector:4318"}, {Endpoint: "https://collector:4317", Protocol: "grpc"}} {
		cfg := hub.Config{Telemetry: hub.TelemetryConfig{OTLP: &o}}
		cfg.Defaults()
		if err := cfg.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
