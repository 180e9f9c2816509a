package eventkit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// startRouter runs r in the background and returns a stop function that
// shuts it down and returns Run's error.
func startRouter(t *testing.T, r *eventkit.Router) func() error {
	t.Helper()
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { errc <- r.Run(ctx) }()
	select {
	case <-r.Running():
	case err := <-errc:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("router did not start")
	}
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			err = <-errc
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func publishN(t *testing.T, p eventkit.Publisher, topic string, n int, mutate func(i int, e *event.Event)) {
	t.Helper()
	for i := 0; i < n; i++ {
		e := eventkittest.NewEvent(topic + "-" + strconv.Itoa(i))
		if mutate != nil {
			mutate(i, &e)
		}
		if err := p.Publish(context.Background(), topic, e); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, what, cond)
}

func TestRouterAcksAndNacks(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLog))
	var calls sync.Map // id -> attempts seen
	var handled atomic.Int32
	err := r.HandleFunc("orders.>", func(ctx context.Context, m *eventkit.Message) error {
		n, _ := calls.LoadOrStore(m.Event.ID(), new(atomic.Int32))
		c := n.(*atomic.Int32).Add(1)
		if c < 3 {
			return fmt.Errorf("fail %d", c)
		}
		if m.Attempt != 3 {
			t.Errorf("third call has Attempt %d", m.Attempt)
		}
		handled.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRouter(t, r)
	publishN(t, bus, "orders.created", 10, nil)
	waitFor(t, "10 events handled", func() bool { return handled.Load() == 10 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestRouterRetryAfterDelaysRedelivery(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLog))
	var first, second time.Time
	done := make(chan struct{})
	_ = r.HandleFunc("x", func(ctx context.Context, m *eventkit.Message) error {
		if m.Attempt == 1 {
			first = time.Now()
			return eventkit.RetryAfter(errors.New("later"), 300*time.Millisecond)
		}
		second = time.Now()
		close(done)
		return nil
	})
	startRouter(t, r)
	publishN(t, bus, "x", 1, nil)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no redelivery")
	}
	if d := second.Sub(first); d < 250*time.Millisecond {
		t.Fatalf("redelivered after %s, want at least the 300ms asked for", d)
	}
}

func TestRouterConcurrencyLimit(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLog))
	var cur, peak, total atomic.Int32
	_ = r.HandleFunc("work", func(ctx context.Context, m *eventkit.Message) error {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		cur.Add(-1)
		total.Add(1)
		return nil
	}, eventkit.Concurrency(4))
	startRouter(t, r)
	publishN(t, bus, "work", 100, nil)
	waitFor(t, "100 handled", func() bool { return total.Load() == 100 })
	if p := peak.Load(); p > 4 || p < 2 {
		t.Fatalf("peak concurrency %d, want between 2 and the limit 4", p)
	}
}

func TestRouterOrderedByKey(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLog))
	var mu sync.Mutex
	last := map[string]int{}
	var total atomic.Int32
	var bad atomic.Value
	_ = r.HandleFunc("seq", func(ctx context.Context, m *eventkit.Message) error {
		seq, _ := strconv.Atoi(fmt.Sprint(m.Event.Extensions()["seq"]))
		key := m.Key()
		time.Sleep(time.Duration(seq%3) * 100 * time.Microsecond)
		mu.Lock()
		if prev, ok := last[key]; ok && seq != prev+1 {
			bad.Store(fmt.Sprintf("key %s: %d after %d", key, seq, prev))
		}
		last[key] = seq
		mu.Unlock()
		total.Add(1)
		return nil
	}, eventkit.Concurrency(8), eventkit.OrderedByKey())
	startRouter(t, r)
	const keys, per = 10, 40
	for i := 0; i < per; i++ {
		for k := 0; k < keys; k++ {
			e := eventkittest.NewEvent(fmt.Sprintf("k%d-%d", k, i))
			if k%2 == 0 {
				e.SetExtension("partitionkey", "key"+strconv.Itoa(k))
			} else {
				e.SetSubject("subject" + strconv.Itoa(k))
			}
			e.SetExtension("seq", strconv.Itoa(i))
			if err := bus.Publish(context.Background(), "seq", e); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "all handled", func() bool { return total.Load() == keys*per })
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	if len(last) != keys {
		t.Fatalf("saw %d keys", len(last))
	}
}

