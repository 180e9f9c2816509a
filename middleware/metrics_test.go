package middleware_test

import (
	"context"
	"testing"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsDurationInFlightAndNativeHistogram(t *testing.T) {
	h := newHarness(t)
	reg := prometheus.NewRegistry()
	metrics, err := middleware.NewMetrics(middleware.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	inFlight := make(chan float64, 1)
	h.router.Use(metrics.Middleware())
	if err := h.router.HandleFunc(h.topic("orders.>"), func(ctx context.Context, m *eventkit.Message) error {
		if m.Event.ID() == "probe" {
			send(ctx, inFlight, metricValue(t, reg, "eventkit_in_flight", map[string]string{"handler": "orders"}))
		}
		return nil
	}, eventkit.RouteName("orders")); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.publish(h.topic("orders.eu"), newEvent("probe"), newEvent("2"), newEvent("3"))
	if v := wait(t, inFlight, "the in-flight probe"); v != 1 {
		t.Fatalf("in_flight during handling = %v, want 1", v)
	}
	labels := map[string]string{"topic": h.topic("orders.eu"), "handler": "orders"}
	eventually(t, "three ok", func() bool {
		return metricValue(t, reg, "eventkit_handled_total", map[string]string{"topic": h.topic("orders.eu"), "handler": "orders", "outcome": "ok"}) == 3
	})
	if v := metricValue(t, reg, "eventkit_in_flight", map[string]string{"handler": "orders"}); v != 0 {
		t.Errorf("in_flight after handling = %v, want 0", v)
	}
	m := findMetric(t, reg, "eventkit_handling_duration_seconds", labels)
	if m == nil || m.Histogram == nil {
		t.Fatal("no duration histogram for the topic and handler")
	}
	hist := m.Histogram
	if hist.GetSampleCount() != 3 {
		t.Errorf("duration sample count %d, want 3", hist.GetSampleCount())
	}
	if hist.Schema == nil || len(hist.PositiveSpan)+int(hist.GetZeroCount()) == 0 {
		t.Errorf("duration histogram has no native buckets (schema %v, spans %v, zero count %d)", hist.Schema, hist.PositiveSpan, hist.GetZeroCount())
	}
	if len(hist.Bucket) == 0 {
		t.Error("duration histogram has no classic buckets")
	}

	// A second Metrics on the same registry shares the collectors.
	again, err := middleware.NewMetrics(middleware.WithRegisterer(reg))
	if err != nil {
		t.Fatalf("second NewMetrics on one registry: %v", err)
	}
	_ = again.Middleware()(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { return nil })).Handle(
		context.Background(), eventkit.NewMessage(h.topic("orders.eu"), newEvent("x"), 1, nil, nil))
	if v := metricValue(t, reg, "eventkit_handled_total", map[string]string{"topic": h.topic("orders.eu"), "handler": "", "outcome": "ok"}); v != 1 {
		t.Errorf("handled through the second Metrics (no route) = %v, want 1", v)
	}
}

func TestReportOutcome(t *testing.T) {
	var nilReport *middleware.Report
	nilReport.SetOutcome(middleware.OutcomeDropped) // no-op, no panic
	nilReport.AddRetry()
	if o := nilReport.Final(nil); o != middleware.OutcomeOK {
		t.Fatalf("nil report Final(nil) = %q", o)
	}
	if middleware.ReportFromContext(context.Background()) != nil {
		t.Fatal("report in an empty context")
	}
	ctx, r := middleware.NewReportContext(context.Background())
	if middleware.ReportFromContext(ctx) != r {
		t.Fatal("ReportFromContext did not return the report")
	}
	r.SetOutcome(middleware.OutcomeDeadLettered)
	if r.Final(nil) != middleware.OutcomeDeadLettered || r.Final(errTransient) != middleware.OutcomeRetried {
		t.Fatalf("Final: %q, %q", r.Final(nil), r.Final(errTransient))
	}
}
