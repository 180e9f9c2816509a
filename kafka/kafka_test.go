package kafka_test

import (
	"context"
	"strings"
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
func testOptions() []kafka.Option {
	return []kafka.Option{
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

// dial is kafka.Dial on brokers with opts, closed when the test ends.
func dial(t testing.TB, brokers []string, opts ...kafka.Option) *kafka.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := kafka.Dial(ctx, strings.Join(brokers, ","), opts...)
	if err != nil {
		t.Fatalf("kafka.Dial: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// newTransport is dial with the test options, then opts.
func newTransport(t testing.TB, brokers []string, opts ...kafka.Option) *kafka.Transport {
	t.Helper()
	return dial(t, brokers, append(testOptions(), opts...)...)
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

// testSuite runs the conformance suite on transports dialled to brokers
// with opts, publishing in mode.
func testSuite(t *testing.T, brokers []string, mode eventkit.Mode, opts ...kafka.Option) {
	f := features
	f.ExtensionsAsStrings = mode == eventkit.Binary
	opts = append(opts[:len(opts):len(opts)], kafka.WithMode(mode))
	eventkittest.TestTransport(t, func(t *testing.T, ns string) (eventkit.Publisher, eventkit.Subscriber) {
		tr := dial(t, brokers, opts...)
		return tr, tr
	}, f)
}

func TestTransport(t *testing.T) {
	testSuite(t, newCluster(t), eventkit.Binary, testOptions()...)
}

func TestTransportStructured(t *testing.T) {
	testSuite(t, newCluster(t), eventkit.Structured, testOptions()...)
}
