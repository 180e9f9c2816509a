package middleware_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/middleware"
	"golang.org/x/time/rate"
)

func TestRecoverPanicBecomesErrorAndRouterKeepsRunning(t *testing.T) {
	h := newHarness(t)
	seen := make(chan error, 4)
	observe := func(next eventkit.Handler) eventkit.Handler {
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
			err := next.Handle(ctx, m)
			send(ctx, seen, err)
			return err
		})
	}
	handled := make(chan string, 4)
	h.Router.Use(middleware.DeadLetter(h.Bus, middleware.DeadLetterLogger(quietLogger)),
		middleware.Retry(middleware.MaxAttempts(1)), observe, middleware.Recover())
	if err := h.Router.HandleFunc(h.Topic("orders"), func(ctx context.Context, m *eventkit.Message) error {
		if m.Event.ID() == "boom" {
			panicInHandler()
		}
		send(ctx, handled, m.Event.ID())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	dlq := h.Subscribe(h.Topic("orders.dlq"))
	h.Start()
	h.Publish(h.Topic("orders"), newEvent("boom"), newEvent("fine"))
	err := wait(t, seen, "the panic's error")
	var pe *eventkit.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("middleware outside Recover saw %v (%T); want *eventkit.PanicError", err, err)
	}
	if pe.Value != "handler exploded" || !strings.Contains(string(pe.Stack), "panicInHandler") {
		t.Fatalf("PanicError value %v, stack without the panicking function:\n%s", pe.Value, pe.Stack)
	}
	if id := wait(t, handled, "the next event"); id != "fine" {
		t.Fatalf("handled %q, want fine", id)
	}
	if m := receive(t, dlq); m.Event.ID() != "boom" {
		t.Fatalf("dead letter %q, want boom", m.Event.ID())
	}
	select {
	case <-h.Router.Done():
		t.Fatal("router stopped after a panic")
	default:
	}
}

func panicInHandler() { panic("handler exploded") }

