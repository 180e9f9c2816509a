package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/middleware"
	"github.com/eventkit/eventkit/middleware/breaker"
	"github.com/eventkit/eventkit/middleware/internal/mwtest"
	"github.com/eventkit/eventkit/middleware/prom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

var errPoison = errors.New("poison: cannot parse order")

func TestCircuitBreakerOpensAndRefusesWithDelay(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics, err := prom.New(prom.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	mw := breaker.Middleware(breaker.Name("payments"), breaker.Failures(2),
		breaker.OpenPeriod(time.Hour), breaker.RetryDelay(3*time.Second), breaker.Metrics(metrics))
	h := mw(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { calls++; return mwtest.ErrTransient }))
	msg := func() *eventkit.Message { return eventkit.NewMessage("t", mwtest.NewEvent("1"), 1, nil, nil) }
	state := func() float64 {
		return mwtest.MetricValue(t, reg, "eventkit_breaker_state", map[string]string{"breaker": "payments"})
	}
	if s := state(); s != 0 {
		t.Fatalf("breaker_state = %v before any failure, want 0 (closed)", s)
	}
	for i := 0; i < 2; i++ {
		if err := h.Handle(context.Background(), msg()); !errors.Is(err, mwtest.ErrTransient) {
			t.Fatalf("call %d: err = %v, want the handler's", i, err)
		}
	}
	err = h.Handle(context.Background(), msg())
	var ra *eventkit.RetryAfterError
	if !errors.As(err, &ra) || ra.Delay != 3*time.Second || !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("err = %v; want RetryAfter(3s) wrapping ErrOpen", err)
	}
	if calls != 2 {
		t.Fatalf("handler called %d times; want 2 (not called while open)", calls)
	}
	if middleware.IsPermanent(err) {
		t.Fatal("open-breaker error is permanent: it would be dead-lettered instead of retried")
	}
	if s := state(); s != 2 {
		t.Fatalf("breaker_state = %v, want 2 (open)", s)
	}
}

func TestCircuitBreakerIgnoresPermanentErrors(t *testing.T) {
	var calls int
	h := breaker.Middleware(breaker.Failures(1), breaker.OpenPeriod(time.Hour))(
		eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { calls++; return middleware.Permanent(errPoison) }))
	for i := 0; i < 5; i++ {
		if err := h.Handle(context.Background(), eventkit.NewMessage("t", mwtest.NewEvent("1"), 1, nil, nil)); !errors.Is(err, errPoison) {
			t.Fatalf("err = %v; want the poison error (a poison message must not open the breaker)", err)
		}
	}
	if calls != 5 {
		t.Fatalf("handler called %d times, want 5", calls)
	}
}

// TestCircuitBreakerEndToEndNackedNotDropped runs in a synctest bubble: the
// second failure opens the breaker and its redelivery comes 200ms later (the
// Router's backoff), inside the 300ms open period, whatever the machine's
// load (on real time a loaded machine delivered it after the period, and
// the breaker, half-open, let it through).
func TestCircuitBreakerEndToEndNackedNotDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mwtest.NewHarness(t)
		var mu sync.Mutex
		var transitions []string
		var attempts []int
		done := make(chan struct{})
		h.Router.Use(breaker.Middleware(breaker.Failures(2), breaker.OpenPeriod(300*time.Millisecond),
			breaker.RetryDelay(10*time.Millisecond),
			breaker.Settings(func(s *gobreaker.Settings) {
				s.OnStateChange = func(_ string, from, to gobreaker.State) {
					mu.Lock()
					transitions = append(transitions, from.String()+">"+to.String())
					mu.Unlock()
				}
			})))
		if err := h.Router.HandleFunc(h.Topic("pay"), func(_ context.Context, m *eventkit.Message) error {
			mu.Lock()
			defer mu.Unlock()
			attempts = append(attempts, m.Attempt)
			if len(attempts) <= 2 {
				return mwtest.ErrTransient
			}
			close(done)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		h.Start()
		h.Publish(h.Topic("pay"), mwtest.NewEvent("p-1"))
		mwtest.Wait(t, done, "the message handled after the breaker closed")
		// The breaker records the success, and closes, after the handler returns.
		mwtest.Eventually(t, "the breaker to close", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(transitions) >= 3
		})
		mu.Lock()
		defer mu.Unlock()
		if len(attempts) != 3 || attempts[0] != 1 || attempts[1] != 2 || attempts[2] < 4 {
			t.Fatalf("handler saw attempts %v; want [1 2 n>=4]: refused deliveries in between were nacked and redelivered", attempts)
		}
		want := []string{"closed>open", "open>half-open", "half-open>closed"}
		if len(transitions) != 3 || transitions[0] != want[0] || transitions[1] != want[1] || transitions[2] != want[2] {
			t.Fatalf("transitions %v, want %v", transitions, want)
		}
	})
}

// recordingReporter is a StateReporter that is not Prometheus.
type recordingReporter struct {
	mu     sync.Mutex
	states []string
}

func (r *recordingReporter) SetBreakerState(name string, state int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, fmt.Sprintf("%s=%d", name, state))
}

// Any StateReporter receives the states: closed at creation, then open,
// half-open and closed again, with the numbers of the gauge.
func TestStateReporterSeesEveryState(t *testing.T) {
	rep := &recordingReporter{}
	fail := true
	mw := breaker.Middleware(breaker.Name("db"), breaker.Failures(1), breaker.OpenPeriod(time.Millisecond), breaker.Metrics(rep))
	h := mw(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error {
		if fail {
			return mwtest.ErrTransient
		}
		return nil
	}))
	msg := eventkit.NewMessage("t", mwtest.NewEvent("1"), 1, nil, nil)
	_ = h.Handle(context.Background(), msg) // opens
	fail = false
	mwtest.Eventually(t, "the breaker to close after its open period", func() bool {
		return h.Handle(context.Background(), eventkit.NewMessage("t", mwtest.NewEvent("1"), 1, nil, nil)) == nil
	})
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if want := []string{"db=0", "db=2", "db=1", "db=0"}; !slices.Equal(rep.states, want) {
		t.Fatalf("states reported %v; want %v", rep.states, want)
	}
}

// A nil *prom.Metrics given as the reporter is a no-op, as before the move.
func TestNilPromMetricsReporter(t *testing.T) {
	var m *prom.Metrics
	h := breaker.Middleware(breaker.Metrics(m))(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { return nil }))
	if err := h.Handle(context.Background(), eventkit.NewMessage("t", mwtest.NewEvent("1"), 1, nil, nil)); err != nil {
		t.Fatal(err)
	}
}
