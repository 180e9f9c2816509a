// Package testkit holds the helpers that eventkit's own tests share across
// packages, so that each is written once: polling for a condition with a
// deadline, and the per-broker set-ups of the transports' tests. It is
// imported by tests only.
package testkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
)

// Eventually polls cond until it holds, and fails tb (naming what it
// waited for) if it does not hold within d: eventkittest.WaitFor, which
// the transports' tests and the suites share.
func Eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	eventkittest.WaitFor(tb, d, what, cond)
}

// Receive returns the next value of c, and fails tb (naming what it
// waited for) if none comes within d.
func Receive[T any](tb testing.TB, c <-chan T, d time.Duration, what string) T {
	tb.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(d):
		tb.Fatalf("timed out after %v waiting for %s", d, what)
		panic("not reached")
	}
}

// PubSub is a transport: a Publisher and a Subscriber in one value.
type PubSub interface {
	eventkit.Publisher
	eventkit.Subscriber
}

// TestModes runs eventkittest.TestTransport with features in each mode
// (subtests "binary" and "structured"), on the transports that
// newTransport makes for a test of the suite and its namespace.
func TestModes(t *testing.T, features eventkittest.Features, newTransport func(t *testing.T, ns string, mode eventkit.Mode) PubSub) {
	for _, mode := range []eventkit.Mode{eventkit.Binary, eventkit.Structured} {
		t.Run(mode.String(), func(t *testing.T) {
			eventkittest.TestTransport(t, func(t *testing.T, ns string) (eventkit.Publisher, eventkit.Subscriber) {
				tr := newTransport(t, ns, mode)
				return tr, tr
			}, features)
		})
	}
}

// PublishEndedByShutdown is the end of the transports' tests of a publish
// waiting for a reconnect, once tr's connection is cut and reconnects are
// refused: a Publish to topic without a deadline must not return within
// 200ms (it waits), and Shutdown (bounded by bound) must make it return
// eventkit.ErrClosed, at the latest 5s after Shutdown returned.
func PublishEndedByShutdown(t *testing.T, tr interface {
	eventkit.Publisher
	Shutdown(context.Context) error
}, topic string, bound time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- tr.Publish(context.Background(), topic, eventkittest.NewEvent("down")) }()
	select {
	case err := <-done:
		t.Fatalf("Publish on a cut connection returned %v before the shutdown", err)
	case <-time.After(200 * time.Millisecond):
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	_ = tr.Shutdown(ctx)
	if err := Receive(t, done, 5*time.Second, "the publish waiting for a reconnect, after Shutdown"); !errors.Is(err, eventkit.ErrClosed) {
		t.Fatalf("Publish waiting for a reconnect: %v, want ErrClosed", err)
	}
}

// CommonOptions are a transport's spellings of the options that every
// transport shares (transport.Common).
type CommonOptions[O any] struct {
	WithMode         func(eventkit.Mode) O
	WithLogger       func(*slog.Logger) O
	WithCloseTimeout func(time.Duration) O
}

// InvalidOptionsRefused checks that construct fails, with an error
// wrapping eventkit.ErrInvalidOption that names the option, for each
// invalid value: an unknown mode, a nil logger, a zero and a negative
// close timeout, and each option of own (by its name).
func InvalidOptionsRefused[O any](t *testing.T, construct func(O) error, common CommonOptions[O], own map[string]O) {
	t.Helper()
	check := func(name string, o O) {
		t.Helper()
		if err := construct(o); !errors.Is(err, eventkit.ErrInvalidOption) || !strings.Contains(err.Error(), name) {
			t.Errorf("an invalid %s: err %v, want ErrInvalidOption naming the option", name, err)
		}
	}
	check("WithMode", common.WithMode(eventkit.Mode(7)))
	check("WithLogger", common.WithLogger(nil))
	check("WithCloseTimeout", common.WithCloseTimeout(0))
	check("WithCloseTimeout", common.WithCloseTimeout(-time.Second))
	for name, o := range own {
		check(name, o)
	}
}

// AMQPURL returns the address of the RabbitMQ of the tests,
// EVENTKIT_AMQP_URL (default eventkittest.DefaultAMQPURL); it skips tb when
// nothing answers there (fails it under CI=true).
func AMQPURL(tb testing.TB) string {
	tb.Helper()
	return eventkittest.ServerAddr(tb, "EVENTKIT_AMQP_URL", eventkittest.DefaultAMQPURL, eventkittest.DialProbe)
}