func TestRouterMiddlewareOrder(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLog))
	var mu sync.Mutex
	var trace []string
	mw := func(name string) eventkit.Middleware {
		return func(next eventkit.Handler) eventkit.Handler {
			return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
				mu.Lock()
				trace = append(trace, name+">")
				mu.Unlock()
				err := next.Handle(ctx, m)
				mu.Lock()
				trace = append(trace, "<"+name)
				mu.Unlock()
				return err
			})
		}
	}
	r.Use(mw("router1"), mw("router2"))
	done := make(chan eventkit.RouteInfo, 1)
	_ = r.HandleFunc("mw", func(ctx context.Context, m *eventkit.Message) error {
		ri, _ := eventkit.RouteFromContext(ctx)
		done <- ri
		return nil
	}, eventkit.RouteMiddleware(mw("route")), eventkit.RouteName("mw-handler"))
	startRouter(t, r)
	publishN(t, bus, "mw", 1, nil)
	ri := <-done
	if ri.Name != "mw-handler" || ri.Pattern != "mw" {
		t.Fatalf("RouteFromContext = %+v", ri)
	}
	waitFor(t, "middleware unwound", func() bool { mu.Lock(); defer mu.Unlock(); return len(trace) == 6 })
	want := "router1> router2> route> <route <router2 <router1"
	if got := fmt.Sprint(trace); got != "["+want+"]" {
		t.Fatalf("order %v, want %s", trace, want)
	}
}

// The handler's panic is recovered innermost: middleware sees a permanent
// *eventkit.PanicError, never a panic, and the router keeps running.
func TestRouterPanicBecomesErrorAndRouterKeepsRunning(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLog), eventkit.WithRedeliveryBackoff(time.Millisecond, time.Millisecond))
	var ok atomic.Int32
	var panics, panicErrs atomic.Int32
	r.Use(func(next eventkit.Handler) eventkit.Handler {
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) (err error) {
			defer func() {
				if v := recover(); v != nil {
					panics.Add(1)
					panic(v)
				}
			}()
			err = next.Handle(ctx, m)
			var pe *eventkit.PanicError
			if errors.As(err, &pe) && eventkit.IsPermanent(err) && pe.Value == "boom" && strings.Contains(string(pe.Stack), "router_test.go") {
				panicErrs.Add(1)
			}
			return err
		})
	})
	_ = r.HandleFunc("p", func(ctx context.Context, m *eventkit.Message) error {
		if m.Attempt == 1 {
			panic("boom")
		}
		ok.Add(1)
		return nil
	})
	startRouter(t, r)
	publishN(t, bus, "p", 5, nil)
	waitFor(t, "redelivered after panic", func() bool { return ok.Load() == 5 })
	if panics.Load() != 0 || panicErrs.Load() != 5 {
		t.Fatalf("middleware saw %d panics and %d permanent *PanicError with the stack; want 0 and 5", panics.Load(), panicErrs.Load())
	}
}

// A panic of a middleware (outside the handler) is recovered too.
func TestRouterRecoversMiddlewarePanic(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLog), eventkit.WithRedeliveryBackoff(time.Millisecond, time.Millisecond))
	var ok atomic.Int32
	r.Use(func(next eventkit.Handler) eventkit.Handler {
		return eventkit.HandlerFunc(func(ctx context.Context, m *eventkit.Message) error {
			if m.Attempt == 1 {
				panic("middleware boom")
			}
			return next.Handle(ctx, m)
		})
	})
	_ = r.HandleFunc("mp", func(ctx context.Context, m *eventkit.Message) error { ok.Add(1); return nil })
	startRouter(t, r)
	publishN(t, bus, "mp", 3, nil)
	waitFor(t, "redelivered after a middleware panic", func() bool { return ok.Load() == 3 })
}

