// Package prom is eventkit's Prometheus middleware: Metrics counts each
// handled message by topic, handler and final outcome, times it, and keeps
// the in-flight, retry, dead-letter and circuit-breaker gauges. It reads
// the outcome from the per-message middleware.Report that Retry,
// DeadLetter and Dedup fill in. It is a package of its own so that only the
// programs that export metrics link the Prometheus client.
package prom

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/promreg"
	"github.com/eventkit/eventkit/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// Option configures New.
type Option func(*config)

type config struct {
	reg       prometheus.Registerer
	namespace string
	buckets   []float64
}

// WithRegisterer registers the metrics with reg (default
// prometheus.DefaultRegisterer). Metrics already registered there by
// another Metrics of the same namespace are shared.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(c *config) { c.reg = reg }
}

// WithNamespace sets the prefix of the metric names (default "eventkit").
func WithNamespace(ns string) Option { return func(c *config) { c.namespace = ns } }

// WithClassicBuckets sets the classic buckets the duration histogram keeps
// besides its native ones, for scrapers without native histograms (default
// prometheus.DefBuckets; an empty slice keeps the default).
func WithClassicBuckets(b []float64) Option {
	return func(c *config) { c.buckets = b }
}

// Metrics holds eventkit's Prometheus metrics. Its Middleware measures the
// handling of each message; a breaker.Middleware reports its state into it
// with breaker.Metrics (SetBreakerState). The metrics, with the default namespace:
//
//	eventkit_handled_total{topic,handler,outcome}       counter; outcome is ok, retried, dead-lettered or dropped
//	eventkit_handling_duration_seconds{topic,handler}   histogram, native (exponential) buckets and classic ones
//	eventkit_in_flight{handler}                         gauge of messages being handled
//	eventkit_retries_total{topic,handler}               counter of retries: in place, and nacks for redelivery
//	eventkit_dead_letters_total{topic,handler}          counter of dead-lettered events
//	eventkit_breaker_state{breaker}                     gauge: 0 closed, 1 half-open, 2 open
//
// handler is the route's name (eventkit.RouteFromContext), "" outside a
// Router.
type Metrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	retries  *prometheus.CounterVec
	dlq      *prometheus.CounterVec
	breaker  *prometheus.GaugeVec

	series sync.Map // seriesKey -> *series
}

type seriesKey struct{ topic, handler string }

// series caches the children of one topic and handler, so that the hot
// path does no label hashing.
type series struct {
	key      seriesKey
	outcomes [4]prometheus.Counter // ok, retried, dead-lettered, dropped
	duration prometheus.Observer
	inFlight prometheus.Gauge
	retries  prometheus.Counter
	dlq      prometheus.Counter
}

var outcomeIndex = map[middleware.Outcome]int{middleware.OutcomeOK: 0, middleware.OutcomeRetried: 1, middleware.OutcomeDeadLettered: 2, middleware.OutcomeDropped: 3}

// New creates and registers the metrics.
func New(opts ...Option) (*Metrics, error) {
	c := config{reg: prometheus.DefaultRegisterer, namespace: "eventkit"}
	for _, o := range opts {
		o(&c)
	}
	if len(c.buckets) == 0 {
		c.buckets = prometheus.DefBuckets
	}
	m := &Metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: c.namespace, Name: "handled_total",
			Help: "Messages handled, by topic, handler and outcome (ok, retried, dead-lettered, dropped).",
		}, []string{"topic", "handler", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: c.namespace, Name: "handling_duration_seconds",
			Help:                            "Time to handle a message, through the middleware inside Metrics.",
			Buckets:                         c.buckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"topic", "handler"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: c.namespace, Name: "in_flight",
			Help: "Messages being handled.",
		}, []string{"handler"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: c.namespace, Name: "retries_total",
			Help: "Retries: attempts repeated in place, and messages nacked for redelivery.",
		}, []string{"topic", "handler"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: c.namespace, Name: "dead_letters_total",
			Help: "Messages published to their dead-letter topic.",
		}, []string{"topic", "handler"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: c.namespace, Name: "breaker_state",
			Help: "State of each circuit breaker: 0 closed, 1 half-open, 2 open.",
		}, []string{"breaker"}),
	}
	var err error
	m.handled, err = register(c.reg, m.handled)
	if err == nil {
		m.duration, err = register(c.reg, m.duration)
	}
	if err == nil {
		m.inFlight, err = register(c.reg, m.inFlight)
	}
	if err == nil {
		m.retries, err = register(c.reg, m.retries)
	}
	if err == nil {
		m.dlq, err = register(c.reg, m.dlq)
	}
	if err == nil {
		m.breaker, err = register(c.reg, m.breaker)
	}
	if err != nil {
		return nil, fmt.Errorf("prom: register metrics: %w", err)
	}
	return m, nil
}

