package eventkit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
