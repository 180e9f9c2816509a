package sagaprom_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/saga"
	"github.com/eventkit/eventkit/saga/sagaprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func message(id, typ string) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("test")
	e.SetType(typ)
	e.SetSubject("k")
	return e
}

// A saga whose second step fails reports one ok step, one failed step, one
// failure, one compensation, and no active instance once compensated.
func TestMetricsOfASaga(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := sagaprom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := sagaprom.New(reg); err != nil || again == nil {
		t.Fatalf("second New on one registry: %v", err)
	}
	s, _ := saga.New[struct{}]("order", memory.NewSagaStore(), saga.CorrelateBySubject(), saga.WithMetrics(m))
	_ = s.On("a", saga.Step[struct{}]{Name: "reserve", Starts: true,
		Do:         func(context.Context, *saga.Context[struct{}], event.Event) error { return nil },
		Compensate: func(context.Context, *saga.Context[struct{}]) error { return nil }})
	_ = s.On("b", saga.Step[struct{}]{Name: "charge",
		Do: func(context.Context, *saga.Context[struct{}], event.Event) error { return errors.New("declined") }})
	for _, e := range []event.Event{message("1", "a"), message("2", "b")} {
		if err := s.HandleEvent(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if n := testutil.CollectAndCount(reg, "eventkit_saga_step_duration_seconds"); n != 2 {
		t.Fatalf("%d step duration series; want 2 (reserve ok, charge error)", n)
	}
	want := `
# HELP eventkit_saga_active_instances Saga instances this process saw start, minus those it saw end.
# TYPE eventkit_saga_active_instances gauge
eventkit_saga_active_instances{saga="order"} 0
# HELP eventkit_saga_compensations_total Compensations of saga steps committed.
# TYPE eventkit_saga_compensations_total counter
eventkit_saga_compensations_total{saga="order",step="reserve"} 1
# HELP eventkit_saga_failures_total Failed saga steps that started a compensation.
# TYPE eventkit_saga_failures_total counter
eventkit_saga_failures_total{saga="order",step="charge"} 1
`
	if err := testutil.CollectAndCompare(reg, strings.NewReader(want), "eventkit_saga_active_instances",
		"eventkit_saga_compensations_total", "eventkit_saga_failures_total", "eventkit_saga_timeouts_total"); err != nil {
		t.Fatal(err)
	}
}
