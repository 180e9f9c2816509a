// Package sagaprom reports the metrics of sagas to Prometheus: it
// implements saga.Metrics. It is a package of its own so that package saga
// links no metrics library.
//
// The metrics, labelled by saga (and step where it applies):
//
//	eventkit_saga_step_duration_seconds{saga,step,result}  histogram; result is "ok" or "error"
//	eventkit_saga_compensations_total{saga,step}           counter
//	eventkit_saga_failures_total{saga,step}                counter: failed steps that started a compensation
//	eventkit_saga_timeouts_total{saga}                     counter: deadlines that started a compensation
//	eventkit_saga_active_instances{saga}                   gauge: instances this process saw start, minus those it saw end
package sagaprom

import (
	"fmt"
	"time"

	"github.com/eventkit/eventkit/internal/promreg"
	"github.com/eventkit/eventkit/saga"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is a saga.Metrics on Prometheus collectors. One Metrics serves
// any number of sagas (they are told apart by the saga label).
type Metrics struct {
	steps         *prometheus.HistogramVec
	compensations *prometheus.CounterVec
	failures      *prometheus.CounterVec
	timeouts      *prometheus.CounterVec
	active        *prometheus.GaugeVec
}

var _ saga.Metrics = (*Metrics)(nil)

// New returns the metrics, registered with reg. If reg already holds them
// (New called again on one registry), the registered collectors are used.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventkit_saga_step_duration_seconds", Help: "Duration of saga steps, by result (ok or error).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"saga", "step", "result"}),
		compensations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventkit_saga_compensations_total", Help: "Compensations of saga steps committed.",
		}, []string{"saga", "step"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventkit_saga_failures_total", Help: "Failed saga steps that started a compensation.",
		}, []string{"saga", "step"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventkit_saga_timeouts_total", Help: "Saga deadlines that started a compensation.",
		}, []string{"saga"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventkit_saga_active_instances", Help: "Saga instances this process saw start, minus those it saw end.",
		}, []string{"saga"}),
	}
	var err error
	if m.steps, err = register(reg, m.steps); err != nil {
		return nil, err
	}
	if m.compensations, err = register(reg, m.compensations); err != nil {
		return nil, err
	}
	if m.failures, err = register(reg, m.failures); err != nil {
		return nil, err
	}
	if m.timeouts, err = register(reg, m.timeouts); err != nil {
		return nil, err
	}
	if m.active, err = register(reg, m.active); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c with reg, or returns the collector reg already
// holds in its place.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	c, err := promreg.Register(reg, c)
	if err != nil {
		return c, fmt.Errorf("sagaprom: register: %w", err)
	}
	return c, nil
}

// StepDone implements saga.Metrics.
func (m *Metrics) StepDone(name, step string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.steps.WithLabelValues(name, step, result).Observe(d.Seconds())
}

// Compensated implements saga.Metrics.
func (m *Metrics) Compensated(name, step string) { m.compensations.WithLabelValues(name, step).Inc() }

// Failed implements saga.Metrics.
func (m *Metrics) Failed(name, step string) { m.failures.WithLabelValues(name, step).Inc() }

// TimedOut implements saga.Metrics.
func (m *Metrics) TimedOut(name string) { m.timeouts.WithLabelValues(name).Inc() }

// Active implements saga.Metrics.
func (m *Metrics) Active(name string, delta int) { m.active.WithLabelValues(name).Add(float64(delta)) }
