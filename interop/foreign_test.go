package interop

// The Python and Java SDKs, each in one program of scripts/interop.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	ekamqp "github.com/eventkit/eventkit/amqp"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/hub"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/kafka"
)

// amqpTransport is an eventkit AMQP transport on url.
func amqpTransport(t *testing.T, url string, opts ...ekamqp.Option) *ekamqp.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	tr, err := ekamqp.Dial(ctx, url, append([]ekamqp.Option{ekamqp.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// pythonComparison is what the Python SDK keeps of an event: its datetime
// has microseconds; it re-encodes JSON data (it hands the application a
// dict); its CloudEvent sets the current time on an event without one,
// whether it makes the event or reads it.
func pythonComparison(mode string) comparison {
	c := modeComparison(mode)
	c.precision = time.Microsecond
	c.jsonData = true
	c.addsTime = true
	return c
}

// pythonSendable is what the Python SDK can send of an event: it has no
// binary extension type (str(bytes) in a header, a TypeError in the JSON
// format), so the binary extension goes as its canonical base64 string.
func pythonSendable(evs []event.Event) []event.Event {
	out := make([]event.Event, len(evs))
	for i, e := range evs {
		e = e.Clone()
		for k, v := range e.Extensions() {
			if b, ok := v.([]byte); ok {
				must(e.Context.SetExtension(k, mustFormat(b)))
			}
		}
		out[i] = e
	}
	return out
}

// The Python SDK (PyPI cloudevents, pinned in scripts/interop/
// requirements.txt) writes to eventkit (HTTP to eventkit serve in binary and
// structured mode; Kafka in both modes with kafka-python), and reads what
// eventkit writes (serve's webhooks in binary, structured and batch mode;
// Kafka in both modes); on RabbitMQ, its rabbitmq binding (with pika) and
// eventkit meet in structured mode, both ways. One Python process per
// direction.
func TestInteropPython(t *testing.T) {
	py := script(t, "run-python.sh", "setup")
	brokers := kafkaBrokers(t)

	t.Run("python-to-eventkit", func(t *testing.T) {
		s := startHub(t)
		hubSub := subscribe(t, s.Subscriber(), "com.example.interop.>")
		topics := map[string]string{}
		subs := map[string]eventkit.Subscription{}
		for _, mode := range []eventkit.Mode{eventkit.Binary, eventkit.Structured} {
			tr := kafkaTransport(t, brokers, mode)
			topic := kafkaTopic(t, tr, "interop-py-")
			topics[mode.String()] = topic
			subs[mode.String()] = subscribe(t, tr, topic, eventkit.WithGroup(eventkittest.UniqueName("g")), eventkit.FromStart())
		}
		var sends []map[string]any
		want := map[string][]event.Event{}
		for _, mode := range []string{"binary", "structured"} {
			want["http-"+mode] = pythonSendable(testEvents("py-http-" + mode))
			sends = append(sends, map[string]any{"via": "http", "url": s.URL() + "/events", "mode": mode, "events": describeAll(want["http-"+mode])})
			want["kafka-"+mode] = pythonSendable(testEvents("py-kafka-" + mode))
			sends = append(sends, map[string]any{"via": "kafka", "bootstrap": brokers, "topic": topics[mode], "mode": mode, "events": describeAll(want["kafka-"+mode])})
		}
		// RabbitMQ: structured mode only (docs/interop.md: the SDK's binary
		// mode names its headers "ce-" + attribute).
		amqpURL := testkit.AMQPURL(t)
		amqpTr := amqpTransport(t, amqpURL)
		rk := eventkittest.UniqueName("interop.py")
		amqpSub := subscribe(t, amqpTr, rk)
		want["amqp-structured"] = pythonSendable(testEvents("py-amqp-structured"))
		sends = append(sends, map[string]any{"via": "amqp", "url": amqpURL, "exchange": ekamqp.DefaultExchange, "routing_key": rk, "mode": "structured", "events": describeAll(want["amqp-structured"])})
		c := startScript(t, py, "write")
		c.send(t, map[string]any{"sends": sends})
		c.waitLine(t, "done", "", wait)
		c.finish(t)
		for _, mode := range []string{"binary", "structured"} {
			cmp := pythonComparison(mode)
			// In a header, the Python SDK writes a boolean as str(bool).
			cmp.pythonBools = mode == "binary"
			w := want["http-"+mode]
			checkEvents(t, "Python SDK HTTP "+mode+" → eventkit serve", cmp, w, receive(t, hubSub, len(w)))
			w = want["kafka-"+mode]
			checkEvents(t, "Python SDK Kafka "+mode+" → eventkit", cmp, w, receive(t, subs[mode], len(w)))
		}
		w := want["amqp-structured"]
		checkEvents(t, "Python SDK RabbitMQ structured → eventkit", pythonComparison("structured"), w, receive(t, amqpSub, len(w)))
	})

	t.Run("eventkit-to-python", func(t *testing.T) {
		c := startScript(t, py, "read")
		readerCases(t, c, "Python SDK", func(mode string) comparison {
			cmp := pythonComparison(mode)
			// The Python SDK reads the record key as the partitionkey
			// attribute; eventkit's key is partitionkey, else the subject.
			cmp.keyAsPartitionKey = true
			return cmp
		}, func(brokers, topic string, n int) {
			c.send(t, map[string]any{"via": "kafka", "bootstrap": brokers, "topic": topic, "count": n})
		})

		// RabbitMQ: eventkit's structured mode to the SDK's RabbitMQ binding.
		amqpURL := testkit.AMQPURL(t)
		tr := amqpTransport(t, amqpURL, ekamqp.WithMode(eventkit.Structured))
		rk := eventkittest.UniqueName("interop.ekpy")
		want := testEvents("ek-amqp")
		c.send(t, map[string]any{"via": "amqp", "url": amqpURL, "exchange": ekamqp.DefaultExchange, "routing_key": rk, "count": len(want)})
		c.waitLine(t, "bound", rk, wait)
		publish(t, tr, rk, want...)
		checkEvents(t, "eventkit RabbitMQ structured → Python SDK", pythonComparison("structured"), want, c.waitEvents(t, "amqp", "structured", len(want)))
		c.finish(t)
	})
}

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
		readerCases(t, c, "Java SDK", javaComparison, func(brokers, topic string, n int) {
			c.send(t, map[string]any{"cmd": "consume", "bootstrap": brokers, "topic": topic, "count": n})
			c.waitLine(t, "consumed", topic, wait)
		})
	})
	c.finish(t)
}