func TestTimeout(t *testing.T) {
	h := middleware.Timeout(20 * time.Millisecond)(eventkit.HandlerFunc(func(ctx context.Context, _ *eventkit.Message) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return errors.New("context did not end")
		}
	}))
	start := time.Now()
	err := h.Handle(context.Background(), eventkit.NewMessage("t", newEvent("1"), 1, nil, nil))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("handler context ended after %v, before the 20ms timeout", d)
	}
	// Inside Retry, each attempt gets its own deadline.
	var calls atomic.Int32
	r := middleware.Retry(middleware.MaxAttempts(3), middleware.Backoff(time.Millisecond, time.Millisecond, 1))(
		middleware.Timeout(10 * time.Millisecond)(eventkit.HandlerFunc(func(ctx context.Context, _ *eventkit.Message) error {
			if calls.Add(1) < 3 {
				<-ctx.Done()
				return ctx.Err()
			}
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("no deadline")
			}
			return ctx.Err()
		})))
	if err := r.Handle(context.Background(), eventkit.NewMessage("t", newEvent("1"), 1, nil, nil)); err != nil {
		t.Fatalf("third attempt with a fresh deadline failed: %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	lim := rate.NewLimiter(rate.Every(25*time.Millisecond), 1)
	var n atomic.Int32
	h := middleware.RateLimit(lim)(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { n.Add(1); return nil }))
	start := time.Now()
	for i := 0; i < 5; i++ {
		if err := h.Handle(context.Background(), eventkit.NewMessage("t", newEvent("1"), 1, nil, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 4*25*time.Millisecond-5*time.Millisecond {
		t.Fatalf("5 messages at 40/s with burst 1 took %v; want at least ~100ms", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Handle(ctx, eventkit.NewMessage("t", newEvent("1"), 1, nil, nil)); err == nil {
		t.Fatal("handled with a cancelled context while rate limited")
	}
	if n.Load() != 5 {
		t.Fatalf("handler ran %d times, want 5", n.Load())
	}
}

func TestDedupSkipsDuplicateDelivery(t *testing.T) {
	h := newHarness(t)
	metrics, reg := newMetrics(t)
	store := memory.NewDedupStore()
	handled := make(chan string, 8)
	var failFirst atomic.Bool
	failFirst.Store(true)
	h.Router.Use(metrics.Middleware(), middleware.Dedup(store))
	if err := h.Router.HandleFunc(h.Topic("orders"), func(ctx context.Context, m *eventkit.Message) error {
		if m.Event.ID() == "flaky" && failFirst.Swap(false) {
			return errTransient // no record: the redelivery must be handled
		}
		send(ctx, handled, m.Event.ID()+"@"+m.Event.Source())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.Start()
	other := newEvent("o-1")
	other.SetSource("urn:other")
	h.Publish(h.Topic("orders"), newEvent("o-1"), newEvent("o-1"), other, newEvent("flaky"), newEvent("o-1"), newEvent("flaky"), newEvent("end"))
	var got []string
	for len(got) < 4 {
		got = append(got, wait(t, handled, "handled events"))
	}
	want := []string{"o-1@https://eventkit.dev/test", "o-1@urn:other", "flaky@https://eventkit.dev/test", "end@https://eventkit.dev/test"}
	// The redelivered "flaky" may come after "end".
	if len(got) != 4 || got[0] != want[0] || got[1] != want[1] || !contains(got[2:], want[2]) || !contains(got[2:], want[3]) {
		t.Fatalf("handled %v; want %v (duplicates skipped, same id from another source kept)", got, want)
	}
	eventually(t, "the dropped outcome", func() bool {
		return metricValue(t, reg, "eventkit_handled_total", map[string]string{"outcome": "dropped"}) >= 3
	})
	select {
	case id := <-handled:
		t.Fatalf("handled %s again", id)
	case <-time.After(50 * time.Millisecond):
	}
	if v := metricValue(t, reg, "eventkit_handled_total", map[string]string{"outcome": "dropped"}); v != 3 {
		t.Fatalf("dropped = %v, want 3 (two o-1 duplicates, one flaky duplicate)", v)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

type failingStore struct{ seenErr, markErr error }

func (s failingStore) Seen(context.Context, string) (bool, error) { return false, s.seenErr }
func (s failingStore) Mark(context.Context, string, time.Duration) (bool, error) {
	return false, s.markErr
}

func TestDedupStoreErrors(t *testing.T) {
	errStore := errors.New("store down")
	var calls int
	next := eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { calls++; return nil })
	msg := func() *eventkit.Message { return eventkit.NewMessage("t", newEvent("1"), 1, nil, nil) }
	if err := middleware.Dedup(failingStore{seenErr: errStore})(next).Handle(context.Background(), msg()); !errors.Is(err, errStore) || calls != 0 {
		t.Fatalf("unreadable store: err = %v, calls = %d; want the store error and no handling", err, calls)
	}
	if err := middleware.Dedup(failingStore{markErr: errStore}, middleware.DedupLogger(quietLogger))(next).Handle(context.Background(), msg()); err != nil || calls != 1 {
		t.Fatalf("failed mark after success: err = %v, calls = %d; want nil (the effect happened) and 1", err, calls)
	}
	// A custom key: by id only, and "" disables deduplication.
	store := memory.NewDedupStore()
	mw := middleware.Dedup(store, middleware.DedupKey(func(m *eventkit.Message) string {
		if m.Event.Type() == "nodedup" {
			return ""
		}
		return m.Event.ID()
	}))
	calls = 0
	a, b := newEvent("same"), newEvent("same")
	b.SetSource("urn:elsewhere")
	c := newEvent("x")
	c.SetType("nodedup")
	for _, e := range []event.Event{a, b, c, c} {
		if err := mw(next).Handle(context.Background(), eventkit.NewMessage("t", e, 1, nil, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 3 {
		t.Fatalf("handled %d of 4 events; want 3 (same id from two sources is a duplicate under the custom key; an empty key is never skipped)", calls)
	}
}
