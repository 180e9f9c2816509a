package prom_test

import (
	"context"
	"testing"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/middleware/internal/mwtest"
	"github.com/eventkit/eventkit/middleware/prom"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsDurationInFlightAndNativeHistogram(t *testing.T) {
	h := mwtest.NewHarness(t)
	reg := prometheus.NewRegistry()
	metrics, err := prom.New(prom.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	inFlight := make(chan float64, 1)
	h.Router.Use(metrics.Middleware())
	if err := h.Router.HandleFunc(h.Topic("orders.>"), func(ctx context.Context, m *eventkit.Message) error {
		if m.Event.ID() == "probe" {
			mwtest.Send(ctx, inFlight, mwtest.MetricValue(t, reg, "eventkit_in_flight", map[string]string{"handler": "orders"}))
		}
		return nil
	}, eventkit.RouteName("orders")); err != nil {
		t.Fatal(err)
	}
	h.Start()
	h.Publish(h.Topic("orders.eu"), mwtest.NewEvent("probe"), mwtest.NewEvent("2"), mwtest.NewEvent("3"))
	if v := mwtest.Wait(t, inFlight, "the in-flight probe"); v != 1 {
		t.Fatalf("in_flight during handling = %v, want 1", v)
	}
	labels := map[string]string{"topic": h.Topic("orders.eu"), "handler": "orders"}
	mwtest.Eventually(t, "three ok", func() bool {
		return mwtest.MetricValue(t, reg, "eventkit_handled_total", map[string]string{"topic": h.Topic("orders.eu"), "handler": "orders", "outcome": "ok"}) == 3
	})
	if v := mwtest.MetricValue(t, reg, "eventkit_in_flight", map[string]string{"handler": "orders"}); v != 0 {
		t.Errorf("in_flight after handling = %v, want 0", v)
	}
	m := mwtest.FindMetric(t, reg, "eventkit_handling_duration_seconds", labels)
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
	again, err := prom.New(prom.WithRegisterer(reg))
	if err != nil {
		t.Fatalf("second prom.New on one registry: %v", err)
	}
	_ = again.Middleware()(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { return nil })).Handle(
		context.Background(), eventkit.NewMessage(h.Topic("orders.eu"), mwtest.NewEvent("x"), 1, nil, nil))
	if v := mwtest.MetricValue(t, reg, "eventkit_handled_total", map[string]string{"topic": h.Topic("orders.eu"), "handler": "", "outcome": "ok"}); v != 1 {
		t.Errorf("handled through the second Metrics (no route) = %v, want 1", v)
	}
}