// readerCases runs the eventkit-to-SDK cases on a program that reads
// (c, which printed {"listening": URL}): serve's binary, structured and
// batch webhooks to its HTTP server, then eventkit's Kafka transport in
// both modes, consume asking the program to read n records of a topic.
// cmp gives the differences the SDK makes, by mode.
func readerCases(t *testing.T, c *child, sdk string, cmp func(mode string) comparison, consume func(brokers, topic string, n int)) {
	t.Helper()
	var url string
	must(json.Unmarshal(c.waitLine(t, "listening", "", wait), &url))
	var hooks []hub.SubscriptionConfig
	for _, mode := range []string{"binary", "structured", "batch"} {
		hooks = append(hooks, hub.SubscriptionConfig{Name: mode, Topic: "interop.>", URL: url, Mode: mode})
	}
	s := startHub(t, hooks...)
	want := testEvents("ek-webhook")
	publish(t, s.Publisher(), "interop.sdk", want...)
	for _, mode := range []string{"binary", "structured", "batch"} {
		checkEvents(t, "eventkit serve "+mode+" webhook → "+sdk, cmp(mode), want, c.waitEvents(t, "http", mode, len(want)))
	}
	brokers := kafkaBrokers(t)
	for _, mode := range []eventkit.Mode{eventkit.Binary, eventkit.Structured} {
		tr := kafkaTransport(t, brokers, mode)
		topic := kafkaTopic(t, tr, "interop-ek-")
		want := testEvents("ek-kafka-" + mode.String())
		publish(t, tr, topic, want...)
		consume(brokers, topic, len(want))
		checkEvents(t, "eventkit Kafka "+mode.String()+" → "+sdk, cmp(mode.String()), want, c.waitEvents(t, "kafka", mode.String(), len(want)))
	}
}

// kafkaBrokers returns the shared Apache Kafka (EVENTKIT_KAFKA_BROKERS,
// 127.0.0.1:9092 by default), or skips t (fails it under CI=true).
func kafkaBrokers(t *testing.T) string {
	t.Helper()
	return eventkittest.ServerAddr(t, "EVENTKIT_KAFKA_BROKERS", "127.0.0.1:9092", func(addr string) error {
		return eventkittest.DialProbe(strings.Split(addr, ",")[0])
	})
}

// kafkaTransport is an eventkit Kafka transport in mode on the real
// broker, creating its topics (one partition each).
func kafkaTransport(t *testing.T, brokers string, mode eventkit.Mode) *kafka.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	tr, err := kafka.Dial(ctx, brokers, kafka.WithMode(mode), kafka.WithLogger(quiet),
		kafka.WithTopicCreation(1, -1, nil), kafka.WithHeartbeatInterval(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// kafkaTopic creates a topic of one partition on tr's broker, deleted at
// the end of the test, and returns its name.
func kafkaTopic(t *testing.T, tr *kafka.Transport, prefix string) string {
	t.Helper()
	name := eventkittest.UniqueName(prefix)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := tr.CreateTopic(ctx, name, 1, -1, nil); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if _, err := tr.Admin().DeleteTopics(ctx, name); err != nil {
			t.Logf("delete topic %s: %v", name, err)
		}
	})
	return name
}
