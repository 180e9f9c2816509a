package command_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/command"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type Add struct {
	A, B int
}

func (a Add) Validate() error {
	if a.A < 0 || a.B < 0 {
		return errors.New("operands must not be negative")
	}
	return nil
}

// env is a memory bus with handlers mounted on a running router and a client.
type env struct {
	bus    *memory.Bus
	h      *command.Handlers
	client *command.Client
}

// start mounts h on a router over bus and starts it; the router, client
// and bus are shut down when the test ends.
func newEnv(t *testing.T, register func(h *command.Handlers), opts ...command.Option) *env {
	t.Helper()
	bus := memory.New()
	h, err := command.NewHandlers(bus, opts...)
	if err != nil {
		t.Fatal(err)
	}
	register(h)
	r := eventkit.NewRouter(bus)
	if err := h.Mount(r, eventkit.Concurrency(16)); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := command.NewClient(bus, bus, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		_ = bus.Close()
	})
	return &env{bus: bus, h: h, client: c}
}

func sum(_ context.Context, a Add) (int, error) { return a.A + a.B, nil }

// waitFor polls cond until it holds or 5s pass.
// requestConcurrently sends n calc.add requests through c at once, and
// reports each that failed or got the wrong sum.
func requestConcurrently(t *testing.T, ctx context.Context, c *command.Client, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			got, err := command.Request[int](ctx, c, "calc.add", Add{A: i, B: 1000})
			if err != nil || got != i+1000 {
				errs <- fmt.Errorf("request %d: got %d, %v", i, got, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// slowOp is a "slow.op" handler that tells each start and returns once
// block is closed.
type slowOp struct {
	started chan struct{}
	block   chan struct{}
}

func newSlowOp() *slowOp {
	return &slowOp{started: make(chan struct{}, 1), block: make(chan struct{})}
}

func (s *slowOp) register(h *command.Handlers) {
	_ = command.Handle(h, "slow.op", func(ctx context.Context, a Add) error {
		s.started <- struct{}{}
		<-s.block
		return nil
	})
}

// request sends a slow.op request through c in a goroutine, waits until
// the handler runs, and returns the channel of the request's error.
func (s *slowOp) request(ctx context.Context, c *command.Client) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, err := c.Request(ctx, "slow.op", Add{})
		errc <- err
	}()
	<-s.started
	return errc
}

// newCountingEnv is newEnv with a calc.add handler that counts its calls.
func newCountingEnv(t *testing.T) (*env, *atomic.Int32) {
	t.Helper()
	calls := new(atomic.Int32)
	e := newEnv(t, func(h *command.Handlers) {
		_ = command.HandleReply(h, "calc.add", func(ctx context.Context, a Add) (int, error) {
			calls.Add(1)
			return sum(ctx, a)
		})
	})
	return e, calls
}

// waitFor polls cond until it holds or 5s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, what, cond)
}

