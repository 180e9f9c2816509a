package middleware_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/middleware"
)

var errTransient = errors.New("transient failure")

// failN returns a handler that fails its first n calls, then succeeds,
// recording the attempt of each call.
type failN struct {
	n        int
	mu       sync.Mutex
	attempts []int
	times    []time.Time
	done     chan struct{}
}

func newFailN(n int) *failN { return &failN{n: n, done: make(chan struct{}, 16)} }

func (f *failN) Handle(_ context.Context, m *eventkit.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts = append(f.attempts, m.Attempt)
	f.times = append(f.times, time.Now())
	if len(f.attempts) <= f.n {
		return errTransient
	}
	select {
	case f.done <- struct{}{}:
	default:
	}
	return nil
}

func (f *failN) calls() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.attempts...)
}

func TestRetryInPlaceFailTwiceThenSucceed(t *testing.T) {
	h := newHarness(t)
	metrics, reg := newMetrics(t)
	dlq := h.Subscribe(h.Topic("orders.dlq"))
	f := newFailN(2)
	h.Router.Use(metrics.Middleware(),
		middleware.DeadLetter(h.Bus, middleware.DeadLetterLogger(quietLogger)),
		middleware.Retry(middleware.Backoff(time.Millisecond, 5*time.Millisecond, 2), middleware.RetryLogger(quietLogger)))
	if err := h.Router.Handle(h.Topic("orders"), f, eventkit.RouteName("orders")); err != nil {
		t.Fatal(err)
	}
	h.Start()
	h.Publish(h.Topic("orders"), newEvent("o-1"))
	wait(t, f.done, "success")
	labels := map[string]string{"topic": h.Topic("orders"), "handler": "orders"}
	eventually(t, "the ok outcome", func() bool {
		return metricValue(t, reg, "eventkit_handled_total", map[string]string{"handler": "orders", "outcome": "ok"}) == 1
	})
	if got := f.calls(); len(got) != 3 || got[0] != 1 || got[1] != 1 || got[2] != 1 {
		t.Fatalf("handler calls by delivery attempt = %v; want [1 1 1] (three calls in one delivery)", got)
	}
	if r := metricValue(t, reg, "eventkit_retries_total", labels); r != 2 {
		t.Errorf("retries_total = %v, want 2", r)
	}
	for _, o := range []string{"retried", "dead-lettered", "dropped"} {
		if v := metricValue(t, reg, "eventkit_handled_total", map[string]string{"outcome": o}); v != 0 {
			t.Errorf("handled_total{outcome=%q} = %v, want 0", o, v)
		}
	}
	quiet(t, dlq, 50*time.Millisecond)
}

func TestRetryByNackFailTwiceThenSucceed(t *testing.T) {
	h := newHarness(t)
	metrics, reg := newMetrics(t)
	f := newFailN(2)
	const initial = 30 * time.Millisecond
	h.Router.Use(metrics.Middleware(),
		middleware.DeadLetter(h.Bus, middleware.DeadLetterLogger(quietLogger)),
		middleware.Retry(middleware.RetryByNack(), middleware.Jitter(0), middleware.Backoff(initial, time.Second, 2)))
	if err := h.Router.Handle(h.Topic("orders"), f, eventkit.RouteName("orders")); err != nil {
		t.Fatal(err)
	}
	h.Start()
	h.Publish(h.Topic("orders"), newEvent("o-1"))
	wait(t, f.done, "success")
	if got := f.calls(); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("handler calls by delivery attempt = %v; want [1 2 3] (one call per delivery)", got)
	}
	f.mu.Lock()
	gap1, gap2 := f.times[1].Sub(f.times[0]), f.times[2].Sub(f.times[1])
	f.mu.Unlock()
	if gap1 < initial || gap2 < 2*initial {
		t.Errorf("redelivery gaps %v, %v; want at least %v and %v (nack with backoff delay)", gap1, gap2, initial, 2*initial)
	}
	eventually(t, "the ok outcome", func() bool {
		return metricValue(t, reg, "eventkit_handled_total", map[string]string{"outcome": "ok"}) == 1
	})
	if v := metricValue(t, reg, "eventkit_handled_total", map[string]string{"outcome": "retried"}); v != 2 {
		t.Errorf("handled_total{outcome=retried} = %v, want 2", v)
	}
	if v := metricValue(t, reg, "eventkit_retries_total", nil); v != 2 {
		t.Errorf("retries_total = %v, want 2", v)
	}
}

