// Package mwtest holds the test harness of the middleware subpackages
// (tracing, prom, breaker, schema): a memory bus with a Router, and helpers
// to wait, poll and read Prometheus metrics. Only tests import it.
package mwtest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/memory"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// QuietLogger discards everything.
var QuietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// ErrTransient is an error that Retry retries.
var ErrTransient = errors.New("transient failure")

// Harness is a memory bus and a Router running on it, both closed when the
// test ends.
type Harness struct {
	t      *testing.T
	Bus    *memory.Bus
	Router *eventkit.Router
	ns     string
	errc   chan error
}

// NewHarness returns a harness whose Router is not started yet (Start).
func NewHarness(t *testing.T) *Harness {
	t.Helper()
	bus := memory.New()
	h := &Harness{t: t, Bus: bus, ns: eventkittest.UniqueName("mw"),
		Router: eventkit.NewRouter(bus, eventkit.WithLogger(QuietLogger), eventkit.WithShutdownTimeout(5*time.Second)),
		errc:   make(chan error, 1)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Router.Shutdown(ctx); err != nil {
			t.Errorf("router shutdown: %v", err)
		}
		_ = bus.Close()
	})
	return h
}

// Topic returns s in the harness's own namespace.
func (h *Harness) Topic(s string) string { return h.ns + "." + s }

// Start runs the Router and waits until it is running.
func (h *Harness) Start() {
	h.t.Helper()
	go func() { h.errc <- h.Router.Run(context.Background()) }()
	select {
	case <-h.Router.Running():
	case err := <-h.errc:
		h.t.Fatalf("router: %v", err)
	case <-time.After(10 * time.Second):
		h.t.Fatal("router did not start")
	}
}

// Publish publishes events on the bus, failing the test on an error.
func (h *Harness) Publish(topic string, events ...event.Event) {
	h.t.Helper()
	if err := h.Bus.Publish(context.Background(), topic, events...); err != nil {
		h.t.Fatalf("publish: %v", err)
	}
}

// Subscribe returns a subscription that the test reads directly (a DLQ).
func (h *Harness) Subscribe(pattern string) eventkit.Subscription {
	h.t.Helper()
	s, err := h.Bus.Subscribe(context.Background(), pattern)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = s.Close() })
	return s
}

// ExampleEvent returns the event of the examples: id and type as given,
// source "urn:example:shop", and data the JSON document data.
func ExampleEvent(id, typ, data string) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("urn:example:shop")
	e.SetType(typ)
	_ = e.SetData("application/json", []byte(data))
	return e
}

// NewEvent returns a valid event with the given id.
func NewEvent(id string) event.Event { return eventkittest.NewEvent(id) }

// Wait waits up to 10 s for a value on c.
func Wait[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// Send sends v on c unless ctx ends first, so that a handler never blocks
// the Router's shutdown when a test has stopped reading.
func Send[T any](ctx context.Context, c chan<- T, v T) {
	select {
	case c <- v:
	case <-ctx.Done():
	}
}

// Eventually polls cond until it holds or 10 s pass.
func Eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, what, cond)
}

// PublisherFunc is a Publisher made of a function; Close does nothing.
type PublisherFunc func(ctx context.Context, topic string, events ...event.Event) error

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, topic string, events ...event.Event) error {
	return f(ctx, topic, events...)
}

// Close does nothing.
func (f PublisherFunc) Close() error { return nil }

// MetricValue returns the value of the counter or gauge name with the given
// labels in reg (0 if absent).
func MetricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	m := FindMetric(t, reg, name, labels)
	switch {
	case m == nil:
		return 0
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("metric %s is not a counter or gauge", name)
	return 0
}

// FindMetric returns the metric name whose labels include labels, or nil.
func FindMetric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.Metric {
			got := map[string]string{}
			for _, lp := range m.Label {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

// Receive returns the next message of s, acked, failing the test after
// 10 s.
func Receive(t *testing.T, s eventkit.Subscription) *eventkit.Message {
	t.Helper()
	select {
	case m := <-s.Messages():
		_ = m.Ack()
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	return nil
}
