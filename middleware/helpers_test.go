package middleware_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/middleware/internal/mwtest"
	"github.com/eventkit/eventkit/middleware/prom"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quietLogger = mwtest.QuietLogger

// harness is a memory bus and a router running on it (mwtest's, shared
// with the middleware subpackages' tests).
type harness = mwtest.Harness

func newHarness(t *testing.T) *harness { return mwtest.NewHarness(t) }

// receive returns the next message of s, acked.
func receive(t *testing.T, s eventkit.Subscription) *eventkit.Message {
	t.Helper()
	return mwtest.Receive(t, s)
}

// newMetrics returns prom metrics on a registry of their own.
func newMetrics(t *testing.T) (*prom.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics, err := prom.New(prom.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	return metrics, reg
}

func quiet(t *testing.T, s eventkit.Subscription, d time.Duration) {
	t.Helper()
	select {
	case m := <-s.Messages():
		t.Fatalf("unexpected message %q on %q", m.Event.ID(), m.Topic)
	case <-time.After(d):
	}
}

func newEvent(id string) event.Event { return eventkittest.NewEvent(id) }

// wait waits for a signal on c.
func wait[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	return mwtest.Wait(t, c, what)
}

// flakyPublisher fails its first n publishes.
type flakyPublisher struct {
	eventkit.Publisher
	mu    sync.Mutex
	fails int
	calls int
}

var errPublish = errors.New("dlq broker down")

func (p *flakyPublisher) Publish(ctx context.Context, topic string, events ...event.Event) error {
	p.mu.Lock()
	p.calls++
	fail := p.calls <= p.fails
	p.mu.Unlock()
	if fail {
		return errPublish
	}
	return p.Publisher.Publish(ctx, topic, events...)
}

// recordingAcker records how a message was settled.
type recordingAcker struct {
	mu     sync.Mutex
	acks   int
	nacks  int
	delay  time.Duration
	reason error
}

func (a *recordingAcker) Ack(*eventkit.Message) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acks++
	return nil
}

func (a *recordingAcker) Nack(_ *eventkit.Message, reason error, d time.Duration) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nacks++
	a.delay, a.reason = d, reason
	return nil
}

// metricValue returns the value of the counter or gauge name with the given
// labels in reg (0 if absent).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return mwtest.MetricValue(t, reg, name, labels)
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	mwtest.Eventually(t, what, cond)
}

// send sends v on c unless ctx ends first, so that a handler never blocks
// the Router's shutdown when a test has stopped reading.
func send[T any](ctx context.Context, c chan<- T, v T) { mwtest.Send(ctx, c, v) }
