package kafka_test

import (
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/kafka"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newCluster starts an in-process Kafka (kfake) for one test.
func newCluster(t testing.TB) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// testOptions are the fast timings the tests use.
func testOptions(brokers []string) []kafka.Option {
	return []kafka.Option{
		kafka.WithBrokers(brokers...),
		// Kafka's default record batch limit is 1 MB including headers; the
		// suite carries 1 MiB of data, so topics take 2 MiB.
		kafka.WithTopicCreation(8, 1, map[string]*string{"max.message.bytes": ptr("2097152")}),
		kafka.WithBatchMaxBytes(2 << 20),
		kafka.WithHeartbeatInterval(100 * time.Millisecond),
		kafka.WithCommitInterval(50 * time.Millisecond),
		kafka.WithMetadataMaxAge(time.Second),
		kafka.WithClientOptions(kgo.MetadataMinAge(100 * time.Millisecond)),
	}
}

func ptr(s string) *string { return &s }

func newTransport(t testing.TB, brokers []string, opts ...kafka.Option) *kafka.Transport {
	t.Helper()
	tr, err := kafka.New(append(testOptions(brokers), opts...)...)
	if err != nil {
		t.Fatalf("kafka.New: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

var features = eventkittest.Features{
	Wildcards:           true,
	ConsumerGroups:      true,
	GroupBalance:        true, // topics have 8 partitions, groups 2 or 3 members
	OrderPerKey:         true,
	Redelivery:          true,
	AttemptCount:        true,
	NackDelay:           true,
	Persistent:          true,
	ExtensionsAsStrings: true,
	Timeout:             20 * time.Second,
}

func TestTransport(t *testing.T) {
	brokers := newCluster(t)
	eventkittest.TestTransport(t, func(t *testing.T, ns string) (eventkit.Publisher, eventkit.Subscriber) {
		tr, err := kafka.New(testOptions(brokers)...)
		if err != nil {
			t.Fatalf("kafka.New: %v", err)
		}
		return tr, tr
	}, features)
}

func TestTransportStructured(t *testing.T) {
	brokers := newCluster(t)
	f := features
	f.ExtensionsAsStrings = false
	eventkittest.TestTransport(t, func(t *testing.T, ns string) (eventkit.Publisher, eventkit.Subscriber) {
		tr, err := kafka.New(append(testOptions(brokers), kafka.WithMode(eventkit.Structured))...)
		if err != nil {
			t.Fatalf("kafka.New: %v", err)
		}
		return tr, tr
	}, f)
}
