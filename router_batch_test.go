package eventkit_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/memory"
)

// chanSub is a Subscriber whose one subscription delivers what the test
// sends on ch; its messages record how they were settled.
type chanSub struct {
	ch chan *eventkit.Message
}

func newChanSub() *chanSub { return &chanSub{ch: make(chan *eventkit.Message, 1000)} }

func (s *chanSub) Subscribe(context.Context, string, ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	return s, nil
}
func (s *chanSub) Messages() <-chan *eventkit.Message { return s.ch }
func (s *chanSub) Err() error                         { return nil }
func (s *chanSub) Close() error                       { return nil }

// settlements records how each message (by event id) was settled.
type settlements struct {
	mu      sync.Mutex
	acked   map[string]int
	nacked  map[string]error
	settled chan string
}

func newSettlements() *settlements {
	return &settlements{acked: map[string]int{}, nacked: map[string]error{}, settled: make(chan string, 1000)}
}

func (s *settlements) Ack(m *eventkit.Message) error {
	s.mu.Lock()
	s.acked[m.Event.ID()]++
	s.mu.Unlock()
	s.settled <- m.Event.ID()
	return nil
}

func (s *settlements) Nack(m *eventkit.Message, reason error, _ time.Duration) error {
	s.mu.Lock()
	s.nacked[m.Event.ID()] = reason
	s.mu.Unlock()
	s.settled <- m.Event.ID()
	return nil
}

// waitSettled waits until n messages were settled.
func (s *settlements) waitSettled(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		testkit.Receive(t, s.settled, 10*time.Second, fmt.Sprintf("settlement %d of %d", i+1, n))
	}
}

func (s *settlements) outcome(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.acked[id] == 1 && s.nacked[id] == nil:
		return "acked"
	case s.acked[id] == 0 && s.nacked[id] != nil:
		return "nacked"
	}
	return fmt.Sprintf("acked %d times, nack %v", s.acked[id], s.nacked[id])
}

// send delivers a message of event id (key: its subject) through sub.
func (s *settlements) send(sub *chanSub, id, key string) {
	e := eventkittest.NewEvent(id)
	e.SetSubject(key)
	sub.ch <- eventkit.NewMessage("t", e, 1, s, nil)
}

// batchRecorder is a batch handler that records the ids of each batch.
type batchRecorder struct {
	mu      sync.Mutex
	batches [][]string
	fn      func(msgs []*eventkit.Message) error
}

func (b *batchRecorder) HandleBatch(_ context.Context, msgs []*eventkit.Message) error {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.Event.ID()
	}
	b.mu.Lock()
	b.batches = append(b.batches, ids)
	b.mu.Unlock()
	if b.fn != nil {
		return b.fn(msgs)
	}
	return nil
}

func (b *batchRecorder) sizes() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n []int
	for _, ids := range b.batches {
		n = append(n, len(ids))
	}
	return n
}

func startBatchRouter(t *testing.T, sub eventkit.Subscriber, h eventkit.BatchHandler, opts ...eventkit.RouteOption) (*eventkit.Router, func() error) {
	t.Helper()
	r := eventkit.NewRouter(sub, eventkit.WithLogger(quietLog), eventkit.WithRedeliveryBackoff(time.Millisecond, 10*time.Millisecond))
	if err := r.HandleBatch("t", h, opts...); err != nil {
		t.Fatal(err)
	}
	return r, startRouter(t, r)
}

func TestBatchRouteHandsFullBatches(t *testing.T) {
	sub, acks := newChanSub(), newSettlements()
	rec := &batchRecorder{}
	// Queued before the router starts: the batches are full.
	for i := 0; i < 10; i++ {
		acks.send(sub, "e"+strconv.Itoa(i), "")
	}
	_, stop := startBatchRouter(t, sub, rec, eventkit.BatchSize(4), eventkit.BatchWait(time.Hour))
	acks.waitSettled(t, 8)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The last two are a partial batch, handed over at shutdown.
	acks.waitSettled(t, 2)
	if got := fmt.Sprint(rec.sizes()); got != "[4 4 2]" {
		t.Fatalf("batch sizes %s, want [4 4 2]", got)
	}
	for i := 0; i < 10; i++ {
		if o := acks.outcome("e" + strconv.Itoa(i)); o != "acked" {
			t.Errorf("e%d: %s", i, o)
		}
	}
}

