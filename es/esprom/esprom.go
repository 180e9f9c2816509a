// Package esprom exports an event-sourcing projection's lag to Prometheus.
// It is a package of its own so that package es links no metrics library.
package esprom

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// LagGauge returns the gauge eventkit_es_projection_lag{projection=name}
// (global log positions between the head of the event store and the
// projection), registered with reg, for es.WithLagGauge. If reg already
// holds it (a projector made again under the same name), that gauge is
// returned.
func LagGauge(reg prometheus.Registerer, name string) (prometheus.Gauge, error) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "eventkit_es_projection_lag",
		Help:        "Global log positions between the head of the event store and the projection's checkpoint.",
		ConstLabels: prometheus.Labels{"projection": name},
	})
	if err := reg.Register(g); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(prometheus.Gauge); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("esprom: register projection lag gauge: %w", err)
	}
	return g, nil
}
