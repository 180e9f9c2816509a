package interop

import (
	"encoding/json"
	"testing"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/hub"
)

// javaComparison is what the Java SDK keeps of an event, by mode: its
// HTTP binding does not percent-decode header values.
func javaComparison(mode string) comparison {
	c := modeComparison(mode)
	c.pctEncoded = mode == "binary"
	return c
}

// The Java SDK (Maven io.cloudevents, pinned in scripts/interop/pom.xml)
// writes to eventkit (HTTP to eventkit serve with cloudevents-http-basic;
// Kafka with cloudevents-kafka, binary and structured) and reads what
// eventkit writes (serve's webhooks in binary, structured and batch mode;
// Kafka in both modes). One JVM for every case.
func TestInteropJava(t *testing.T) {
	java := script(t, "run-java.sh", "classpath")
	brokers := kafkaBrokers(t)
	c := startScript(t, java, "run")

	t.Run("java-to-eventkit", func(t *testing.T) {
		s := startHub(t)
		hubSub := subscribe(t, s.Subscriber(), "com.example.interop.>")
		for _, mode := range []eventkit.Mode{eventkit.Binary, eventkit.Structured} {
			m := mode.String()
			want := testEvents("java-http-" + m)
			if mode == eventkit.Binary {
				// The Java SDK does not percent-encode header values.
				want = asciiHeaders(want)
			}
			c.send(t, map[string]any{"cmd": "send", "tag": "http-" + m, "via": "http", "url": s.URL() + "/events", "mode": m, "events": describeAll(want)})
			c.waitLine(t, "sent", "http-"+m, wait)
			checkEvents(t, "Java SDK HTTP "+m+" → eventkit serve", javaComparison(m), want, receive(t, hubSub, len(want)))

			tr := kafkaTransport(t, brokers, mode)
			topic := kafkaTopic(t, tr, "interop-java-")
			sub := subscribe(t, tr, topic, eventkit.WithGroup(eventkittest.UniqueName("g")), eventkit.FromStart())
			want = testEvents("java-kafka-" + m)
			c.send(t, map[string]any{"cmd": "send", "tag": "kafka-" + m, "via": "kafka", "bootstrap": brokers, "topic": topic, "mode": m, "events": describeAll(want)})
			c.waitLine(t, "sent", "kafka-"+m, wait)
			checkEvents(t, "Java SDK Kafka "+m+" → eventkit", javaComparison(m), want, receive(t, sub, len(want)))
		}
	})

	t.Run("eventkit-to-java", func(t *testing.T) {
		c.send(t, map[string]any{"cmd": "listen"})
		var url string
		must(json.Unmarshal(c.waitLine(t, "listening", "", wait), &url))
		var hooks []hub.SubscriptionConfig
		for _, mode := range []string{"binary", "structured", "batch"} {
			hooks = append(hooks, hub.SubscriptionConfig{Name: mode, Topic: "interop.>", URL: url, Mode: mode})
		}
		s := startHub(t, hooks...)
		want := testEvents("ek-java")
		publish(t, s.Publisher(), "interop.java", want...)
		for _, mode := range []string{"binary", "structured", "batch"} {
			checkEvents(t, "eventkit serve "+mode+" webhook → Java SDK", javaComparison(mode), want, c.waitEvents(t, "http", mode, len(want)))
		}
		for _, mode := range []eventkit.Mode{eventkit.Binary, eventkit.Structured} {
			tr := kafkaTransport(t, brokers, mode)
			topic := kafkaTopic(t, tr, "interop-ekjava-")
			want := testEvents("ek-java-kafka-" + mode.String())
			publish(t, tr, topic, want...)
			c.send(t, map[string]any{"cmd": "consume", "bootstrap": brokers, "topic": topic, "count": len(want)})
			c.waitLine(t, "consumed", topic, wait)
			checkEvents(t, "eventkit Kafka "+mode.String()+" → Java SDK", javaComparison(mode.String()), want, c.waitEvents(t, "kafka", mode.String(), len(want)))
		}
	})
	c.finish(t)
}
