package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/middleware"
)

var errPoison = errors.New("poison: cannot parse order")

func TestPermanentErrorGoesStraightToDeadLetter(t *testing.T) {
	h := newHarness(t)
	metrics, reg := newMetrics(t)
	dlq := h.Subscribe(h.Topic("orders.dlq"))
	var calls atomic.Int32
	h.Router.Use(metrics.Middleware(),
		middleware.DeadLetter(h.Bus, middleware.DeadLetterLogger(quietLogger)),
		middleware.Retry(middleware.MaxAttempts(5), middleware.Backoff(time.Millisecond, time.Millisecond, 1)))
	if err := h.Router.HandleFunc(h.Topic("orders"), func(context.Context, *eventkit.Message) error {
		calls.Add(1)
		return middleware.Permanent(errPoison)
	}, eventkit.RouteName("orders-route")); err != nil {
		t.Fatal(err)
	}
	h.Start()
	before := time.Now().UTC().Add(-time.Second)
	orig := newEvent("o-1")
	orig.SetExtension("partitionkey", "customer-7")
	h.Publish(h.Topic("orders"), orig)
	m := receive(t, dlq)
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times; want 1 (a permanent error is not retried)", n)
	}
	if m.Topic != h.Topic("orders.dlq") || m.Event.ID() != "o-1" || m.Event.Type() != orig.Type() || string(m.Event.Data()) != string(orig.Data()) {
		t.Fatalf("dead letter = %q on %q; want the original event on %q", m.Event.ID(), m.Topic, h.Topic("orders.dlq"))
	}
	ext := m.Event.Extensions()
	if ext["partitionkey"] != "customer-7" {
		t.Errorf("original extension lost: %v", ext)
	}
	if ext[middleware.ExtDLQTopic] != h.Topic("orders") {
		t.Errorf("dlqtopic = %v, want %q", ext[middleware.ExtDLQTopic], h.Topic("orders"))
	}
	if ext[middleware.ExtDLQHandler] != "orders-route" {
		t.Errorf("dlqhandler = %v, want orders-route", ext[middleware.ExtDLQHandler])
	}
	if ext[middleware.ExtDLQAttempts] != int32(1) {
		t.Errorf("dlqattempts = %v, want 1", ext[middleware.ExtDLQAttempts])
	}
	if s, _ := ext[middleware.ExtDLQError].(string); !strings.Contains(s, errPoison.Error()) {
		t.Errorf("dlqerror = %q, want it to contain %q", s, errPoison)
	}
	ts, ok := ext[middleware.ExtDLQTime].(types.Timestamp)
	if !ok || ts.Time.Before(before) {
		t.Errorf("dlqtime = %v (%T); want a recent timestamp", ext[middleware.ExtDLQTime], ext[middleware.ExtDLQTime])
	}
	if err := eventkit.ValidateEvent(m.Event); err != nil {
		t.Errorf("dead letter is not a valid event: %v", err)
	}
	if _, ok := orig.Extensions()[middleware.ExtDLQTopic]; ok {
		t.Error("the original event was modified")
	}
	eventually(t, "the dead-lettered outcome", func() bool {
		return metricValue(t, reg, "eventkit_handled_total", map[string]string{"outcome": "dead-lettered"}) == 1
	})
	if v := metricValue(t, reg, "eventkit_dead_letters_total", map[string]string{"handler": "orders-route"}); v != 1 {
		t.Errorf("dead_letters_total = %v, want 1", v)
	}
	quiet(t, dlq, 50*time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times; the original was redelivered after its dead letter", n)
	}
}

