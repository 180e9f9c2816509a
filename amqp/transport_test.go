package amqp_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	ekamqp "github.com/eventkit/eventkit/amqp"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dial returns a transport on the test broker with its own exchange, whose
// exchange and group queues are deleted when the test ends.
func dial(t *testing.T, exchange string, opts ...ekamqp.Option) *ekamqp.Transport {
	t.Helper()
	url := testkit.AMQPURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := ekamqp.Dial(ctx, url, append([]ekamqp.Option{ekamqp.WithExchange(exchange)}, opts...)...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		_ = tr.Close()
		cleanup(t, url, tr.Exchange(), tr.Queues())
	})
	return tr
}

// channel opens a connection to the broker at url and a channel on it,
// both closed when t ends.
func channel(t *testing.T, url string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.Close() })
	return ch
}

func cleanup(t *testing.T, url, exchange string, queues []string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer ch.Close()
	for _, q := range queues {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			t.Errorf("cleanup: delete queue %s: %v", q, err)
			return
		}
	}
	if err := ch.ExchangeDelete(exchange, false, false); err != nil {
		t.Errorf("cleanup: delete exchange %s: %v", exchange, err)
	}
}

var features = eventkittest.Features{
	Wildcards:           true,
	ConsumerGroups:      true,
	GroupBalance:        true,
	Redelivery:          true,
	AttemptCount:        true,
	NackDelay:           true,
	Persistent:          true,
	ExtensionsAsStrings: true,
}

// TestTransport runs the conformance suite in binary and structured mode.
func TestTransport(t *testing.T) {
	testkit.TestModes(t, features, func(t *testing.T, ns string, mode eventkit.Mode) testkit.PubSub {
		return dial(t, "ektest-"+ns, ekamqp.WithMode(mode))
	})
}
