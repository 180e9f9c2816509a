package transport_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTransport(t *testing.T, d *fakeDriver, opts ...transport.Option) *transport.Transport {
	t.Helper()
	tr, err := transport.New(d, d, append([]transport.Option{transport.WithName("fake"), transport.WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tr.Close()
		if v := d.violations.Load(); v != 0 {
			t.Errorf("the transport package broke the driver contract %d times", v)
		}
	})
	return tr
}

// TestConformance runs eventkit's transport suite on this package and the fake
// driver: what this package owns (validation, closed state, ctx, settle-once,
// nack redelivery through the driver) passes it.
func TestConformance(t *testing.T) {
	for _, v := range []struct{ unobserved, inline bool }{{false, false}, {true, false}, {false, true}} {
		t.Run(fmt.Sprintf("unobserved=%t,inline=%t", v.unobserved, v.inline), func(t *testing.T) {
			eventkittest.TestTransport(t, func(t *testing.T, ns string) (eventkit.Publisher, eventkit.Subscriber) {
				d := newFake(allCaps)
				d.unobserved, d.inline = v.unobserved, v.inline
				tr := newTransport(t, d)
				return tr, tr
			}, eventkittest.Features{Wildcards: true, ConsumerGroups: true, Redelivery: true, AttemptCount: true, NackDelay: true, Timeout: 10 * time.Second})
		})
	}
}

// TestConfigBuffer: the driver gets eventkit.WithBuffer as Config.Buffer,
// 0 without it, even when it equals driver.DefaultMaxBatch.
func TestConfigBuffer(t *testing.T) {
	ctx := context.Background()
	d := newFake(allCaps)
	tr := newTransport(t, d)
	for _, c := range []struct {
		opts             []eventkit.SubscribeOption
		buffer, maxBatch int
	}{
		{nil, 0, driver.DefaultMaxBatch},
		{[]eventkit.SubscribeOption{eventkit.WithBuffer(driver.DefaultMaxBatch)}, driver.DefaultMaxBatch, driver.DefaultMaxBatch},
		{[]eventkit.SubscribeOption{eventkit.WithBuffer(7)}, 7, 7},
	} {
		s, err := tr.Subscribe(ctx, "cfg.a", c.opts...)
		if err != nil {
			t.Fatal(err)
		}
		d.mu.Lock()
		cfg := d.cfg
		d.mu.Unlock()
		if cfg.Buffer != c.buffer || cfg.MaxBatch != c.maxBatch {
			t.Errorf("Config Buffer %d MaxBatch %d, want %d and %d", cfg.Buffer, cfg.MaxBatch, c.buffer, c.maxBatch)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStopTakesBackBufferedMessages: on a driver without
// driver.DeliveryObserver, messages wait in Messages' buffer; when the
// subscription stops, those not taken are not handed over any more (the
// channel is closed, empty) and stay in flight, for the broker.
func TestStopTakesBackBufferedMessages(t *testing.T) {
	ctx := context.Background()
	d := newFake(allCaps)
	d.unobserved = true
	tr := newTransport(t, d)
	s := subscribe(t, tr, "b.a", eventkit.WithBuffer(10))
	fs := d.lastSub(t)
	events := make([]event.Event, 25)
	for i := range events {
		events[i] = newEvent(strconv.Itoa(i))
	}
	if err := tr.Publish(ctx, "b.a", events...); err != nil {
		t.Fatal(err)
	}
	ms := receive(t, s, 3)
	for _, m := range ms {
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	// Let the buffer fill: two batches of 10 received, 3 of them taken.
	deadline := time.Now().Add(5 * time.Second)
	for {
		fs.q.mu.Lock()
		left := len(fs.q.items)
		fs.q.mu.Unlock()
		if left <= 25-20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if m, ok := <-s.Messages(); ok {
		t.Fatalf("message %s handed over after Close", m.Event.ID())
	}
	if a, n, _ := fs.counts(); a != 3 || n != 0 {
		t.Errorf("driver got %d acks and %d nacks, want 3 and 0", a, n)
	}
	fs.q.mu.Lock()
	pending := len(fs.q.pending)
	fs.q.mu.Unlock()
	if pending == 0 {
		t.Error("no message left in flight: the buffered ones were settled")
	}
}

func TestInvalidOptions(t *testing.T) {
	d := newFake(allCaps)
	for name, o := range map[string]transport.Option{
		"WithName":         transport.WithName(""),
		"WithLogger":       transport.WithLogger(nil),
		"WithCloseTimeout": transport.WithCloseTimeout(-time.Second),
	} {
		if _, err := transport.New(d, d, o); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("New with an invalid %s: err %v, want ErrInvalidOption", name, err)
		}
		if _, err := transport.NewPublisher(d, o); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("NewPublisher with an invalid %s: err %v, want ErrInvalidOption", name, err)
		}
		if _, err := transport.NewSubscriber(d, o); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("NewSubscriber with an invalid %s: err %v, want ErrInvalidOption", name, err)
		}
	}
	if _, err := transport.NewPublisher(nil); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("NewPublisher(nil): %v", err)
	}
	if _, err := transport.NewSubscriber(nil); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("NewSubscriber(nil): %v", err)
	}
	tr := newTransport(t, d)
	if _, err := tr.Subscribe(context.Background(), "a.b", eventkit.WithBuffer(-1)); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("Subscribe with WithBuffer(-1): %v, want ErrInvalidOption", err)
	}
}