func TestDeadLetterPublishFailureNacksOriginal(t *testing.T) {
	t.Run("Unit", func(t *testing.T) {
		pub := &flakyPublisher{fails: 1 << 30}
		mw := middleware.DeadLetter(pub, middleware.DeadLetterRetryDelay(7*time.Second))
		h := mw(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { return middleware.Permanent(errPoison) }))
		acker := &recordingAcker{}
		m := eventkit.NewMessage("orders", newEvent("o-1"), 1, acker, nil)
		err := h.Handle(context.Background(), m)
		var ra *eventkit.RetryAfterError
		var de *middleware.DeadLetterError
		if !errors.As(err, &ra) || ra.Delay != 7*time.Second || !errors.As(err, &de) || !errors.Is(err, errPublish) {
			t.Fatalf("err = %v; want RetryAfter(7s) of a *DeadLetterError wrapping the publish error", err)
		}
		if middleware.IsPermanent(err) {
			t.Fatalf("err = %v looks permanent: an outer middleware could drop the message", err)
		}
		if m.Settled() || acker.acks != 0 {
			t.Fatal("message settled by DeadLetter; the Router must nack it")
		}
	})
	t.Run("EndToEnd", func(t *testing.T) {
		h := newHarness(t)
		dlq := h.Subscribe(h.Topic("orders.dlq"))
		pub := &flakyPublisher{Publisher: h.Bus, fails: 1}
		attempts := make(chan int, 8)
		h.Router.Use(middleware.DeadLetter(pub, middleware.DeadLetterRetryDelay(10*time.Millisecond), middleware.DeadLetterLogger(quietLogger)),
			middleware.Retry(middleware.MaxAttempts(1)))
		if err := h.Router.HandleFunc(h.Topic("orders"), func(ctx context.Context, m *eventkit.Message) error {
			send(ctx, attempts, m.Attempt)
			return errTransient
		}); err != nil {
			t.Fatal(err)
		}
		h.Start()
		h.Publish(h.Topic("orders"), newEvent("o-1"))
		if a := wait(t, attempts, "first delivery"); a != 1 {
			t.Fatalf("first delivery attempt %d", a)
		}
		// The dead-letter publish failed: the original must come back.
		if a := wait(t, attempts, "redelivery after the failed dead letter"); a != 2 {
			t.Fatalf("redelivery attempt %d, want 2", a)
		}
		m := receive(t, dlq)
		if m.Event.ID() != "o-1" || m.Event.Extensions()[middleware.ExtDLQAttempts] != int32(1) {
			t.Fatalf("dead letter %q with attempts %v", m.Event.ID(), m.Event.Extensions()[middleware.ExtDLQAttempts])
		}
		quiet(t, dlq, 50*time.Millisecond)
		select {
		case a := <-attempts:
			t.Fatalf("delivered again (attempt %d) after a successful dead letter", a)
		default:
		}
	})
}

func TestDeadLetterPassesOtherErrors(t *testing.T) {
	pub := &flakyPublisher{}
	mw := middleware.DeadLetter(pub)
	for _, herr := range []error{errTransient, eventkit.RetryAfter(middleware.Permanent(errPoison), time.Second)} {
		h := mw(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { return herr }))
		if err := h.Handle(context.Background(), eventkit.NewMessage("t", newEvent("1"), 1, nil, nil)); err != herr {
			t.Errorf("err = %v; want %v passed through", err, herr)
		}
	}
	if pub.calls != 0 {
		t.Fatalf("%d dead-letter publishes for errors that are neither permanent nor exhausted", pub.calls)
	}
}

func TestDeadLetterOptions(t *testing.T) {
	h := newHarness(t)
	ns := eventkittest.UniqueName("mw")
	dlq := h.Subscribe("parking." + ns)
	h.Router.Use(middleware.DeadLetter(h.Bus, middleware.DeadLetterLogger(quietLogger),
		middleware.DeadLetterTopic(func(string) string { return "parking." + ns }),
		middleware.DeadLetterIf(func(err error) bool { return errors.Is(err, errTransient) })))
	if err := h.Router.HandleFunc(h.Topic("orders"), func(context.Context, *eventkit.Message) error {
		return fmt.Errorf("unclipped %s: %w", strings.Repeat("é", middleware.MaxDLQErrorLen), errTransient)
	}); err != nil {
		t.Fatal(err)
	}
	h.Start()
	h.Publish(h.Topic("orders"), newEvent("o-1"))
	m := receive(t, dlq)
	s := m.Event.Extensions()[middleware.ExtDLQError].(string)
	if len(s) > middleware.MaxDLQErrorLen || !strings.HasPrefix(s, "unclipped é") || strings.ContainsRune(s, '\uFFFD') {
		t.Fatalf("dlqerror of %d bytes %q...; want at most %d bytes of whole runes", len(s), s[:20], middleware.MaxDLQErrorLen)
	}
}

func TestDeadLetterAfter(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    []middleware.DeadLetterOption
		attempt int
		herr    error
		dead    bool
	}{
		{"default, attempt 4", nil, 4, errTransient, false},
		{"default, attempt 5", nil, 5, errTransient, true},
		{"default, attempt 9", nil, 9, errTransient, true},
		{"default, retry by nack in progress", nil, 5, eventkit.RetryAfter(errTransient, time.Second), false},
		{"after 2, attempt 2", []middleware.DeadLetterOption{middleware.DeadLetterAfter(2)}, 2, errTransient, true},
		{"disabled", []middleware.DeadLetterOption{middleware.DeadLetterAfter(0)}, 100, errTransient, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := memory.New()
			defer bus.Close()
			pub := &flakyPublisher{Publisher: bus}
			opts := append([]middleware.DeadLetterOption{middleware.DeadLetterLogger(quietLogger)}, tc.opts...)
			h := middleware.DeadLetter(pub, opts...)(eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { return tc.herr }))
			err := h.Handle(context.Background(), eventkit.NewMessage("t", newEvent("1"), tc.attempt, nil, nil))
			if dead := pub.calls == 1 && err == nil; dead != tc.dead {
				t.Fatalf("attempt %d, error %v: dead-lettered %v (err %v, %d publishes), want %v", tc.attempt, tc.herr, dead, err, pub.calls, tc.dead)
			}
		})
	}
}
