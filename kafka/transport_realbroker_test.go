package kafka_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The tests named TestKafkaRealBroker… run on Apache Kafka itself, which
// scripts/services.sh starts on 127.0.0.1:9092 (scripts/kafka/start.sh, from
// Maven Central). EVENTKIT_KAFKA_BROKERS (comma-separated) points them at
// other brokers. They skip when no broker answers, saying what is missing,
// and fail under CI=true.

// defaultRealBroker is where scripts/kafka/start.sh runs Kafka.
const defaultRealBroker = "127.0.0.1:9092"

// realBrokers returns the addresses of a running Kafka, or skips t (fails it
// under CI=true).
func realBrokers(t testing.TB) []string {
	t.Helper()
	env := os.Getenv("EVENTKIT_KAFKA_BROKERS")
	brokers := []string{defaultRealBroker}
	if env != "" {
		brokers = strings.Split(env, ",")
	}
	err := pingKafka(brokers)
	if err == nil {
		return brokers
	}
	why := "no Kafka broker answers on " + strings.Join(brokers, ",") + " (" + err.Error() + ")"
	if env == "" {
		var missing []string
		for _, tool := range []string{"java", "mvn"} {
			if _, err := exec.LookPath(tool); err != nil {
				missing = append(missing, tool)
			}
		}
		if len(missing) > 0 {
			why += "; missing to run one: " + strings.Join(missing, ", ") + " (Java 17+ and Maven)"
		} else {
			why += "; start it with scripts/services.sh or scripts/kafka/start.sh, or set EVENTKIT_KAFKA_BROKERS"
		}
	}
	if eventkittest.InCI() {
		t.Fatalf("%s (CI=true)", why)
	}
	t.Skip(why)
	return nil
}

// pingKafka asks brokers for their metadata, within a few seconds.
func pingKafka(brokers []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RetryTimeout(3*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

// realOptions are testOptions for a real broker: topics take the broker's
// default replication factor.
func realOptions() []kafka.Option {
	return append(testOptions(),
		kafka.WithTopicCreation(8, -1, map[string]*string{"max.message.bytes": ptr("2097152")}))
}

func TestKafkaRealBrokerTransport(t *testing.T) {
	testSuite(t, realBrokers(t), eventkit.Binary, realOptions()...)
}

func TestKafkaRealBrokerTransportStructured(t *testing.T) {
	testSuite(t, realBrokers(t), eventkit.Structured, realOptions()...)
}

func TestKafkaRealBrokerRevokeFinishesInFlightAndCommits(t *testing.T) {
	testRevokeFinishesInFlightAndCommits(t, realBrokers(t))
}

func TestKafkaRealBrokerRegainedPartitionLosesNothing(t *testing.T) {
	testRegainedPartitionLosesNothing(t, realBrokers(t))
}

// TestKafkaRealBrokerExactlyOnceAfterKill is TestExactlyOnceAfterKill on
// Apache Kafka: the consume-transform-produce process is SIGKILLed in the
// middle of a transaction, a new instance fences it, and read_committed
// shows every output exactly once.
func TestKafkaRealBrokerExactlyOnceAfterKill(t *testing.T) {
	exactlyOnceAfterKill(t, realBrokers(t), uniqueEOSNames(), -1)
}