func TestBatchRouteWaitHandsPartialBatch(t *testing.T) {
	for _, wait := range []time.Duration{0, 20 * time.Millisecond} {
		t.Run(wait.String(), func(t *testing.T) {
			sub, acks := newChanSub(), newSettlements()
			rec := &batchRecorder{}
			_, stop := startBatchRouter(t, sub, rec, eventkit.BatchSize(100), eventkit.BatchWait(wait))
			for i := 0; i < 3; i++ {
				acks.send(sub, "e"+strconv.Itoa(i), "")
			}
			// Handed over without shutdown: the wait has passed.
			acks.waitSettled(t, 3)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBatchRoutePartialFailure(t *testing.T) {
	sub, acks := newChanSub(), newSettlements()
	boom := errors.New("boom")
	rec := &batchRecorder{fn: func(msgs []*eventkit.Message) error {
		var failed eventkit.BatchError
		for _, m := range msgs {
			switch m.Event.ID() {
			case "e1", "e3":
				failed.Fail(m, boom)
			case "e4":
				// settled by the handler itself: left alone
				if err := m.Nack(errors.New("mine")); err != nil {
					return err
				}
			}
		}
		return failed.Err()
	}}
	for i := 0; i < 6; i++ {
		acks.send(sub, "e"+strconv.Itoa(i), "k"+strconv.Itoa(i))
	}
	_, stop := startBatchRouter(t, sub, rec, eventkit.BatchSize(6), eventkit.BatchWait(time.Hour))
	acks.waitSettled(t, 6)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"e0": "acked", "e1": "nacked", "e2": "acked", "e3": "nacked", "e4": "nacked", "e5": "acked"}
	for id, w := range want {
		if o := acks.outcome(id); o != w {
			t.Errorf("%s: %s, want %s", id, o, w)
		}
	}
	if !errors.Is(acks.nacked["e1"], boom) || acks.nacked["e4"].Error() != "mine" {
		t.Errorf("nack reasons: e1 %v, e4 %v", acks.nacked["e1"], acks.nacked["e4"])
	}
}

func TestBatchRouteErrorAndPanicNackUnsettled(t *testing.T) {
	for name, fail := range map[string]func(msgs []*eventkit.Message) error{
		"error": func(msgs []*eventkit.Message) error { _ = msgs[0].Ack(); return errors.New("db down") },
		"panic": func(msgs []*eventkit.Message) error { _ = msgs[0].Ack(); panic("bad") },
	} {
		t.Run(name, func(t *testing.T) {
			sub, acks := newChanSub(), newSettlements()
			for i := 0; i < 3; i++ {
				acks.send(sub, "e"+strconv.Itoa(i), "")
			}
			_, stop := startBatchRouter(t, sub, &batchRecorder{fn: fail}, eventkit.BatchSize(3))
			acks.waitSettled(t, 3)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if acks.outcome("e0") != "acked" || acks.outcome("e1") != "nacked" || acks.outcome("e2") != "nacked" {
				t.Fatalf("outcomes %s %s %s, want acked nacked nacked", acks.outcome("e0"), acks.outcome("e1"), acks.outcome("e2"))
			}
			var pe *eventkit.PanicError
			if name == "panic" && !errors.As(acks.nacked["e1"], &pe) {
				t.Fatalf("nack reason %v, want a *PanicError", acks.nacked["e1"])
			}
		})
	}
}

// With OrderedByKey, a message is not acked after an earlier message of
// its key was nacked in the batch; other keys are not affected.
func TestBatchRouteOrderedNacksLaterMessagesOfAFailedKey(t *testing.T) {
	sub, acks := newChanSub(), newSettlements()
	boom := errors.New("boom")
	rec := &batchRecorder{fn: func(msgs []*eventkit.Message) error {
		var failed eventkit.BatchError
		for _, m := range msgs {
			switch m.Event.ID() {
			case "a1":
				failed.Fail(m, boom)
			case "b1":
				if err := m.Nack(boom); err != nil {
					return err
				}
			}
		}
		return failed.Err()
	}}
	for _, id := range []string{"a0", "b0", "a1", "b1", "c0", "a2", "b2", "c1"} {
		acks.send(sub, id, id[:1])
	}
	// Concurrency 1: one batch holds every key.
	_, stop := startBatchRouter(t, sub, rec, eventkit.BatchSize(8), eventkit.BatchWait(time.Hour), eventkit.OrderedByKey())
	acks.waitSettled(t, 8)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a0": "acked", "b0": "acked", "a1": "nacked", "b1": "nacked",
		"c0": "acked", "a2": "nacked", "b2": "nacked", "c1": "acked"}
	for id, w := range want {
		if o := acks.outcome(id); o != w {
			t.Errorf("%s: %s, want %s", id, o, w)
		}
	}
	if !errors.Is(acks.nacked["a2"], boom) {
		t.Errorf("a2 nacked with %v, want the error of a1", acks.nacked["a2"])
	}
}

// With OrderedByKey and Concurrency, a key's messages are handled in
// delivery order, never in two batches at once.
func TestBatchRouteOrderedByKeyConcurrent(t *testing.T) {
	sub, acks := newChanSub(), newSettlements()
	var mu sync.Mutex
	last := map[string]int{}
	busy := map[string]bool{}
	var bad []string
	rec := &batchRecorder{fn: func(msgs []*eventkit.Message) error {
		keys := map[string]bool{}
		mu.Lock()
		for _, m := range msgs {
			k := m.Key()
			if busy[k] && !keys[k] {
				bad = append(bad, "key "+k+" in two batches at once")
			}
			keys[k], busy[k] = true, true
			seq, _ := strconv.Atoi(m.Event.ID()[len(k)+1:])
			if seq != last[k]+1 {
				bad = append(bad, fmt.Sprintf("%s after %s-%d", m.Event.ID(), k, last[k]))
			}
			last[k] = seq
		}
		mu.Unlock()
		time.Sleep(time.Millisecond) // hold the keys busy: a second batch of one would be seen
		mu.Lock()
		for k := range keys {
			busy[k] = false
		}
		mu.Unlock()
		return nil
	}}
	_, stop := startBatchRouter(t, sub, rec, eventkit.BatchSize(5), eventkit.BatchWait(time.Millisecond),
		eventkit.OrderedByKey(), eventkit.Concurrency(4))
	const keys, per = 10, 30
	for i := 1; i <= per; i++ {
		for k := 0; k < keys; k++ {
			acks.send(sub, fmt.Sprintf("k%d-%d", k, i), "k"+strconv.Itoa(k))
		}
	}
	acks.waitSettled(t, keys*per)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("order broken: %v", bad[:min(len(bad), 5)])
	}
}

// A shutdown whose timeout passes cancels the batch handler's context; the
// messages it leaves unsettled are nacked, none is left unsettled.
func TestBatchRouteShutdownTimeoutNacksUnsettled(t *testing.T) {
	sub, acks := newChanSub(), newSettlements()
	started := make(chan struct{})
	h := eventkit.BatchHandlerFunc(func(ctx context.Context, msgs []*eventkit.Message) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	r := eventkit.NewRouter(sub, eventkit.WithLogger(quietLog))
	if err := r.HandleBatch("t", h, eventkit.BatchSize(2), eventkit.BatchWait(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	acks.send(sub, "e0", "")
	acks.send(sub, "e1", "")
	testkit.Receive(t, started, 10*time.Second, "the batch handler")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want the deadline", err)
	}
	acks.waitSettled(t, 2)
	if acks.outcome("e0") != "nacked" || acks.outcome("e1") != "nacked" {
		t.Fatalf("outcomes %s %s, want nacked", acks.outcome("e0"), acks.outcome("e1"))
	}
	<-r.Done()
}

func TestBatchRouteBadOptions(t *testing.T) {
	h := eventkit.BatchHandlerFunc(func(context.Context, []*eventkit.Message) error { return nil })
	cases := map[string]struct {
		h    eventkit.BatchHandler
		opts []eventkit.RouteOption
		want string
	}{
		"size 0":         {h, []eventkit.RouteOption{eventkit.BatchSize(0)}, "BatchSize"},
		"size too large": {h, []eventkit.RouteOption{eventkit.BatchSize(eventkit.MaxBatchSize + 1)}, "BatchSize"},
		"negative wait":  {h, []eventkit.RouteOption{eventkit.BatchWait(-time.Second)}, "BatchWait"},
		"middleware": {h, []eventkit.RouteOption{eventkit.RouteMiddleware(func(h eventkit.Handler) eventkit.Handler { return h })},
			"RouteMiddleware"},
		"concurrency": {h, []eventkit.RouteOption{eventkit.Concurrency(0)}, "concurrency"},
		"nil handler": {nil, nil, "nil batch handler"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := eventkit.NewRouter(memory.New())
			err := r.HandleBatch("t", c.h, c.opts...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("HandleBatch: %v, want an error naming %s", err, c.want)
			}
			if c.want != "concurrency" && c.want != "nil batch handler" && !errors.Is(err, eventkit.ErrInvalidOption) {
				t.Fatalf("%v does not wrap ErrInvalidOption", err)
			}
			if serr := r.Run(context.Background()); serr == nil || !strings.Contains(serr.Error(), c.want) {
				t.Fatalf("Run: %v, want the same error", serr)
			}
		})
	}
	t.Run("batch option on a message route", func(t *testing.T) {
		r := eventkit.NewRouter(memory.New())
		err := r.HandleFunc("t", func(context.Context, *eventkit.Message) error { return nil }, eventkit.BatchSize(10))
		if !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Fatalf("Handle with BatchSize: %v, want ErrInvalidOption", err)
		}
	})
}