func TestRouterGracefulShutdownFinishesInFlight(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLog))
	started := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	var ctxErr atomic.Value
	_ = r.HandleFunc("slow", func(ctx context.Context, m *eventkit.Message) error {
		close(started)
		<-release
		if ctx.Err() != nil {
			ctxErr.Store(ctx.Err())
		}
		finished.Store(true)
		return nil
	})
	startRouter(t, r)
	publishN(t, bus, "slow", 1, nil)
	<-started
	shut := make(chan error, 1)
	go func() { shut <- r.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) before the in-flight handler finished", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !finished.Load() {
		t.Fatal("in-flight handler did not finish")
	}
	if v := ctxErr.Load(); v != nil {
		t.Fatalf("handler context was cancelled during a graceful shutdown: %v", v)
	}
	// Stopped taking: a new event is not handled.
	if err := bus.Publish(context.Background(), "slow", eventkittest.NewEvent("after")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("Done not closed after Shutdown")
	}
}

// Shutdown's deadline cancels the handlers, whether the router was started
// with Run or with Start; after Start, Wait returns the deadline error.
func TestRouterShutdownDeadlineCancelsHandlers(t *testing.T) {
	for _, start := range []string{"Run", "Start"} {
		t.Run(start, func(t *testing.T) {
			bus := memory.New()
			defer bus.Close()
			r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLog))
			started := make(chan struct{})
			cancelled := make(chan struct{})
			_ = r.HandleFunc("stuck", func(ctx context.Context, m *eventkit.Message) error {
				close(started)
				<-ctx.Done()
				close(cancelled)
				return ctx.Err()
			})
			if start == "Run" {
				startRouter(t, r)
			} else if err := r.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			publishN(t, bus, "stuck", 1, nil)
			<-started
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := r.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Shutdown = %v, want a deadline error", err)
			}
			select {
			case <-cancelled:
			case <-time.After(5 * time.Second):
				t.Fatal("handler context not cancelled after the shutdown deadline")
			}
			if start == "Start" {
				if err := r.Wait(); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Wait = %v, want the shutdown's deadline error", err)
				}
			}
		})
	}
}

func TestRouterRejectsBadRoutes(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	r := eventkit.NewRouter(bus)
	h := eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { return nil })
	if err := r.Handle("bad..pattern", h); err == nil {
		t.Error("invalid pattern accepted")
	}
	if err := r.Handle("ok", nil); err == nil {
		t.Error("nil handler accepted")
	}
	if err := r.Handle("ok", h, eventkit.Concurrency(0)); err == nil {
		t.Error("zero concurrency accepted")
	}
	if err := r.Run(context.Background()); err == nil {
		t.Error("Run with bad routes succeeded")
	}
	if err := eventkit.NewRouter(bus).Run(context.Background()); err == nil {
		t.Error("Run with no routes succeeded")
	}
}

func TestRouterGroupsShareWork(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	var a, b atomic.Int32
	mk := func(c *atomic.Int32) *eventkit.Router {
		r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLog))
		_ = r.HandleFunc("jobs", func(ctx context.Context, m *eventkit.Message) error {
			time.Sleep(time.Millisecond)
			c.Add(1)
			return nil
		}, eventkit.RouteGroup("workers"))
		return r
	}
	startRouter(t, mk(&a))
	startRouter(t, mk(&b))
	publishN(t, bus, "jobs", 100, nil)
	waitFor(t, "100 jobs", func() bool { return a.Load()+b.Load() == 100 })
	if a.Load() == 0 || b.Load() == 0 {
		t.Fatalf("group members got %d and %d", a.Load(), b.Load())
	}
}

func TestRouterStopsWhenSubscriptionFails(t *testing.T) {
	bus := memory.New()
	r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLog))
	_ = r.HandleFunc("x", func(context.Context, *eventkit.Message) error { return nil })
	errc := make(chan error, 1)
	go func() { errc <- r.Run(context.Background()) }()
	<-r.Running()
	_ = bus.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Run returned nil after its subscription ended underneath it")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the subscriber closed")
	}
}