// register registers c, or returns the collector of the same description
// already registered.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	return promreg.Register(reg, c)
}

func (m *Metrics) seriesFor(topic, handler string) *series {
	k := seriesKey{topic, handler}
	if s, ok := m.series.Load(k); ok {
		return s.(*series)
	}
	s := &series{
		key:      k,
		duration: m.duration.WithLabelValues(topic, handler),
		inFlight: m.inFlight.WithLabelValues(handler),
		retries:  m.retries.WithLabelValues(topic, handler),
		dlq:      m.dlq.WithLabelValues(topic, handler),
	}
	for o, i := range outcomeIndex {
		s.outcomes[i] = m.handled.WithLabelValues(topic, handler, string(o))
	}
	v, _ := m.series.LoadOrStore(k, s)
	return v.(*series)
}

// Middleware returns the middleware that measures each message. Put it
// outside DeadLetter and Retry so that it sees their outcome (recorded in
// the message's middleware.Report).
func (m *Metrics) Middleware() eventkit.Middleware {
	return func(next eventkit.Handler) eventkit.Handler {
		// The series of the last topic seen by this route: no map lookup
		// while the topic stays the same.
		var last atomic.Pointer[series]
		return eventkit.HandlerFunc(func(ctx context.Context, msg *eventkit.Message) error {
			handler := ""
			if ri, ok := eventkit.RouteFromContext(ctx); ok {
				handler = ri.Name
			}
			s := last.Load()
			if s == nil || s.key.topic != msg.Topic || s.key.handler != handler {
				s = m.seriesFor(msg.Topic, handler)
				last.Store(s)
			}
			ctx, rep := middleware.EnsureReport(ctx) // the one tracing made outside, if any
			if !rep.MarkMeasured() {                 // another Metrics outside counts that one
				ctx, rep = middleware.NewReportContext(ctx)
				rep.MarkMeasured()
			}
			s.inFlight.Inc()
			start := monotonic()
			err := next.Handle(ctx, msg)
			s.duration.Observe((monotonic() - start).Seconds())
			s.inFlight.Dec()
			out := rep.Final(err)
			retries := rep.Retries
			if out == middleware.OutcomeRetried {
				retries++
			}
			if retries > 0 {
				s.retries.Add(float64(retries))
			}
			if rep.DeadLettered {
				s.dlq.Inc()
			}
			s.outcomes[outcomeIndex[out]].Inc() // last: once it shows, the rest has been counted
			return err
		})
	}
}

// clockBase is the origin of monotonic.
var clockBase = time.Now()

// monotonic reads the monotonic clock only (time.Now also reads the wall
// clock, which a duration does not need).
func monotonic() time.Duration { return time.Since(clockBase) }

// SetBreakerState sets the gauge eventkit_breaker_state of the breaker
// name: 0 closed, 1 half-open, 2 open. A breaker.Middleware given
// breaker.Metrics(m) calls it at creation and on every change of state. It
// is a no-op on a nil Metrics.
func (m *Metrics) SetBreakerState(name string, state int) {
	if m == nil {
		return
	}
	m.breaker.WithLabelValues(name).Set(float64(state))
}