func TestCapabilitiesRefused(t *testing.T) {
	ctx := context.Background()
	tr := newTransport(t, newFake(eventkit.CapNack))
	if c := eventkit.CapabilitiesOf(tr); c != eventkit.CapNack {
		t.Errorf("CapabilitiesOf = %s, want nack", c)
	}
	for _, tc := range []struct {
		pattern string
		opts    []eventkit.SubscribeOption
		missing eventkit.Capabilities
	}{
		{"a.*", nil, eventkit.CapWildcards},
		{"a.b", []eventkit.SubscribeOption{eventkit.WithGroup("g")}, eventkit.CapConsumerGroups},
		{"a.>", []eventkit.SubscribeOption{eventkit.WithGroup("g")}, eventkit.CapWildcards | eventkit.CapConsumerGroups},
		{"a.b", []eventkit.SubscribeOption{eventkit.Require(eventkit.CapNack | eventkit.CapNackDelay)}, eventkit.CapNackDelay},
		{"a.b", []eventkit.SubscribeOption{eventkit.StartAt(time.Unix(1, 0))}, eventkit.CapStartAtTime},
		{"a.b", []eventkit.SubscribeOption{eventkit.StartAtPosition("7")}, eventkit.CapStartAtPosition},
	} {
		_, err := tr.Subscribe(ctx, tc.pattern, tc.opts...)
		var ce *eventkit.CapabilityError
		if !errors.As(err, &ce) || !errors.Is(err, eventkit.ErrUnsupported) || ce.Missing != tc.missing || ce.Transport != "fake" {
			t.Errorf("Subscribe(%q): err %v, want a CapabilityError missing %s", tc.pattern, err, tc.missing)
		}
	}
	// What the transport has is granted; Require is not passed on.
	s := testkit.Subscribe(t, ctx, tr, "a.b", eventkit.Require(eventkit.CapNack))
	_ = s.Close()
	// FromStart is refused only by a persistent transport that cannot seek.
	if s, err := tr.Subscribe(ctx, "a.b", eventkit.FromStart()); err != nil {
		t.Errorf("FromStart on a transport that keeps nothing: %v", err)
	} else {
		_ = s.Close()
	}
	ptr := newTransport(t, newFake(eventkit.CapPersistent))
	if _, err := ptr.Subscribe(ctx, "a.b", eventkit.FromStart()); !errors.Is(err, eventkit.ErrUnsupported) {
		t.Errorf("FromStart on a persistent transport without from-start: %v", err)
	}
	// Two starting points are a mistake, whatever the transport can do.
	all := newTransport(t, newFake(eventkit.CapPersistent|eventkit.CapFromStart|eventkit.CapStartAtTime|eventkit.CapStartAtPosition))
	if _, err := all.Subscribe(ctx, "a.b", eventkit.FromStart(), eventkit.StartAt(time.Unix(1, 0))); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("FromStart with StartAt: %v, want ErrInvalidOption", err)
	}
	if _, err := all.Subscribe(ctx, "a.b", eventkit.StartAtPosition("1"), eventkit.StartAt(time.Unix(1, 0))); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("StartAtPosition with StartAt: %v, want ErrInvalidOption", err)
	}
}