// Start returns once every route is subscribed: an event published right
// after it reaches every route, even on the memory bus, which keeps nothing
// for a pattern nobody subscribes to yet.
func TestRouterStartReturnsSubscribed(t *testing.T) {
	for i := 0; i < 20; i++ {
		bus := memory.New()
		r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLog))
		var got atomic.Int32
		for _, p := range []string{"s.a", "s.*", "s.>"} {
			_ = r.HandleFunc(p, func(context.Context, *eventkit.Message) error { got.Add(1); return nil }, eventkit.RouteGroup(p))
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := r.Start(ctx); err != nil {
			t.Fatalf("Start: %v", err)
		}
		select {
		case <-r.Running():
		default:
			t.Fatal("Start returned before Running was closed")
		}
		publishN(t, bus, "s.a", 1, nil)
		waitFor(t, "3 routes handled the event", func() bool { return got.Load() == 3 })
		cancel()
		if err := r.Wait(); err != nil {
			t.Fatalf("Wait after ctx ended: %v", err)
		}
		if err := r.Wait(); err != nil {
			t.Fatalf("second Wait: %v", err)
		}
		_ = bus.Close()
	}
}

func TestRouterStartErrors(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	if err := eventkit.NewRouter(bus).Wait(); err == nil {
		t.Error("Wait before Start succeeded")
	}
	r := eventkit.NewRouter(bus)
	_ = r.Handle("bad..pattern", eventkit.HandlerFunc(func(context.Context, *eventkit.Message) error { return nil }))
	err := r.Start(context.Background())
	if err == nil {
		t.Fatal("Start with a bad route succeeded")
	}
	if werr := r.Wait(); werr == nil || werr.Error() != err.Error() {
		t.Fatalf("Wait after a failed Start = %v, want Start's error %v", werr, err)
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("Done not closed after a failed Start")
	}

	r = eventkit.NewRouter(bus, eventkit.WithLogger(quietLog))
	_ = r.HandleFunc("twice", func(context.Context, *eventkit.Message) error { return nil })
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	if err := r.Run(context.Background()); err == nil {
		t.Error("Run after Start succeeded")
	}
	if err := r.HandleFunc("late", func(context.Context, *eventkit.Message) error { return nil }); err == nil {
		t.Error("Handle after Start succeeded")
	}
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := r.Wait(); err != nil {
		t.Fatalf("Wait after Shutdown: %v", err)
	}

	// Shutdown before Start: Wait returns at once.
	r = eventkit.NewRouter(bus)
	_ = r.Shutdown(context.Background())
	if err := r.Wait(); err != nil {
		t.Fatalf("Wait after Shutdown before Start: %v", err)
	}
	if err := r.Start(context.Background()); err == nil {
		t.Error("Start after Shutdown succeeded")
	}
}

func TestRouterWaitReportsSubscriptionFailure(t *testing.T) {
	bus := memory.New()
	r := eventkit.NewRouter(bus, eventkit.WithLogger(quietLog))
	_ = r.HandleFunc("x", func(context.Context, *eventkit.Message) error { return nil })
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = bus.Close()
	if err := r.Wait(); err == nil {
		t.Fatal("Wait returned nil after the subscription ended underneath it")
	}
}