// MQTTURL returns the address of the MQTT broker of the tests,
// EVENTKIT_MQTT_URL (default eventkittest.DefaultMQTTURL), as AMQPURL.
func MQTTURL(tb testing.TB) string {
	tb.Helper()
	return eventkittest.ServerAddr(tb, "EVENTKIT_MQTT_URL", eventkittest.DefaultMQTTURL, eventkittest.DialProbe)
}

// Subscribe subscribes s to pattern within ctx (the subscription ends
// with ctx), fails tb if that fails, and closes the subscription when tb
// ends.
func Subscribe(tb testing.TB, ctx context.Context, s eventkit.Subscriber, pattern string, opts ...eventkit.SubscribeOption) eventkit.Subscription {
	tb.Helper()
	sub, err := s.Subscribe(ctx, pattern, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sub.Close() })
	return sub
}

// Migrator is a store whose Migrate creates its tables.
type Migrator interface{ Migrate(context.Context) error }

// TableNamesRefused checks, for each constructor of stores (by its name)
// and each bad table name, that the store it makes fails Migrate with an
// error wrapping eventkit.ErrInvalidOption that names the constructor.
func TableNamesRefused(t *testing.T, bad []string, stores map[string]func(table string) Migrator) {
	t.Helper()
	for ctor, newStore := range stores {
		for _, table := range bad {
			err := newStore(table).Migrate(context.Background())
			if !errors.Is(err, eventkit.ErrInvalidOption) || !strings.Contains(err.Error(), ctor) {
				t.Errorf("%s(%q).Migrate = %v, want ErrInvalidOption naming %s", ctor, table, err, ctor)
			}
		}
	}
}

// CPUTime is the process's user and system CPU time: a benchmark on a
// machine shared with other work reports CPU per operation, steadier than
// its ns/op.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Take takes n messages from s within d, and fails tb, saying how many it
// got (and why s ended, if it did), otherwise.
func Take(tb testing.TB, s eventkit.Subscription, n int, d time.Duration) []*eventkit.Message {
	tb.Helper()
	out := make([]*eventkit.Message, 0, n)
	deadline := time.Now().Add(d)
	for len(out) < n {
		what := fmt.Sprintf("message %d of %d", len(out)+1, n)
		m := Receive(tb, s.Messages(), max(time.Until(deadline), 0), what)
		if m == nil { // the channel is closed
			tb.Fatalf("subscription ended after %d of %d messages: %v", len(out), n, s.Err())
		}
		out = append(out, m)
	}
	return out
}

// DurableFeatures are the conformance features of a broker whose consumer
// groups persist and redeliver what was not acked (NATS JetStream, the
// PostgreSQL queue); a test adds its timeouts and the broker's own.
func DurableFeatures() eventkittest.Features {
	return eventkittest.Features{
		Wildcards: true, ConsumerGroups: true, GroupBalance: true, OrderPerKey: true,
		Redelivery: true, AttemptCount: true, NackDelay: true, Persistent: true, RedeliverUnacked: true,
	}
}

// StartPiped starts cmd with a pipe to its standard input and one from its
// standard output, and fails tb if it cannot. The caller reads stdout to
// its end before it waits for cmd, and closes stdin to tell cmd to stop.
func StartPiped(tb testing.TB, cmd *exec.Cmd) (stdin io.WriteCloser, stdout io.ReadCloser) {
	tb.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if stdout, err = cmd.StdoutPipe(); err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return stdin, stdout
}

// RoundTrip checks an event that a binding's decoder accepted, as the
// bindings' fuzz tests do: e is a valid event, and toMessage (the binding's
// encoder, in binary or structured mode, giving what a receiver gets) then
// decode give e back in both modes.
func RoundTrip[M any](tb testing.TB, e event.Event, toMessage func(e event.Event, structured bool) (M, error), decode func(M) (event.Event, error)) {
	tb.Helper()
	if err := eventkit.ValidateEvent(e); err != nil {
		tb.Fatalf("decoded an invalid event: %v", err)
	}
	for _, structured := range []bool{false, true} {
		m, err := toMessage(e, structured)
		if err != nil {
			tb.Fatalf("encode (structured=%v): %v", structured, err)
		}
		e2, err := decode(m)
		if err != nil {
			tb.Fatalf("re-decode (structured=%v): %v", structured, err)
		}
		if diff := eventkittest.DiffEvents(e, e2); diff != "" {
			tb.Fatalf("round trip (structured=%v): %s", structured, diff)
		}
	}
}