func TestRetryExhaustedGoesToDeadLetter(t *testing.T) {
	for _, byNack := range []bool{false, true} {
		name := "InPlace"
		opts := []middleware.RetryOption{middleware.MaxAttempts(3), middleware.Backoff(time.Millisecond, time.Millisecond, 1)}
		if byNack {
			name = "ByNack"
			opts = append(opts, middleware.RetryByNack())
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			dlq := h.Subscribe(h.Topic("orders.dlq"))
			var calls atomic.Int32
			h.Router.Use(middleware.DeadLetter(h.Bus, middleware.DeadLetterLogger(quietLogger)), middleware.Retry(opts...))
			if err := h.Router.HandleFunc(h.Topic("orders"), func(context.Context, *eventkit.Message) error {
				calls.Add(1)
				return errTransient
			}); err != nil {
				t.Fatal(err)
			}
			h.Start()
			h.Publish(h.Topic("orders"), newEvent("o-1"))
			m := receive(t, dlq)
			if n := calls.Load(); n != 3 {
				t.Errorf("handler called %d times, want 3", n)
			}
			if v := m.Event.Extensions()[middleware.ExtDLQAttempts]; v != int32(3) {
				t.Errorf("dlqattempts = %v (%T), want 3", v, v)
			}
			quiet(t, dlq, 50*time.Millisecond)
			if n := calls.Load(); n != 3 {
				t.Errorf("handler called %d times after dead letter, want 3 (original acked)", n)
			}
		})
	}
}

func TestRetryStopsOnContextEnd(t *testing.T) {
	mw := middleware.Retry(middleware.Backoff(time.Hour, time.Hour, 1), middleware.RetryLogger(quietLogger))
	ctx, cancel := context.WithCancel(context.Background())
	h := mw(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error {
		cancel()
		return errTransient
	}))
	err := h.Handle(ctx, eventkit.NewMessage("t", newEvent("1"), 1, nil, nil))
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errTransient) {
		t.Fatalf("err = %v; want the handler's error joined with context.Canceled", err)
	}
	if middleware.IsExhausted(err) || middleware.IsPermanent(err) {
		t.Fatalf("err = %v is exhausted or permanent; a shutdown must not dead-letter", err)
	}
}

// The test runs in a synctest bubble: its clock advances only when every
// goroutine waits, so that the handler's own run time (which a loaded
// machine stretches past the 10ms of slack) does not count.
func TestRetryMaxElapsed(t *testing.T) { synctest.Test(t, testRetryMaxElapsed) }

func testRetryMaxElapsed(t *testing.T) {
	var calls int
	mw := middleware.Retry(middleware.MaxAttempts(100), middleware.MaxElapsed(50*time.Millisecond),
		middleware.Backoff(20*time.Millisecond, 20*time.Millisecond, 1), middleware.Jitter(0), middleware.RetryLogger(quietLogger))
	h := mw(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { calls++; return errTransient }))
	err := h.Handle(context.Background(), eventkit.NewMessage("t", newEvent("1"), 1, nil, nil))
	var re *middleware.RetryError
	if !errors.As(err, &re) || !re.Exhausted {
		t.Fatalf("err = %v; want an exhausted *RetryError", err)
	}
	if calls != 3 || re.Attempts != 3 {
		t.Fatalf("calls = %d, Attempts = %d; want 3 (0, 20ms and 40ms fit in 50ms, 60ms does not)", calls, re.Attempts)
	}
}

func TestRetryPermanentIf(t *testing.T) {
	errDomain := errors.New("order already shipped")
	var calls int
	mw := middleware.Retry(middleware.PermanentIf(func(err error) bool { return errors.Is(err, errDomain) }),
		middleware.Backoff(time.Millisecond, time.Millisecond, 1))
	h := mw(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { calls++; return errDomain }))
	err := h.Handle(context.Background(), eventkit.NewMessage("t", newEvent("1"), 1, nil, nil))
	if calls != 1 {
		t.Fatalf("handler called %d times; want 1 (the predicate says permanent)", calls)
	}
	if !middleware.IsPermanent(err) || !errors.Is(err, errDomain) {
		t.Fatalf("err = %v; want a permanent error wrapping the handler's", err)
	}
}

func TestRetryHonoursHandlerRetryAfter(t *testing.T) {
	var calls int
	h := middleware.Retry(middleware.Backoff(time.Millisecond, time.Millisecond, 1))(
		eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error {
			calls++
			return eventkit.RetryAfter(errTransient, time.Minute)
		}))
	err := h.Handle(context.Background(), eventkit.NewMessage("t", newEvent("1"), 1, nil, nil))
	var ra *eventkit.RetryAfterError
	if calls != 1 || !errors.As(err, &ra) || ra.Delay != time.Minute {
		t.Fatalf("calls = %d, err = %v; want 1 call and the handler's RetryAfter passed up", calls, err)
	}
}