// A nack without a delay gets the redelivery backoff: the default doubles
// from 100ms per delivery attempt up to 10s; WithRedeliveryBackoff changes
// it; a RetryAfter delay is kept. Simulated time (synctest).
func TestRouterRedeliveryBackoff(t *testing.T) {
	run := func(t *testing.T, opts []eventkit.RouterOption, herr error, want []time.Duration) {
		bus := memory.New()
		defer bus.Close()
		r := eventkit.NewRouter(bus, append([]eventkit.RouterOption{eventkit.WithLogger(quietLog)}, opts...)...)
		var at []time.Time
		_ = r.HandleFunc("b", func(ctx context.Context, _ *eventkit.Message) error {
			at = append(at, time.Now())
			if len(at) > 1000 { // a hot loop: block, so that simulated time advances
				<-ctx.Done()
			}
			return herr
		})
		ctx, cancel := context.WithCancel(context.Background())
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		publishN(t, bus, "b", 1, nil)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		cancel()
		if err := r.Wait(); err != nil {
			t.Fatal(err)
		}
		var got []time.Duration
		for i := 1; i < len(at) && i <= len(want); i++ {
			got = append(got, at[i].Sub(at[i-1]))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("gaps between deliveries %v, want %v", got, want)
		}
	}
	fail := errors.New("fails")
	t.Run("Default", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			run(t, nil, fail, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
				800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond,
				10 * time.Second, 10 * time.Second})
		})
	})
	t.Run("Option", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			run(t, []eventkit.RouterOption{eventkit.WithRedeliveryBackoff(time.Second, 3*time.Second)}, fail,
				[]time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second})
		})
	})
	t.Run("RetryAfterKept", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			run(t, nil, eventkit.RetryAfter(fail, 5*time.Second), []time.Duration{5 * time.Second, 5 * time.Second})
		})
	})
	t.Run("RetryAfterZeroGetsBackoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			run(t, nil, eventkit.RetryAfter(fail, 0), []time.Duration{100 * time.Millisecond, 200 * time.Millisecond})
		})
	})
}

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

// failSome returns a batch handler function that fails the messages of
// the ids in fail with err (through a BatchError) and nacks the message of
// id nack itself with nackErr.
func failSome(err error, fail []string, nack string, nackErr error) func(msgs []*eventkit.Message) error {
	return func(msgs []*eventkit.Message) error {
		var failed eventkit.BatchError
		for _, m := range msgs {
			switch id := m.Event.ID(); {
			case slices.Contains(fail, id):
				failed.Fail(m, err)
			case id == nack:
				if nerr := m.Nack(nackErr); nerr != nil {
					return nerr
				}
			}
		}
		return failed.Err()
	}
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
	rec := &batchRecorder{fn: failSome(boom, []string{"e1", "e3"}, "e4", errors.New("mine"))}
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
	rec := &batchRecorder{fn: failSome(boom, []string{"a1"}, "b1", boom)}
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

// A batch route: the handler gets up to 100 messages at once, writes them
// in one go, and fails only the one it cannot apply, which the Router
// nacks (and the transport redelivers) while it acks the others.
func ExampleRouter_HandleBatch() {
	bus := memory.New()
	defer bus.Close()

	var written []string
	done := make(chan struct{})
	r := eventkit.NewRouter(bus)
	err := r.HandleBatchFunc("meters.readings", func(ctx context.Context, msgs []*eventkit.Message) error {
		var failed eventkit.BatchError
		for _, m := range msgs {
			if m.Event.ID() == "r-3" && m.Attempt == 1 {
				failed.Fail(m, errors.New("meter unknown yet"))
				continue
			}
			written = append(written, m.Event.ID()) // in a real handler: one multi-row INSERT
		}
		if len(written) == 5 {
			close(done)
		}
		return failed.Err() // nil: every message acked
	}, eventkit.BatchSize(100), eventkit.BatchWait(50*time.Millisecond))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}

	readings := make([]event.Event, 5)
	for i := range readings {
		readings[i] = event.New()
		readings[i].SetID(fmt.Sprintf("r-%d", i+1))
		readings[i].SetSource("urn:example:meters")
		readings[i].SetType("example.meter.read")
	}
	if err := bus.Publish(ctx, "meters.readings", readings...); err != nil {
		fmt.Println(err)
		return
	}

	<-done
	cancel()
	fmt.Println("router stopped:", r.Wait())
	fmt.Println("written:", written)
	// Output:
	// router stopped: <nil>
	// written: [r-1 r-2 r-4 r-5 r-3]
}
