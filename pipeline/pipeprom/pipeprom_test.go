package pipeprom_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/pipeline"
	"github.com/eventkit/eventkit/pipeline/pipeprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A stuck stage shows as a full queue and senders waiting.
func TestCollectorShowsBackPressure(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	release := make(chan struct{})
	p := pipeline.New(pipeline.WithQueue(2), pipeline.WithMaxInFlight(16))
	p.From(pipeline.Source{Subscriber: bus, Pattern: "in"}).
		Then(pipeline.Sink("stuck", func(context.Context, event.Event) error { <-release; return nil }))
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	defer close(release)
	reg := prometheus.NewRegistry()
	reg.MustRegister(pipeprom.NewCollector("orders", p))
	for i := range 5 {
		if err := bus.Publish(context.Background(), "in", eventkittest.NewEvent(string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	// One event in the sink, and a sender waiting on its full queue.
	for testutil.ToFloat64(gaugeOf(t, reg, "eventkit_pipeline_senders_waiting", "stuck")) < 1 ||
		testutil.ToFloat64(gaugeOf(t, reg, "eventkit_pipeline_events_in_total", "stuck")) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no sender waiting on the stuck stage")
		}
		time.Sleep(time.Millisecond)
	}
	if v := testutil.ToFloat64(gaugeOf(t, reg, "eventkit_pipeline_queue_depth", "stuck")); v != 2 {
		t.Fatalf("queue depth %v; want 2", v)
	}
	if v := testutil.ToFloat64(gaugeOf(t, reg, "eventkit_pipeline_queue_depth", "source")); v != 4 {
		t.Fatalf("source in flight %v; want 4 (1 in the sink, 2 queued, 1 waiting)", v)
	}
}

// gaugeOf returns a collector of the one metric named name for stage.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name, stage string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" && l.GetValue() == stage {
					return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 {
						if m.GetGauge() != nil {
							return m.GetGauge().GetValue()
						}
						return m.GetCounter().GetValue()
					})
				}
			}
		}
	}
	t.Fatalf("no %s for stage %s", name, stage)
	return nil
}
