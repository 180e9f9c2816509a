package saga_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/saga"
)

// order is the state of the test saga.
type order struct {
	Items    int      `json:"items"`
	Reserved bool     `json:"reserved"`
	Charged  bool     `json:"charged"`
	Notes    []string `json:"notes,omitempty"`
}

// metrics counts what a saga reports.
type metrics struct {
	mu                                   sync.Mutex
	steps, failed, compensated, timeouts map[string]int
	active                               int
}

func newMetrics() *metrics {
	return &metrics{steps: map[string]int{}, failed: map[string]int{}, compensated: map[string]int{}, timeouts: map[string]int{}}
}

func (m *metrics) StepDone(_, step string, d time.Duration, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d < 0 {
		panic("negative step duration")
	}
	m.steps[fmt.Sprintf("%s:%v", step, err != nil)]++
}
func (m *metrics) Compensated(_, step string) { m.mu.Lock(); m.compensated[step]++; m.mu.Unlock() }
func (m *metrics) Failed(_, step string)      { m.mu.Lock(); m.failed[step]++; m.mu.Unlock() }
func (m *metrics) TimedOut(name string)       { m.mu.Lock(); m.timeouts[name]++; m.mu.Unlock() }
func (m *metrics) Active(_ string, d int)     { m.mu.Lock(); m.active += d; m.mu.Unlock() }

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration)     { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }
func newClock() *clock                   { return &clock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)} }
func cmd(typ string) event.Event         { e := event.New(); e.SetType(typ); return e }
func ev(id, typ, key string) event.Event { return evData(id, typ, key, nil) }

func evData(id, typ, key string, data any) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetSource("test")
	e.SetType(typ)
	e.SetExtension("correlationid", key)
	if data != nil {
		_ = e.SetData(event.ApplicationJSON, data)
	}
	return e
}

// orderStep is a step of the test saga: apply changes the state, then the
// step emits its message, calls the hook (the crash tests hang there) and
// fails with fail or completes; undo is its compensation's message.
type orderStep struct {
	typ, name        string
	starts, complete bool
	apply            func(*order, event.Event)
	emit, undo       [2]string // topic and type; "" for none
	fail             error
}

// hook is called by the test saga's steps and compensations after they
// emitted, with "step:<name>" or "compensation:<name>" and the instance.
type hook func(point, id string)

func (st orderStep) step(h hook) saga.Step[order] {
	out := saga.Step[order]{Name: st.name, Starts: st.starts,
		Do: func(_ context.Context, c *saga.Context[order], e event.Event) error {
			st.apply(c.State, e)
			c.Emit(st.emit[0], cmd(st.emit[1]))
			h("step:"+st.name, c.ID)
			if st.complete {
				c.Complete()
			}
			return st.fail
		}}
	if st.undo[0] != "" {
		out.Compensate = func(_ context.Context, c *saga.Context[order]) error {
			c.Emit(st.undo[0], cmd(st.undo[1]))
			h("compensation:"+st.name, c.ID)
			return nil
		}
	}
	return out
}

// orderSteps: placed → reserve stock (undo: release); stock.reserved →
// charge (undo: refund); payment.charged → confirm and complete;
// payment.failed → fail (after changing the state and emitting a message,
// both to be dropped).
var orderSteps = []orderStep{
	{typ: "order.placed", name: "reserve", starts: true, emit: [2]string{"stock", "stock.reserve"}, undo: [2]string{"stock", "stock.release"},
		apply: func(o *order, e event.Event) {
			var in struct{ Items int }
			_ = e.DataAs(&in)
			o.Items = in.Items
		}},
	{typ: "stock.reserved", name: "charge", emit: [2]string{"payments", "payment.charge"}, undo: [2]string{"payments", "payment.refund"},
		apply: func(o *order, _ event.Event) { o.Reserved = true }},
	{typ: "payment.charged", name: "confirm", complete: true, emit: [2]string{"orders", "order.confirm"},
		apply: func(o *order, _ event.Event) { o.Charged = true }},
	{typ: "payment.failed", name: "payment-failed", emit: [2]string{"orders", "order.dropped"}, fail: errors.New("card declined"),
		apply: func(o *order, _ event.Event) { o.Notes = append(o.Notes, "dropped") }},
}