func TestRequestReply(t *testing.T) {
	e := newEnv(t, func(h *command.Handlers) {
		if err := command.HandleReply(h, "calc.add", sum); err != nil {
			t.Fatal(err)
		}
	})
	got, err := command.Request[int](context.Background(), e.client, "calc.add", Add{A: 2, B: 3})
	if err != nil || got != 5 {
		t.Fatalf("Request = %d, %v; want 5, nil", got, err)
	}
	if s := e.client.Stats(); s.Pending != 0 || s.Replies != 1 || s.DroppedReplies != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDuplicateRegistration(t *testing.T) {
	h, err := command.NewHandlers(memory.New())
	if err != nil {
		t.Fatal(err)
	}
	if err := command.HandleReply(h, "calc.add", sum); err != nil {
		t.Fatal(err)
	}
	err = command.Handle(h, "calc.add", func(context.Context, Add) error { return nil })
	if !errors.Is(err, command.ErrDuplicateHandler) {
		t.Fatalf("second registration: %v, want ErrDuplicateHandler", err)
	}
	if got := h.Types(); len(got) != 1 {
		t.Fatalf("types %v", got)
	}
	if err := command.Handle(h, "bad..type", func(context.Context, Add) error { return nil }); err == nil {
		t.Fatal("a type that forms no topic was registered")
	}
}

func TestUnknownCommandGetsErrorReply(t *testing.T) {
	e := newEnv(t, func(h *command.Handlers) { _ = command.HandleReply(h, "calc.add", sum) })
	_, err := e.client.Request(context.Background(), "calc.divide", Add{A: 1, B: 2})
	var ce *command.Error
	if !errors.Is(err, command.ErrUnknownCommand) || !errors.As(err, &ce) || !strings.Contains(ce.Message, "calc.divide") {
		t.Fatalf("err = %v, want an unknown-command *Error naming the type", err)
	}
}

func TestValidationFailureIsRepliedNotRetried(t *testing.T) {
	e, calls := newCountingEnv(t)
	ctx := context.Background()
	_, err := e.client.Request(ctx, "calc.add", Add{A: -1, B: 2})
	if !errors.Is(err, command.ErrInvalid) || !strings.Contains(err.Error(), "must not be negative") {
		t.Fatalf("err = %v, want ErrInvalid with the validation message", err)
	}
	// Data that does not decode is invalid too.
	_, err = e.client.Request(ctx, "calc.add", "not an object")
	if !errors.Is(err, command.ErrInvalid) {
		t.Fatalf("undecodable: err = %v, want ErrInvalid", err)
	}
	// A sent invalid command is rejected, once, and not redelivered.
	if err := e.client.Send(ctx, "calc.add", Add{A: -1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rejection", func() bool { return e.h.Rejected() == 1 })
	// A later valid request is served: the invalid ones are not in a loop
	// ahead of it, and the handler never saw them.
	if got, err := command.Request[int](ctx, e.client, "calc.add", Add{A: 1, B: 1}); err != nil || got != 2 {
		t.Fatalf("Request = %d, %v", got, err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times, want 1 (invalid commands must not reach it)", n)
	}
	if n := e.h.Rejected(); n != 1 {
		t.Fatalf("rejected %d, want 1", n)
	}
}

func TestHandlerErrorTravelsBack(t *testing.T) {
	e := newEnv(t, func(h *command.Handlers) {
		_ = command.Handle(h, "acct.withdraw", func(ctx context.Context, a Add) error {
			return command.Errorf("insufficient_funds", "balance %d < %d", a.A, a.B)
		})
		_ = command.Handle(h, "acct.plain", func(ctx context.Context, a Add) error {
			return errors.New("disk on fire")
		})
		_ = command.Handle(h, "acct.panic", func(ctx context.Context, a Add) error {
			panic("boom")
		})
	})
	ctx := context.Background()
	_, err := e.client.Request(ctx, "acct.withdraw", Add{A: 1, B: 5})
	var ce *command.Error
	if !errors.As(err, &ce) || ce.Code != "insufficient_funds" || ce.Message != "balance 1 < 5" {
		t.Fatalf("err = %#v, want *Error insufficient_funds", err)
	}
	if errors.Is(err, command.ErrTimeout) {
		t.Fatal("a handler error must not look like a timeout")
	}
	_, err = e.client.Request(ctx, "acct.plain", Add{})
	if !errors.As(err, &ce) || ce.Code != command.CodeFailed || ce.Message != "disk on fire" {
		t.Fatalf("err = %v, want *Error failed: disk on fire", err)
	}
	_, err = e.client.Request(ctx, "acct.panic", Add{})
	if !errors.As(err, &ce) || ce.Code != command.CodeInternal || !strings.Contains(ce.Message, "boom") {
		t.Fatalf("err = %v, want *Error internal", err)
	}
}

func TestTimeoutAndLateReplyDropped(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, func(h *command.Handlers) {
		_ = command.HandleReply(h, "slow.add", func(ctx context.Context, a Add) (int, error) {
			<-release
			return a.A + a.B, nil
		})
		_ = command.HandleReply(h, "calc.add", sum)
	}, command.WithTimeout(50*time.Millisecond))
	ctx := context.Background()
	start := time.Now()
	_, err := e.client.Request(ctx, "slow.add", Add{A: 1, B: 1})
	if !errors.Is(err, command.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
		t.Fatalf("timed out after %s, want about 50ms", d)
	}
	if p := e.client.Stats().Pending; p != 0 {
		t.Fatalf("pending %d after the timeout, want 0", p)
	}
	close(release)
	waitFor(t, "the late reply to be dropped", func() bool { return e.client.Stats().DroppedReplies == 1 })
	// The next request gets its own reply, not the late one.
	if got, err := command.Request[int](ctx, e.client, "calc.add", Add{A: 20, B: 1}); err != nil || got != 21 {
		t.Fatalf("Request = %d, %v; want 21", got, err)
	}
}

func TestCallerDeadlineIsATimeout(t *testing.T) {
	op := newSlowOp()
	defer close(op.block)
	e := newEnv(t, op.register)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := e.client.Request(ctx, "slow.op", Add{})
	if !errors.Is(err, command.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrTimeout and DeadlineExceeded", err)
	}
}

func TestCancellationRemovesPending(t *testing.T) {
	op := newSlowOp()
	e := newEnv(t, op.register)
	ctx, cancel := context.WithCancel(context.Background())
	errc := op.request(ctx, e.client)
	if p := e.client.Stats().Pending; p != 1 {
		t.Fatalf("pending %d while waiting, want 1", p)
	}
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) || errors.Is(err, command.ErrTimeout) {
		t.Fatalf("err = %v, want context.Canceled (not a timeout)", err)
	}
	if p := e.client.Stats().Pending; p != 0 {
		t.Fatalf("pending %d after cancellation, want 0", p)
	}
	close(op.block)
	waitFor(t, "the reply after cancellation to be dropped", func() bool { return e.client.Stats().DroppedReplies == 1 })
}

func TestConcurrentRequestsGetTheirOwnReply(t *testing.T) {
	e := newEnv(t, func(h *command.Handlers) {
		_ = command.HandleReply(h, "calc.add", func(ctx context.Context, a Add) (int, error) {
			// Finish out of order.
			time.Sleep(time.Duration(a.A%7) * time.Millisecond)
			return a.A + a.B, nil
		})
	})
	const n = 200
	requestConcurrently(t, context.Background(), e.client, n)
	if s := e.client.Stats(); s.Replies != n || s.DroppedReplies != 0 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTwoClientsNeverGetEachOthersReplies(t *testing.T) {
	e := newEnv(t, func(h *command.Handlers) { _ = command.HandleReply(h, "calc.add", sum) })
	other, err := command.NewClient(e.bus, e.bus)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if other.ReplyTopic() == e.client.ReplyTopic() {
		t.Fatal("two clients share a reply topic")
	}
	var wg sync.WaitGroup
	for i := range 50 {
		for j, c := range []*command.Client{e.client, other} {
			wg.Go(func() {
				want := i*10 + j
				got, err := command.Request[int](context.Background(), c, "calc.add", Add{A: want})
				if err != nil || got != want {
					t.Errorf("client %d request %d: %d, %v", j, i, got, err)
				}
			})
		}
	}
	wg.Wait()
	for _, c := range []*command.Client{e.client, other} {
		if s := c.Stats(); s.DroppedReplies != 0 || s.Replies != 50 {
			t.Errorf("stats %+v", s)
		}
	}
}

func TestForeignReplyDropped(t *testing.T) {
	e := newEnv(t, func(h *command.Handlers) { _ = command.HandleReply(h, "calc.add", sum) })
	ctx := context.Background()
	// Subscribe the reply topic (first request), then publish a reply that
	// names no pending request.
	if _, err := command.Request[int](ctx, e.client, "calc.add", Add{}); err != nil {
		t.Fatal(err)
	}
	r := event.New()
	r.SetID("x")
	r.SetSource("/elsewhere")
	r.SetType(command.ReplyType)
	r.SetExtension(command.InReplyToExtension, "no-such-request")
	if err := e.bus.Publish(ctx, e.client.ReplyTopic(), r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the foreign reply to be dropped", func() bool { return e.client.Stats().DroppedReplies == 1 })
}

func TestMaxPending(t *testing.T) {
	op := newSlowOp()
	e := newEnv(t, op.register, command.WithMaxPending(1))
	errc := op.request(context.Background(), e.client)
	if _, err := e.client.Request(context.Background(), "slow.op", Add{}); !errors.Is(err, command.ErrTooManyPending) {
		t.Fatalf("err = %v, want ErrTooManyPending", err)
	}
	close(op.block)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestCloseFailsPending(t *testing.T) {
	op := newSlowOp()
	defer close(op.block)
	e := newEnv(t, op.register)
	errc := op.request(context.Background(), e.client)
	if err := e.client.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, command.ErrClosed) {
		t.Fatalf("pending request: %v, want ErrClosed", err)
	}
	if _, err := e.client.Request(context.Background(), "slow.op", Add{}); !errors.Is(err, command.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

func TestSendIsHandled(t *testing.T) {
	got := make(chan string, 1)
	e := newEnv(t, func(h *command.Handlers) {
		_ = command.Handle(h, "calc.add", func(ctx context.Context, a Add) error {
			ev, _ := command.EventFromContext(ctx)
			got <- fmt.Sprintf("%d %s %s", a.A+a.B, ev.ID(), ev.Subject())
			return nil
		})
	})
	if err := e.client.Send(context.Background(), "calc.add", Add{A: 1, B: 2}, command.WithID("c1"), command.WithSubject("s1")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "3 c1 s1" {
			t.Fatalf("handler saw %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sent command not handled")
	}
}

func TestRejectedTopic(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	ctx := context.Background()
	dlq := testkit.Subscribe(t, ctx, bus, "rejected")
	defer dlq.Close()
	h, err := command.NewHandlers(bus, command.WithRejectedTopic("rejected"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := command.NewClient(bus, nil)
	e, _ := c.NewCommand("calc.unknown", Add{}, command.WithID("u1"))
	if err := h.Handle(ctx, eventkit.NewMessage("commands.calc.unknown", e, 1, nil, nil)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-dlq.Messages():
		ext := m.Event.Extensions()
		if m.Event.ID() != "u1" || ext[command.ErrorCodeExtension] != command.CodeUnknownCommand {
			t.Fatalf("rejected event %v", m.Event)
		}
		_ = m.Ack()
	case <-time.After(5 * time.Second):
		t.Fatal("nothing on the rejected topic")
	}
	if _, err := command.NewHandlers(bus, command.WithRejectedTopic("commands.dlq")); err == nil {
		t.Fatal("a rejected topic inside the command prefix was accepted")
	}
}

func TestOptionsChecked(t *testing.T) {
	bus := memory.New()
	for _, o := range []command.Option{
		command.WithPrefix("bad..prefix"),
		command.WithReplyPrefix("commands.replies"),
		command.WithTimeout(0),
		command.WithMaxPending(0),
	} {
		if _, err := command.NewClient(bus, bus, o); err == nil {
			t.Error("an invalid option was accepted")
		}
	}
	c, _ := command.NewClient(bus, nil)
	if _, err := c.Request(context.Background(), "calc.add", Add{}); !errors.Is(err, command.ErrNoSubscriber) {
		t.Fatalf("err = %v, want ErrNoSubscriber", err)
	}
}

func TestTopic(t *testing.T) {
	for in, want := range map[string]string{
		"order.place":             "commands.order.place",
		"com.example/Place Order": "commands.com.example_Place_Order",
	} {
		if got, err := command.Topic("commands", in); err != nil || got != want {
			t.Errorf("Topic(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a..b", ".a"} {
		if _, err := command.Topic("commands", bad); err == nil {
			t.Errorf("Topic(%q) accepted", bad)
		}
	}
}

func TestRequestEventLeavesCallersEventAlone(t *testing.T) {
	e := newEnv(t, func(h *command.Handlers) { _ = command.HandleReply(h, "calc.add", sum) })
	ev, err := e.client.NewCommand("calc.add", Add{A: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.RequestEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if _, ok := ev.Extensions()[command.ReplyToExtension]; ok {
		t.Fatal("RequestEvent set replyto on the caller's event")
	}
}

func TestInvalidReplyToIsRejectedNotRetried(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	h, _ := command.NewHandlers(bus)
	_ = command.HandleReply(h, "calc.add", sum)
	c, _ := command.NewClient(bus, nil)
	ev, _ := c.NewCommand("calc.add", Add{A: 1}, command.WithExtension(command.ReplyToExtension, "not a topic"))
	if err := h.Handle(context.Background(), eventkit.NewMessage("commands.calc.add", ev, 1, nil, nil)); err != nil {
		t.Fatalf("Handle = %v; a reply topic that can never work must not make the command redelivered", err)
	}
	if h.Rejected() != 1 {
		t.Fatalf("rejected %d, want 1", h.Rejected())
	}
}

func TestTwoServicesOnOneBus(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	ctx := context.Background()
	r := eventkit.NewRouter(bus)
	for _, svc := range []string{"orders", "billing"} {
		h, err := command.NewHandlers(bus, command.WithPrefix(svc))
		if err != nil {
			t.Fatal(err)
		}
		_ = command.HandleReply(h, "ping", func(context.Context, Add) (string, error) { return svc, nil })
		if err := h.Mount(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown(ctx)
	for _, svc := range []string{"orders", "billing"} {
		c, _ := command.NewClient(bus, bus, command.WithPrefix(svc))
		got, err := command.Request[string](ctx, c, "ping", Add{})
		_ = c.Close()
		if err != nil || got != svc {
			t.Fatalf("%s: %q, %v", svc, got, err)
		}
	}
}

func TestCommandWithoutData(t *testing.T) {
	e := newEnv(t, func(h *command.Handlers) {
		_ = command.Handle(h, "cache.flush", func(context.Context, struct{}) error { return nil })
		_ = command.Handle(h, "calc.check", func(context.Context, Add) error { return nil })
	})
	if _, err := e.client.Request(context.Background(), "cache.flush", nil); err != nil {
		t.Fatalf("a command without data: %v", err)
	}
	// Validation still runs on the zero value.
	if _, err := e.client.Request(context.Background(), "calc.check", nil); err != nil {
		t.Fatalf("zero Add: %v", err)
	}
}

// A retry that reuses the command id must not get the late reply to the
// earlier attempt: each Request waits for the reply to its own publication.
func TestLateReplyToSameIDNotDeliveredToRetry(t *testing.T) {
	var n atomic.Int32
	release := []chan struct{}{make(chan struct{}), make(chan struct{})}
	started := make(chan struct{}, 2)
	e := newEnv(t, func(h *command.Handlers) {
		_ = command.HandleReply(h, "slow.n", func(ctx context.Context, a Add) (int32, error) {
			i := n.Add(1)
			started <- struct{}{}
			<-release[i-1]
			return i, nil
		})
	}, command.WithTimeout(time.Minute))
	ctx := context.Background()
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := e.client.Request(short, "slow.n", Add{}, command.WithID("same")); !errors.Is(err, command.ErrTimeout) {
		t.Fatalf("first attempt: %v, want ErrTimeout", err)
	}
	<-started
	type res struct {
		n   int32
		err error
	}
	done := make(chan res, 1)
	go func() {
		v, err := command.Request[int32](ctx, e.client, "slow.n", Add{}, command.WithID("same"))
		done <- res{v, err}
	}()
	<-started
	close(release[0]) // the first attempt's reply comes now, late
	waitFor(t, "the late reply to be dropped", func() bool { return e.client.Stats().DroppedReplies == 1 })
	close(release[1])
	if r := <-done; r.err != nil || r.n != 2 {
		t.Fatalf("retry got %d, %v; want the reply of its own attempt, 2", r.n, r.err)
	}
}

// failingSub hands out subscriptions of bus that the test can end with an
// error, as a broken connection would.
type failingSub struct {
	*memory.Bus
	mu   sync.Mutex
	subs []*endable
}

type endable struct {
	eventkit.Subscription
	out  chan *eventkit.Message
	stop chan struct{}
	once sync.Once
	done chan struct{}
}

func (s *endable) Messages() <-chan *eventkit.Message { return s.out }
func (s *endable) Err() error                         { return errors.New("connection lost") }
func (s *endable) end() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}
func (s *endable) Close() error { s.end(); return s.Subscription.Close() }

func (f *failingSub) Subscribe(ctx context.Context, pattern string, opts ...eventkit.SubscribeOption) (eventkit.Subscription, error) {
	sub, err := f.Bus.Subscribe(ctx, pattern, opts...)
	if err != nil {
		return nil, err
	}
	s := &endable{Subscription: sub, out: make(chan *eventkit.Message), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.out)
		for {
			select {
			case m, ok := <-sub.Messages():
				if !ok {
					return
				}
				select {
				case s.out <- m:
				case <-s.stop:
					return
				}
			case <-s.stop:
				return
			}
		}
	}()
	f.mu.Lock()
	f.subs = append(f.subs, s)
	f.mu.Unlock()
	return s, nil
}

func TestReplySubscriptionLostFailsPendingAndRecovers(t *testing.T) {
	op := newSlowOp()
	e := newEnv(t, func(h *command.Handlers) {
		op.register(h)
		_ = command.HandleReply(h, "calc.add", sum)
	})
	fs := &failingSub{Bus: e.bus}
	c, err := command.NewClient(e.bus, fs)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errc := op.request(context.Background(), c)
	fs.mu.Lock()
	lost := fs.subs[0]
	fs.mu.Unlock()
	lost.end()
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("pending request: %v, want the subscription's error", err)
	}
	close(op.block)
	// The next request subscribes again and is answered.
	if got, err := command.Request[int](context.Background(), c, "calc.add", Add{A: 1, B: 1}); err != nil || got != 2 {
		t.Fatalf("after the loss: %d, %v", got, err)
	}
	_ = lost.Subscription.Close()
}

// A command event on another topic under the prefix (such as the default
// dead-letter topic "<topic>.dlq") is not a command: it is not handled
// again.
func TestEventOffItsTopicIgnored(t *testing.T) {
	e, calls := newCountingEnv(t)
	ctx := context.Background()
	ev, _ := e.client.NewCommand("calc.add", Add{A: 1})
	if err := e.bus.Publish(ctx, "commands.calc.add.dlq", ev); err != nil {
		t.Fatal(err)
	}
	// A real command still works beside it.
	if _, err := command.Request[int](ctx, e.client, "calc.add", Add{A: 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ignored count", func() bool { return e.h.Ignored() == 1 })
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1 (the dead letter must not run)", n)
	}
}

// ctxPub fails a publish with an ended context, as network transports do.
type ctxPub struct{ *memory.Bus }

func (p ctxPub) Publish(ctx context.Context, name string, events ...event.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.Bus.Publish(ctx, name, events...)
}

func TestExpiredContextIsATimeout(t *testing.T) {
	env := newEnv(t, func(h *command.Handlers) { _ = command.HandleReply(h, "calc.add", sum) })
	e := struct{ client *command.Client }{}
	var err error
	if e.client, err = command.NewClient(ctxPub{env.bus}, env.bus); err != nil {
		t.Fatal(err)
	}
	defer e.client.Close()
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := e.client.Request(ctx, "calc.add", Add{}); !errors.Is(err, command.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrTimeout and DeadlineExceeded", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := e.client.Request(ctx, "calc.add", Add{}); !errors.Is(err, context.Canceled) || errors.Is(err, command.ErrTimeout) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
