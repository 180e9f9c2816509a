package eventkit_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
)

// noNackSub is a subscriber whose transport cannot redeliver, like MQTT:
// every Nack is refused with a *CapabilityError, and acks are counted.
// withDelay makes it refuse only nacks with a delay (no CapNackDelay).
type noNackSub struct {
	ch        chan *eventkit.Message
	withDelay bool
	acks      atomic.Int32
	nacks     atomic.Int32
	once      sync.Once
}

func (s *noNackSub) Subscribe(context.Context, string, ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	return s, nil
}
func (s *noNackSub) Messages() <-chan *eventkit.Message { return s.ch }
func (s *noNackSub) Err() error                         { return nil }
func (s *noNackSub) Close() error                       { s.once.Do(func() { close(s.ch) }); return nil }

func (s *noNackSub) Ack(*eventkit.Message) error { s.acks.Add(1); return nil }
func (s *noNackSub) Nack(_ *eventkit.Message, _ error, delay time.Duration) error {
	if s.withDelay && delay <= 0 {
		s.nacks.Add(1)
		return nil
	}
	missing := eventkit.CapNack
	if s.withDelay {
		missing = eventkit.CapNackDelay
	}
	return &eventkit.CapabilityError{Transport: "test", Op: "nack", Missing: missing}
}

// A nack the transport refuses leaves the message unsettled, so that it can
// still be acked: otherwise a transport that acks in order (MQTT) would hold
// back every later ack of the subscription.
func TestRefusedNackLeavesMessagePending(t *testing.T) {
	s := &noNackSub{}
	m := eventkit.NewMessage("t", eventkittest.NewEvent("1"), 1, s, nil)
	if err := m.Nack(errors.New("boom")); !errors.Is(err, eventkit.ErrUnsupported) {
		t.Fatalf("Nack = %v, want ErrUnsupported", err)
	}
	if m.Settled() {
		t.Fatal("a refused nack settled the message")
	}
	if err := m.Ack(); err != nil {
		t.Fatalf("Ack after a refused nack: %v", err)
	}
	if s.acks.Load() != 1 {
		t.Fatalf("acks = %d, want 1", s.acks.Load())
	}
}

// On a transport that cannot redeliver, a failed handler's message is acked
// (and logged) instead of being left unsettled; on one that cannot delay a
// redelivery, it is nacked without a delay.
func TestRouterOnTransportWithoutNack(t *testing.T) {
	for _, tc := range []struct {
		name            string
		withDelay       bool
		wantAcks, nacks int32
	}{
		{"no nack", false, 5, 0},
		{"no nack delay", true, 0, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &noNackSub{ch: make(chan *eventkit.Message, 5), withDelay: tc.withDelay}
			r := eventkit.NewRouter(s, eventkit.WithLogger(quietLog))
			var calls atomic.Int32
			if err := r.HandleFunc("t", func(context.Context, *eventkit.Message) error {
				calls.Add(1)
				return errors.New("always fails")
			}); err != nil {
				t.Fatal(err)
			}
			startRouter(t, r)
			for i := range 5 {
				s.ch <- eventkit.NewMessage("t", eventkittest.NewEvent(string(rune('a'+i))), 1, s, nil)
			}
			waitFor(t, "every message settled", func() bool { return s.acks.Load()+s.nacks.Load() == 5 })
			if s.acks.Load() != tc.wantAcks || s.nacks.Load() != tc.nacks {
				t.Fatalf("acks %d nacks %d, want %d and %d", s.acks.Load(), s.nacks.Load(), tc.wantAcks, tc.nacks)
			}
		})
	}
}
