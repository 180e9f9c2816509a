package esprom_test

import (
	"testing"

	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/es/esprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLagGaugeRegistersOnceAndIsAnESGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	g, err := esprom.LagGauge(reg, "totals")
	if err != nil {
		t.Fatal(err)
	}
	var _ es.Gauge = g
	g.Set(3)
	again, err := esprom.LagGauge(reg, "totals")
	if err != nil {
		t.Fatalf("second LagGauge of one projection: %v", err)
	}
	if v := testutil.ToFloat64(again); v != 3 {
		t.Fatalf("second LagGauge reads %v; want the first gauge's 3", v)
	}
	other, err := esprom.LagGauge(reg, "balances")
	if err != nil {
		t.Fatal(err)
	}
	other.Set(1)
	if n := testutil.CollectAndCount(reg, "eventkit_es_projection_lag"); n != 2 {
		t.Fatalf("%d series of eventkit_es_projection_lag; want 2 (one per projection)", n)
	}
}