func newEvent(id string) event.Event { return eventkittest.NewEvent(id) }

func receive(t *testing.T, s eventkit.Subscription, n int) []*eventkit.Message {
	t.Helper()
	return testkit.Take(t, s, n, 10*time.Second)
}

// subscribe subscribes tr to pattern, with opts.
func subscribe(t *testing.T, tr *transport.Transport, pattern string, opts ...eventkit.SubscribeOption) eventkit.Subscription {
	t.Helper()
	return testkit.Subscribe(t, context.Background(), tr, pattern, opts...)
}

// deliverOne subscribes to name, publishes event "1" to it, and returns
// the subscription and the message it received.
func deliverOne(t *testing.T, tr *transport.Transport, name string) (eventkit.Subscription, *eventkit.Message) {
	t.Helper()
	s := subscribe(t, tr, name)
	if err := tr.Publish(context.Background(), name, newEvent("1")); err != nil {
		t.Fatal(err)
	}
	return s, receive(t, s, 1)[0]
}

// TestNackRefusedWithoutCapability checks that a Nack on a transport that
// cannot nack is refused, and neither nacks nor acks the message.
func TestNackRefusedWithoutCapability(t *testing.T) {
	d := newFake(0)
	tr := newTransport(t, d)
	s, m := deliverOne(t, tr, "n.a")
	if err := m.Nack(errBoom); !errors.Is(err, eventkit.ErrUnsupported) {
		t.Fatalf("Nack: %v, want ErrUnsupported", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fs := d.lastSub(t)
	if a, n, _ := fs.counts(); a != 0 || n != 0 {
		t.Errorf("after a refused nack, the driver got %d acks and %d nacks, want none", a, n)
	}
}

func TestNackDelayRefusedWithoutCapability(t *testing.T) {
	ctx := context.Background()
	d := newFake(eventkit.CapNack)
	tr := newTransport(t, d)
	s, m := deliverOne(t, tr, "n.b")
	if err := m.NackAfter(errBoom, time.Second); !errors.Is(err, eventkit.ErrUnsupported) {
		t.Fatalf("NackAfter: %v, want ErrUnsupported", err)
	}
	if err := tr.Publish(ctx, "n.b", newEvent("2")); err != nil {
		t.Fatal(err)
	}
	m = receive(t, s, 1)[0]
	if err := m.Nack(errBoom); err != nil {
		t.Fatalf("Nack without delay: %v", err)
	}
	if m := receive(t, s, 1)[0]; m.Event.ID() != "2" || m.Attempt != 2 {
		t.Fatalf("redelivery %s attempt %d", m.Event.ID(), m.Attempt)
	}
}

func (d *fakeDriver) lastSub(t *testing.T) *fakeSub {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last == nil {
		t.Fatal("no subscription opened")
	}
	return d.last
}

func TestTransientReceiveErrorRetried(t *testing.T) {
	ctx := context.Background()
	d := newFake(allCaps)
	tr := newTransport(t, d)
	s := subscribe(t, tr, "r.a")
	fs := d.lastSub(t)
	fs.recvErrs <- errBoom
	fs.recvErrs <- context.DeadlineExceeded // a driver's own timeout is transient
	if err := tr.Publish(ctx, "r.a", newEvent("1")); err != nil {
		t.Fatal(err)
	}
	_ = receive(t, s, 1)[0].Ack()
	if err := s.Err(); err != nil {
		t.Fatalf("Err after transient failures: %v", err)
	}
}

func TestPermanentReceiveErrorEndsSubscription(t *testing.T) {
	ctx := context.Background()
	d := newFake(allCaps)
	tr := newTransport(t, d)
	s := subscribe(t, tr, "r.b")
	d.lastSub(t).recvErrs <- driver.Permanent(errBoom)
	if err := tr.Publish(ctx, "r.b", newEvent("1")); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-s.Messages():
		for ok {
			_, ok = <-s.Messages()
		}
	case <-time.After(10 * time.Second):
		t.Fatal("subscription still open after a permanent error")
	}
	if err := s.Err(); !errors.Is(err, errBoom) {
		t.Fatalf("Err = %v, want the driver's error", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Err(); !errors.Is(err, errBoom) {
		t.Fatalf("Err after Close = %v, want the driver's error", err)
	}
}

// TestCloseFlushesAcks checks that every ack made before Close reaches the
// driver, that the driver saw every delivery, and that later settlements
// return ErrClosed.
func TestCloseFlushesAcks(t *testing.T) {
	ctx := context.Background()
	d := newFake(allCaps)
	tr := newTransport(t, d)
	s := subscribe(t, tr, "c.a", eventkit.WithBuffer(7))
	fs := d.lastSub(t)
	const n = 500
	events := make([]event.Event, n)
	for i := range events {
		events[i] = newEvent(strconv.Itoa(i))
	}
	if err := tr.Publish(ctx, "c.a", events...); err != nil {
		t.Fatal(err)
	}
	ms := receive(t, s, n)
	for i, m := range ms {
		if m.Event.ID() != strconv.Itoa(i) || m.Topic != "c.a" || m.Attempt != 1 {
			t.Fatalf("message %d: id %s topic %s attempt %d", i, m.Event.ID(), m.Topic, m.Attempt)
		}
		if _, ok := m.Raw().(*fakeItem); !ok {
			t.Fatalf("Raw = %T, want the driver's message", m.Raw())
		}
		if i < n-1 {
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if a, _, dl := fs.counts(); a != n-1 || dl != n {
		t.Errorf("driver got %d acks and %d deliveries, want %d and %d", a, dl, n-1, n)
	}
	if err := ms[n-1].Ack(); !errors.Is(err, eventkit.ErrClosed) {
		t.Errorf("Ack after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestInlineAck: a driver.InlineAcker is acked from Ack itself (the ack is
// the driver's when Ack returns, and its error is Ack's), never through
// SendAcks, and not after Close.
func TestInlineAck(t *testing.T) {
	ctx := context.Background()
	d := newFake(allCaps)
	d.inline = true
	tr := newTransport(t, d)
	s := subscribe(t, tr, "i.a")
	fs := d.lastSub(t)
	if err := tr.Publish(ctx, "i.a", newEvent("1"), newEvent("2"), newEvent("3")); err != nil {
		t.Fatal(err)
	}
	ms := receive(t, s, 3)
	if err := ms[0].Ack(); err != nil {
		t.Fatal(err)
	}
	if a, _, _ := fs.counts(); a != 1 {
		t.Fatalf("driver has %d acks when Ack returned, want 1", a)
	}
	d.ackErr = errBoom
	if err := ms[1].Ack(); !errors.Is(err, errBoom) || !strings.Contains(err.Error(), `subscription "i.a": ack`) {
		t.Errorf("Ack with a failing driver: %v, want errBoom naming the subscription", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ms[2].Ack(); !errors.Is(err, eventkit.ErrClosed) {
		t.Errorf("Ack after Close: %v, want ErrClosed", err)
	}
	if a, _, _ := fs.counts(); a != 2 {
		t.Errorf("driver got %d acks, want 2", a)
	}
}

func TestCloseReportsEveryError(t *testing.T) {
	ctx := context.Background()
	d := newFake(allCaps)
	subErr, drvErr := errors.New("subscription close failed"), errors.New("driver close failed")
	d.closeErr = drvErr
	tr, err := transport.New(d, d, transport.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Subscribe(ctx, "e.a"); err != nil {
		t.Fatal(err)
	}
	d.lastSub(t).closeErr = subErr
	err = tr.Close()
	if !errors.Is(err, subErr) || !errors.Is(err, drvErr) {
		t.Fatalf("Close = %v, want both errors", err)
	}
	if n := d.closeCalls.Load(); n != 1 {
		t.Fatalf("driver closed %d times, want once", n)
	}
}

// TestShutdownBoundedByContext checks that Shutdown returns when its
// context ends, even if the driver's Close hangs, and that the stop then
// completes.
func TestShutdownBoundedByContext(t *testing.T) {
	d := newFake(allCaps)
	d.closeBlock = make(chan struct{})
	tr, err := transport.New(d, d, transport.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := tr.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if err := tr.Publish(context.Background(), "a.b", newEvent("1")); !errors.Is(err, eventkit.ErrClosed) {
		t.Fatalf("Publish after Shutdown: %v", err)
	}
	close(d.closeBlock)
	if err := tr.Close(); err != nil {
		t.Fatalf("Close after the driver returned: %v", err)
	}
}

func TestPublish(t *testing.T) {
	ctx := context.Background()
	d := newFake(allCaps)
	tr := newTransport(t, d)
	bad := newEvent("x")
	bad.SetType("")
	var ve *eventkit.ValidationError
	if err := tr.Publish(ctx, "a.b", newEvent("ok"), bad); !errors.As(err, &ve) {
		t.Errorf("Publish of an invalid event: %v", err)
	}
	if err := tr.Publish(ctx, "a.*", newEvent("ok")); err == nil {
		t.Error("Publish to a pattern succeeded")
	}
	if err := tr.Publish(ctx, "a.b"); err != nil {
		t.Errorf("Publish of nothing: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := tr.Publish(cctx, "a.b", newEvent("ok")); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled context: %v", err)
	}
	if n := d.sent.Load(); n != 0 {
		t.Fatalf("the driver was called %d times, want 0", n)
	}
	d.sendErr = errBoom
	if err := tr.Publish(ctx, "a.b", newEvent("ok")); !errors.Is(err, errBoom) {
		t.Errorf("Publish: %v, want the driver's error", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, "a.b", newEvent("ok")); !errors.Is(err, eventkit.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if _, err := tr.Subscribe(ctx, "a.b"); !errors.Is(err, eventkit.ErrClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
}

// TestConcurrentClose publishes, subscribes, acks and nacks from many
// goroutines while the transport closes: run with -race; the fake driver
// counts every call the contract forbids (a send or an open after Close,
// a call on a closed subscription, concurrent receives).
func TestConcurrentClose(t *testing.T) {
	for round := range 20 {
		d := newFake(allCaps)
		tr, err := transport.New(d, d, transport.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					if err := tr.Publish(ctx, "race.t", newEvent(strconv.Itoa(i))); err != nil {
						return
					}
				}
			})
			wg.Go(func() {
				opts := []eventkit.SubscribeOption{eventkit.WithBuffer(g + 1)}
				if g%2 == 0 {
					opts = append(opts, eventkit.WithGroup("g"))
				}
				s, err := tr.Subscribe(ctx, "race.*", opts...)
				if err != nil {
					return
				}
				for m := range s.Messages() {
					if m.Attempt < 3 && g == 1 {
						_ = m.NackAfter(errBoom, time.Millisecond)
					} else {
						_ = m.Ack()
					}
				}
			})
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		if err := tr.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
		cancel()
		wg.Wait()
		if v := d.violations.Load(); v != 0 {
			t.Fatalf("round %d: the transport package broke the driver contract %d times", round, v)
		}
		if n := d.closeCalls.Load(); n != 1 {
			t.Fatalf("round %d: driver closed %d times", round, n)
		}
		if live := d.live(); len(live) != 0 {
			t.Fatalf("round %d: %d driver subscriptions left open", round, len(live))
		}
	}
}

// TestContextEndsSubscription checks that the subscribing context bounds
// the subscription, which then closes its driver subscription.
func TestContextEndsSubscription(t *testing.T) {
	d := newFake(allCaps)
	tr := newTransport(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	s := testkit.Subscribe(t, ctx, tr, "x.y")
	cancel()
	for range s.Messages() {
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err after the context ended: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(d.live()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the driver subscription is still open")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSharedDriverClosedAfterPublishes checks that a driver that is both
// publisher and subscriber is closed only after the last publish returned,
// even when Shutdown's context ends while a publish is in flight.
func TestSharedDriverClosedAfterPublishes(t *testing.T) {
	d := newFake(allCaps)
	d.sendBlock = make(chan struct{})
	tr, err := transport.New(d, d, transport.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	published := make(chan error)
	go func() { published <- tr.Publish(context.Background(), "a.b", newEvent("1")) }()
	for d.sending.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := tr.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a publish in flight: %v, want DeadlineExceeded", err)
	}
	// Give a wrong implementation time to close the driver now.
	time.Sleep(50 * time.Millisecond)
	close(d.sendBlock)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if v := d.violations.Load(); v != 0 {
		t.Fatalf("driver closed with a publish in flight (%d violations)", v)
	}
	if n := d.closeCalls.Load(); n != 1 {
		t.Fatalf("driver closed %d times", n)
	}
}

func TestOpenErrorReturned(t *testing.T) {
	d := newFake(allCaps)
	d.openErr = errBoom
	tr := newTransport(t, d)
	if _, err := tr.Subscribe(context.Background(), "a.b"); !errors.Is(err, errBoom) {
		t.Fatalf("Subscribe: %v, want the driver's error", err)
	}
	d.openErr = nil
	s := testkit.Subscribe(t, context.Background(), tr, "a.b", eventkit.WithGroup("g"))
	if c := eventkit.CapabilitiesOf(s); c != allCaps {
		t.Errorf("CapabilitiesOf(subscription) = %s", c)
	}
}

// nopPublisher is a driver.Publisher that sends nothing anywhere.
type nopPublisher struct{}

func (nopPublisher) Capabilities() eventkit.Capabilities                    { return 0 }
func (nopPublisher) SendBatch(context.Context, string, []event.Event) error { return nil }
func (nopPublisher) Close() error                                           { return nil }

// TestPublishDoesNotAllocate: Publish itself allocates nothing, and its
// events do not escape, so a caller of the concrete method does not
// allocate the variadic slice either.
func TestPublishDoesNotAllocate(t *testing.T) {
	p, err := transport.NewPublisher(nopPublisher{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	e := newEvent("1")
	if n := testing.AllocsPerRun(100, func() {
		if err := p.Publish(ctx, "alloc.a", e); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Publish of one event: %v allocations, want 0", n)
	}
}

// stoppingDriver is a fake driver whose publishes wait until the stop
// begins, as a publish waiting for a reconnect does.
type stoppingDriver struct {
	*fakeDriver
	entered  chan struct{} // closed by SendBatch
	stopping chan struct{} // closed by the first Stopping
	calls    int
}

func (d *stoppingDriver) Stopping(context.Context) {
	d.calls++
	if d.calls == 1 {
		close(d.stopping)
	}
}

func (d *stoppingDriver) SendBatch(ctx context.Context, name string, events []event.Event) error {
	close(d.entered)
	<-d.stopping
	return eventkit.ErrClosed
}

var _ driver.Stopper = (*stoppingDriver)(nil)

// TestShutdownTellsStopper: Shutdown calls a driver.Stopper's Stopping (once
// for a driver that is both publisher and subscriber) before it waits for
// the publishes in flight, so a publish the driver holds returns, and the
// stop ends well within its bound.
func TestShutdownTellsStopper(t *testing.T) {
	d := &stoppingDriver{fakeDriver: newFake(allCaps), entered: make(chan struct{}), stopping: make(chan struct{})}
	tr, err := transport.New(d, d, transport.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	published := make(chan error, 1)
	go func() { published <- tr.Publish(context.Background(), "a.b", newEvent("1")) }()
	<-d.entered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := <-published; !errors.Is(err, eventkit.ErrClosed) {
		t.Fatalf("the held publish returned %v, want ErrClosed", err)
	}
	if d.calls != 1 {
		t.Fatalf("Stopping called %d times, want 1", d.calls)
	}
}

// seekDriver is a fakeDriver that is a driver.Seeker and records its
// calls.
type seekDriver struct {
	*fakeDriver
	pattern string
	got     []driver.Config
}

func (d *seekDriver) Seek(_ context.Context, pattern string, cfg driver.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pattern = pattern
	d.got = append(d.got, cfg)
	return nil
}

func TestSeek(t *testing.T) {
	ctx := context.Background()
	at := time.Unix(1700000000, 0)
	caps := eventkit.CapPersistent | eventkit.CapConsumerGroups | eventkit.CapFromStart | eventkit.CapStartAtTime | eventkit.CapStartAtPosition
	sd := &seekDriver{fakeDriver: newFake(caps)}
	tr, err := transport.New(sd, sd, transport.WithName("fake"), transport.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var _ eventkit.Seeker = tr
	for _, to := range []eventkit.SubscribeOption{eventkit.FromStart(), eventkit.StartAt(at), eventkit.StartAtPosition("0:7")} {
		if err := tr.Seek(ctx, "a.b", "g", to); err != nil {
			t.Fatalf("Seek: %v", err)
		}
	}
	want := []driver.Config{{Group: "g", FromStart: true}, {Group: "g", StartTime: at}, {Group: "g", StartPosition: "0:7"}}
	if len(sd.got) != len(want) || sd.pattern != "a.b" {
		t.Fatalf("driver saw %d seeks of %q, want %d of a.b", len(sd.got), sd.pattern, len(want))
	}
	for i, w := range want {
		if g := sd.got[i]; g.Group != w.Group || g.FromStart != w.FromStart || !g.StartTime.Equal(w.StartTime) || g.StartPosition != w.StartPosition || g.MaxBatch != 0 || g.Options != nil {
			t.Errorf("seek %d: driver got %+v, want %+v", i, g, w)
		}
	}
	// Mistakes are refused before the driver sees them.
	for _, tc := range []struct {
		name, pattern, group string
		to                   eventkit.SubscribeOption
	}{
		{"no group", "a.b", "", eventkit.FromStart()},
		{"no starting point", "a.b", "g", nil},
		{"not a starting point", "a.b", "g", eventkit.WithBuffer(3)},
		{"a group as starting point", "a.b", "g", eventkit.WithGroup("h")},
	} {
		if err := tr.Seek(ctx, tc.pattern, tc.group, tc.to); !errors.Is(err, eventkit.ErrInvalidOption) {
			t.Errorf("%s: %v, want ErrInvalidOption", tc.name, err)
		}
	}
	two := func(c *eventkit.SubscribeConfig) { eventkit.FromStart()(c); eventkit.StartAtPosition("1")(c) }
	if err := tr.Seek(ctx, "a.b", "g", two); !errors.Is(err, eventkit.ErrInvalidOption) {
		t.Errorf("two starting points: %v, want ErrInvalidOption", err)
	}
	if err := tr.Seek(ctx, "a..b", "g", eventkit.FromStart()); err == nil {
		t.Error("invalid pattern accepted")
	}
	if len(sd.got) != len(want) {
		t.Errorf("the driver saw %d seeks, want %d", len(sd.got), len(want))
	}
	// Without the capability, or without a driver.Seeker: refused.
	timeOnly := &seekDriver{fakeDriver: newFake(eventkit.CapPersistent | eventkit.CapConsumerGroups | eventkit.CapStartAtTime)}
	tt, err := transport.New(timeOnly, timeOnly, transport.WithName("fake"), transport.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	var ce *eventkit.CapabilityError
	if err := tt.Seek(ctx, "a.b", "g", eventkit.StartAtPosition("1")); !errors.As(err, &ce) || ce.Missing != eventkit.CapStartAtPosition {
		t.Errorf("StartAtPosition without the capability: %v", err)
	}
	plain := newTransport(t, newFake(caps))
	if err := plain.Seek(ctx, "a.b", "g", eventkit.StartAt(at)); !errors.Is(err, eventkit.ErrUnsupported) {
		t.Errorf("Seek on a driver that is no driver.Seeker: %v", err)
	}
	_ = tr.Close()
	if err := tr.Seek(ctx, "a.b", "g", eventkit.FromStart()); !errors.Is(err, eventkit.ErrClosed) {
		t.Errorf("Seek after Close: %v, want ErrClosed", err)
	}
}