// orderSaga returns the test saga (orderSteps).
func orderSaga(t testing.TB, store saga.Store, opts ...saga.Option) *saga.Saga[order] {
	t.Helper()
	return hookedOrderSaga(t, store, func(string, string) {}, opts...)
}

// hookedOrderSaga returns the test saga, whose steps call h.
func hookedOrderSaga(t testing.TB, store saga.Store, h hook, opts ...saga.Option) *saga.Saga[order] {
	t.Helper()
	s, err := saga.New[order]("orders", store, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range orderSteps {
		if err := s.On(st.typ, st.step(h)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// emitted returns "topic:type" of the outbox's pending messages of
// instance id (by the correlation extension), in order.
func emitted(store *memory.SagaStore, id string) []string {
	var out []string
	for _, r := range store.Outbox().Pending() {
		if r.Event.Extensions()["correlationid"] == id {
			out = append(out, r.Topic+":"+r.Event.Type())
		}
	}
	return out
}

func handle(t *testing.T, s *saga.Saga[order], events ...event.Event) {
	t.Helper()
	for _, e := range events {
		if err := s.HandleEvent(context.Background(), e); err != nil {
			t.Fatalf("HandleEvent(%s %s): %v", e.Type(), e.ID(), err)
		}
	}
}

func get(t *testing.T, s *saga.Saga[order], id string) saga.Instance[order] {
	t.Helper()
	in, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func kinds(in saga.Instance[order]) string {
	var k []string
	for _, e := range in.History {
		k = append(k, e.Kind+":"+e.Step)
	}
	return strings.Join(k, " ")
}

func TestHappyPath(t *testing.T) {
	store, m := memory.NewSagaStore(), newMetrics()
	s := orderSaga(t, store, saga.WithMetrics(m))
	handle(t, s, evData("e1", "order.placed", "o1", map[string]int{"items": 3}), ev("e2", "stock.reserved", "o1"), ev("e3", "payment.charged", "o1"))
	in := get(t, s, "o1")
	if in.Status != saga.Completed || in.Version != 3 || !in.State.Reserved || !in.State.Charged || in.State.Items != 3 {
		t.Fatalf("instance = %+v; want completed at version 3 with its state", in)
	}
	if got, want := kinds(in), "step:reserve step:charge step:confirm completed:"; got != want {
		t.Fatalf("history = %s; want %s", got, want)
	}
	if got, want := emitted(store, "o1"), []string{"stock:stock.reserve", "payments:payment.charge", "orders:order.confirm"}; !slices.Equal(got, want) {
		t.Fatalf("emitted %v; want %v", got, want)
	}
	for i, r := range store.Outbox().Pending() {
		if want := fmt.Sprintf("orders/o1/%d/0", i+1); r.Event.ID() != want || r.Event.Source() != "eventkit/saga/orders" {
			t.Fatalf("message %d has id %q, source %q; want id %q and the saga's source", i, r.Event.ID(), r.Event.Source(), want)
		}
	}
	if m.active != 0 || m.steps["reserve:false"] != 1 || m.steps["confirm:false"] != 1 || len(m.failed) != 0 {
		t.Fatalf("metrics: active %d, steps %v, failed %v; want 0 active, one run of each step, no failure", m.active, m.steps, m.failed)
	}
	// A late event on a completed instance is ignored.
	handle(t, s, ev("e4", "payment.failed", "o1"))
	if in := get(t, s, "o1"); in.Version != 3 {
		t.Fatalf("late event changed the completed instance: version %d", in.Version)
	}
}

func TestFailureCompensatesInReverseOrder(t *testing.T) {
	store, m := memory.NewSagaStore(), newMetrics()
	s := orderSaga(t, store, saga.WithMetrics(m))
	handle(t, s, ev("e1", "order.placed", "o1"), ev("e2", "stock.reserved", "o1"), ev("e3", "payment.failed", "o1"))
	in := get(t, s, "o1")
	if in.Status != saga.Compensated || len(in.Done) != 0 || len(in.State.Notes) != 0 || !in.Wake.IsZero() {
		t.Fatalf("instance = %+v; want compensated, nothing left to undo, the failed step's state dropped", in)
	}
	want := []string{"stock:stock.reserve", "payments:payment.charge", "payments:payment.refund", "stock:stock.release"}
	if got := emitted(store, "o1"); !slices.Equal(got, want) {
		t.Fatalf("emitted %v; want %v (compensations in reverse order, the failed step's message dropped)", got, want)
	}
	if got, want := kinds(in), "step:reserve step:charge failed:payment-failed compensated:charge compensated:reserve ended:"; got != want {
		t.Fatalf("history = %s; want %s", got, want)
	}
	if e := in.History[2]; e.Error != "card declined" || e.EventID != "e3" {
		t.Fatalf("failure entry = %+v; want the step's error and event", e)
	}
	if m.failed["payment-failed"] != 1 || m.compensated["charge"] != 1 || m.compensated["reserve"] != 1 || m.active != 0 {
		t.Fatalf("metrics: failed %v, compensated %v, active %d", m.failed, m.compensated, m.active)
	}
}

func TestRedeliveredEventHandledOnce(t *testing.T) {
	store := memory.NewSagaStore()
	s := orderSaga(t, store)
	placed, reserved := ev("e1", "order.placed", "o1"), ev("e2", "stock.reserved", "o1")
	handle(t, s, placed, placed, reserved, placed, reserved)
	if in := get(t, s, "o1"); in.Version != 2 {
		t.Fatalf("version %d after two events delivered five times; want 2", in.Version)
	}
	if got := emitted(store, "o1"); len(got) != 2 {
		t.Fatalf("emitted %v; want each step's message once", got)
	}
	// The same event id on another instance is another event.
	handle(t, s, ev("e1", "order.placed", "o2"))
	if got := emitted(store, "o2"); len(got) != 1 {
		t.Fatalf("emitted for o2 %v; want 1", got)
	}
}

func TestDeadlineCompensates(t *testing.T) {
	store, m, clk := memory.NewSagaStore(), newMetrics(), newClock()
	s := orderSaga(t, store, saga.WithMetrics(m), saga.WithClock(clk.Now), saga.WithTimeout(time.Minute))
	ctx := context.Background()
	handle(t, s, ev("e1", "order.placed", "o1"), ev("e2", "stock.reserved", "o1"))
	clk.Add(59 * time.Second)
	if n, err := s.FireDue(ctx); err != nil || n != 0 {
		t.Fatalf("FireDue before the deadline = %d, %v; want 0, nil", n, err)
	}
	clk.Add(time.Second)
	// Another Saga value on the same store: the timer is in the store, not
	// in the process that set it.
	restarted := orderSaga(t, store, saga.WithMetrics(m), saga.WithClock(clk.Now))
	if n, err := restarted.FireDue(ctx); err != nil || n != 1 {
		t.Fatalf("FireDue at the deadline = %d, %v; want 1, nil", n, err)
	}
	in := get(t, s, "o1")
	if in.Status != saga.Compensated || !strings.Contains(kinds(in), "timeout: compensated:charge compensated:reserve") {
		t.Fatalf("instance %s, history %s; want compensated after a timeout", in.Status, kinds(in))
	}
	if got := emitted(store, "o1"); len(got) != 4 || got[2] != "payments:payment.refund" {
		t.Fatalf("emitted %v; want the two steps and their compensations", got)
	}
	if m.timeouts["orders"] != 1 || len(m.failed) != 0 {
		t.Fatalf("metrics: timeouts %v, failed %v; want one timeout, no failure", m.timeouts, m.failed)
	}
	handle(t, s, ev("e3", "payment.charged", "o1"))
	if get(t, s, "o1").Version != in.Version {
		t.Fatal("an event after the timeout changed the instance")
	}
}

func TestStepDeadline(t *testing.T) {
	store, clk := memory.NewSagaStore(), newClock()
	s, _ := saga.New[order]("steps", store, saga.WithClock(clk.Now))
	_ = s.On("a", saga.Step[order]{Starts: true, Do: func(_ context.Context, c *saga.Context[order], _ event.Event) error {
		c.SetDeadline(clk.Now().Add(time.Hour))
		return nil
	}})
	_ = s.On("b", saga.Step[order]{Do: func(_ context.Context, c *saga.Context[order], _ event.Event) error {
		c.SetDeadline(time.Time{})
		return nil
	}})
	ctx := context.Background()
	_ = s.HandleEvent(ctx, ev("1", "a", "k"))
	if in, _ := s.Get(ctx, "k"); !in.Deadline.Equal(clk.Now().Add(time.Hour)) || !in.Wake.Equal(in.Deadline) {
		t.Fatalf("deadline %v, wake %v; want both an hour from now", in.Deadline, in.Wake)
	}
	_ = s.HandleEvent(ctx, ev("2", "b", "k"))
	clk.Add(2 * time.Hour)
	if n, err := s.FireDue(ctx); n != 0 || err != nil {
		t.Fatalf("FireDue after the deadline was cleared = %d, %v; want 0", n, err)
	}
}

func TestTransientErrorRedelivers(t *testing.T) {
	store := memory.NewSagaStore()
	s, _ := saga.New[order]("t", store)
	calls := 0
	_ = s.On("start", saga.Step[order]{Starts: true, Do: func(_ context.Context, c *saga.Context[order], _ event.Event) error {
		if calls++; calls == 1 {
			return saga.Transient(errors.New("database busy"))
		}
		c.Emit("x", cmd("done"))
		return nil
	}})
	e := ev("e1", "start", "k")
	if err := s.HandleEvent(context.Background(), e); err == nil || !strings.Contains(err.Error(), "database busy") {
		t.Fatalf("HandleEvent with a transient step error = %v; want that error", err)
	}
	if _, err := s.Get(context.Background(), "k"); !errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("Get after a transient error = %v; want ErrNotFound (nothing saved)", err)
	}
	if err := s.HandleEvent(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if in := get(t, s, "k"); in.Status != saga.Running || len(emitted(store, "k")) != 1 {
		t.Fatalf("after redelivery: %+v, emitted %v", in, emitted(store, "k"))
	}
}

func TestCompensationErrorBacksOff(t *testing.T) {
	store, clk := memory.NewSagaStore(), newClock()
	s, _ := saga.New[order]("c", store, saga.WithClock(clk.Now), saga.WithCompensationBackoff(time.Second, 4*time.Second))
	fails := 3
	_ = s.On("start", saga.Step[order]{Starts: true,
		Do: func(context.Context, *saga.Context[order], event.Event) error { return nil },
		Compensate: func(_ context.Context, c *saga.Context[order]) error {
			if fails--; fails >= 0 {
				c.Emit("x", cmd("not.committed"))
				return errors.New("broker down")
			}
			c.Emit("x", cmd("undo"))
			return nil
		}})
	_ = s.On("fail", saga.Step[order]{Do: func(context.Context, *saga.Context[order], event.Event) error { return errors.New("no") }})
	ctx := context.Background()
	handle(t, s, ev("e1", "start", "k"), ev("e2", "fail", "k"))
	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		in := get(t, s, "k")
		if in.Status != saga.Compensating || !in.Wake.Equal(clk.Now().Add(wait)) {
			t.Fatalf("after failure %d: status %s, wake in %v; want compensating, wake in %v", i+1, in.Status, in.Wake.Sub(clk.Now()), wait)
		}
		clk.Add(wait - time.Millisecond)
		if n, _ := s.FireDue(ctx); n != 0 {
			t.Fatalf("FireDue before the backoff ended handled %d instances", n)
		}
		clk.Add(time.Millisecond)
		_, _ = s.FireDue(ctx)
	}
	if in := get(t, s, "k"); in.Status != saga.Compensated {
		t.Fatalf("status %s after the compensation succeeded; want compensated", in.Status)
	}
	if got := emitted(store, "k"); !slices.Equal(got, []string{"x:undo"}) {
		t.Fatalf("emitted %v; want only the successful compensation's message", got)
	}
}

func TestCorrelation(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  saga.Option
		ev   func() event.Event
	}{
		{"subject", saga.CorrelateBySubject(), func() event.Event { e := ev("1", "start", ""); e.SetSubject("k"); return e }},
		{"extension", saga.CorrelateByExtension("orderid"), func() event.Event { e := ev("1", "start", ""); e.SetExtension("orderid", "k"); return e }},
		{"function", saga.CorrelateBy(idSuffix), func() event.Event { return ev("id-k", "start", "") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := memory.NewSagaStore()
			s, _ := saga.New[order]("c", store, c.opt)
			_ = s.On("start", saga.Step[order]{Starts: true, Do: func(_ context.Context, sc *saga.Context[order], _ event.Event) error {
				sc.Emit("x", cmd("cmd"))
				return nil
			}})
			handle(t, s, c.ev(), ev("2", "start", "")) // the second has no key: ignored
			recs, _ := s.List(context.Background(), saga.Filter{})
			if len(recs) != 1 || recs[0].ID != "k" {
				t.Fatalf("instances %+v; want only k", recs)
			}
			out := store.Outbox().Pending()
			if _, has := out[0].Event.Extensions()["correlationid"]; has {
				t.Fatalf("emitted event has a correlationid extension although the saga does not correlate by it")
			}
		})
	}
}

func TestIgnoredEvents(t *testing.T) {
	store := memory.NewSagaStore()
	s := orderSaga(t, store)
	handle(t, s, ev("e1", "unknown.type", "o1"), ev("e2", "stock.reserved", "o1"))
	if recs, _ := s.List(context.Background(), saga.Filter{}); len(recs) != 0 {
		t.Fatalf("instances %+v; want none (no step for the type; a step that does not start)", recs)
	}
}

func TestListAndGet(t *testing.T) {
	s := orderSaga(t, memory.NewSagaStore())
	handle(t, s, ev("1", "order.placed", "a"), ev("2", "order.placed", "b"), ev("3", "stock.reserved", "b"), ev("4", "payment.charged", "b"))
	ctx := context.Background()
	running, err := s.List(ctx, saga.Filter{Status: saga.Running})
	if err != nil || len(running) != 1 || running[0].ID != "a" {
		t.Fatalf("List(running) = %+v, %v; want a", running, err)
	}
	all, _ := s.List(ctx, saga.Filter{})
	if len(all) != 2 || all[1].ID != "b" || !all[1].State.Charged || len(all[1].History) != 4 {
		t.Fatalf("List() = %+v; want a and b with b's state and history", all)
	}
	if _, err := s.Get(ctx, "zz"); !errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("Get(missing) = %v; want ErrNotFound", err)
	}
}

func TestInvalidConfiguration(t *testing.T) {
	store := memory.NewSagaStore()
	for name, c := range map[string]struct {
		name string
		opts []saga.Option
	}{
		"no name":         {"", nil},
		"no key function": {"s", []saga.Option{saga.CorrelateBy(nil)}},
		"negative":        {"s", []saga.Option{saga.WithTimeout(-1)}},
		"backoff":         {"s", []saga.Option{saga.WithCompensationBackoff(time.Second, time.Millisecond)}},
		"no metrics":      {"s", []saga.Option{saga.WithMetrics(nil)}},
	} {
		if _, err := saga.New[order](c.name, store, c.opts...); !errors.Is(err, saga.ErrInvalidOption) {
			t.Errorf("%s: New = %v; want ErrInvalidOption", name, err)
		}
	}
	if _, err := saga.New[order]("s", nil); !errors.Is(err, saga.ErrInvalidOption) {
		t.Errorf("New(nil store) = %v; want ErrInvalidOption", err)
	}
	s := orderSaga(t, store)
	do := func(context.Context, *saga.Context[order], event.Event) error { return nil }
	for _, c := range []struct {
		typ  string
		step saga.Step[order]
	}{{"order.placed", saga.Step[order]{Do: do}}, {"x", saga.Step[order]{Name: "reserve", Do: do}}, {"y", saga.Step[order]{}}, {"", saga.Step[order]{Do: do}}} {
		if err := s.On(c.typ, c.step); err == nil {
			t.Errorf("On(%q, %q) = nil; want an error", c.typ, c.step.Name)
		}
	}
}

// idSuffix is a correlation key function: what follows "id-" in the
// event's id, or no key.
func idSuffix(e event.Event) string {
	k, ok := strings.CutPrefix(e.ID(), "id-")
	if !ok {
		return ""
	}
	return k
}

// A step or compensation that emits an invalid message fails (the step's
// instance compensates; the compensation is retried) instead of making
// every save of the instance fail.
func TestInvalidEmittedMessageFailsTheStep(t *testing.T) {
	store := memory.NewSagaStore()
	s, _ := saga.New[order]("bad", store)
	undo := 0
	_ = s.On("start", saga.Step[order]{Starts: true,
		Do: func(context.Context, *saga.Context[order], event.Event) error { return nil },
		Compensate: func(_ context.Context, c *saga.Context[order]) error {
			if undo++; undo == 1 {
				c.Emit("not a topic", cmd("undo"))
			} else {
				c.Emit("x", cmd("undo"))
			}
			return nil
		}})
	_ = s.On("bad", saga.Step[order]{Do: func(_ context.Context, c *saga.Context[order], _ event.Event) error {
		c.Emit("x", event.New()) // no type
		return nil
	}})
	if err := s.HandleEvent(context.Background(), ev("e1", "start", "k")); err != nil {
		t.Fatal(err)
	}
	if err := s.HandleEvent(context.Background(), ev("e2", "bad", "k")); err != nil {
		t.Fatalf("HandleEvent(step emitting an invalid event) = %v; want nil (the step fails, the event is acked)", err)
	}
	in := get(t, s, "k")
	if in.Status != saga.Compensating || in.Attempts != 1 || !strings.Contains(in.History[1].Error, "invalid event") {
		t.Fatalf("instance %s, attempts %d, history %+v; want compensating after a failed step and a failed compensation", in.Status, in.Attempts, in.History)
	}
	if got := emitted(store, "k"); len(got) != 0 {
		t.Fatalf("emitted %v; want nothing yet", got)
	}
}

// A step that panics fails its instance (which compensates) and a
// compensation that panics is retried: no panic leaves HandleEvent or
// FireDue.
func TestPanicsBecomeFailures(t *testing.T) {
	store, clk := memory.NewSagaStore(), newClock()
	s, _ := saga.New[order]("p", store, saga.WithClock(clk.Now))
	_ = s.On("start", saga.Step[order]{Starts: true,
		Do:         func(context.Context, *saga.Context[order], event.Event) error { return nil },
		Compensate: func(context.Context, *saga.Context[order]) error { panic("undo bug") }})
	_ = s.On("boom", saga.Step[order]{Do: func(context.Context, *saga.Context[order], event.Event) error { panic("step bug") }})
	handle(t, s, ev("e1", "start", "k"), ev("e2", "boom", "k"))
	in := get(t, s, "k")
	if in.Status != saga.Compensating || in.Attempts != 1 || !strings.Contains(in.History[1].Error, "step bug") {
		t.Fatalf("instance %s, attempts %d, history %+v; want compensating, the step's panic as its error, one failed compensation", in.Status, in.Attempts, in.History)
	}
	clk.Add(time.Hour)
	if _, err := s.FireDue(context.Background()); err == nil || !strings.Contains(err.Error(), "undo bug") {
		t.Fatalf("FireDue with a panicking compensation = %v; want its panic as an error", err)
	}
}

// A step that fails because its context ended (a shutdown) does not fail
// the instance: the event is handled again later.
func TestCanceledStepIsRetried(t *testing.T) {
	store := memory.NewSagaStore()
	s, _ := saga.New[order]("c", store)
	_ = s.On("start", saga.Step[order]{Starts: true, Do: func(ctx context.Context, _ *saga.Context[order], _ event.Event) error {
		<-ctx.Done()
		return ctx.Err()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.HandleEvent(ctx, ev("e1", "start", "k")); !errors.Is(err, context.Canceled) {
		t.Fatalf("HandleEvent with an ended context = %v; want context.Canceled", err)
	}
	if _, err := s.Get(context.Background(), "k"); !errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("Get = %v; want ErrNotFound: nothing saved, the event comes again", err)
	}
}
