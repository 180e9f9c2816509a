package pulsar_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	ekpulsar "github.com/eventkit/eventkit/pulsar"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// A closed producer's send-timeout goroutine in pulsar-client-go ends
	// only at its timer's next tick (up to the send timeout, 30s, after
	// Close). A consumer closed right after a seek may leave one
	// goroutine of the client blocked for good: the broker closes the
	// consumer on a seek, the client reconnects it and signals the
	// reconnection from a goroutine of its own (partitionConsumer.grabConn)
	// that nobody receives from once the consumer closed. Everything else
	// of the client must be gone.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionProducer).failTimeoutMessages"),
		goleak.IgnoreTopFunction("github.com/apache/pulsar-client-go/pulsar.(*partitionConsumer).grabConn.func1"))
}

// urlEnv names the Pulsar service of the tests (default
// eventkittest.DefaultPulsarURL, where scripts/services.sh starts Pulsar
// standalone through scripts/pulsar/start.sh).
const urlEnv = "EVENTKIT_PULSAR_URL"

func serviceURL(t *testing.T) string {
	t.Helper()
	return eventkittest.ServerAddr(t, urlEnv, eventkittest.DefaultPulsarURL, eventkittest.DialProbe)
}

func dial(t *testing.T, opts ...ekpulsar.Option) *ekpulsar.Transport {
	t.Helper()
	tr, err := ekpulsar.Dial(context.Background(), serviceURL(t), append([]ekpulsar.Option{ekpulsar.WithNackDelay(200 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestTransport runs the conformance suite against Pulsar standalone.
func TestTransport(t *testing.T) {
	serviceURL(t)
	eventkittest.TestTransport(t, func(t *testing.T, ns string) (eventkit.Publisher, eventkit.Subscriber) {
		tr := dial(t)
		return tr, tr
	}, eventkittest.Features{
		ConsumerGroups: true,
		GroupBalance:   true,
		OrderPerKey:    true,
		Redelivery:     true,
		AttemptCount:   true,
		Persistent:     true,
		Timeout:        60 * time.Second,
	})
}

func TestTopicMapping(t *testing.T) {
	tr, err := ekpulsar.New(nil)
	if err == nil || tr != nil {
		t.Fatal("New(nil) succeeded")
	}
	for _, o := range []ekpulsar.Option{ekpulsar.WithTenant(""), ekpulsar.WithNamespace(""), ekpulsar.WithNackDelay(0), ekpulsar.WithDeadLetter(0, "dl"), ekpulsar.WithDeadLetter(3, "")} {
		if _, err := ekpulsar.Dial(context.Background(), "pulsar://127.0.0.1:1", o); err == nil {
			t.Errorf("an invalid option was accepted")
		}
	}
	tr, err = ekpulsar.Dial(context.Background(), "pulsar://127.0.0.1:1", ekpulsar.WithTenant("acme"), ekpulsar.WithNamespace("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if got, want := tr.Topic("orders.created"), "persistent://acme/orders/orders.created"; got != want {
		t.Fatalf("Topic = %q, want %q", got, want)
	}
}

// TestDeadLetter: with WithDeadLetter(2, …), an event nacked on its second
// delivery goes to the dead-letter topic instead of a third delivery.
func TestDeadLetter(t *testing.T) {
	ns := eventkittest.UniqueName("dl")
	tr := dial(t, ekpulsar.WithDeadLetter(2, ns+".dead"))
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dead, err := tr.Subscribe(ctx, ns+".dead", eventkit.WithGroup("watch"))
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	sub, err := tr.Subscribe(ctx, ns+".in", eventkit.WithGroup("work"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := tr.Publish(ctx, ns+".in", eventkittest.NewEvent("poison")); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		m := testkit.Receive(t, sub.Messages(), time.Minute, "delivery "+strconv.Itoa(attempt))
		if m.Event.ID() != "poison" || m.Attempt != attempt {
			t.Fatalf("delivery %d: event %s, attempt %d", attempt, m.Event.ID(), m.Attempt)
		}
		if err := m.Nack(errors.New("refused")); err != nil {
			t.Fatal(err)
		}
	}
	m := testkit.Receive(t, dead.Messages(), time.Minute, "the event on the dead-letter topic")
	if m.Event.ID() != "poison" {
		t.Fatalf("dead letter %s", m.Event.ID())
	}
	_ = m.Ack()
	select {
	case m := <-sub.Messages():
		t.Fatalf("a third delivery of %s (attempt %d)", m.Event.ID(), m.Attempt)
	default:
	}
}
