package kafka_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
)

// BenchmarkConsume consumes and acks b.N events of 256 bytes through a group
// subscription with the transport's default settings, on Apache Kafka (the
// real broker; skipped without one), from a topic of 8 partitions filled
// beforehand and deleted after. It reports events/s and cpu-ns/event, the
// CPU time of the whole process per event: the figure issue 15 compares
// before and after a change (bench/kafka runs the peers in the same run).
func BenchmarkConsume(b *testing.B) {
	brokers := realBrokers(b)
	ctx := context.Background()
	tr := dial(b, brokers)
	name := "bench.consume." + strconv.FormatInt(time.Now().UnixNano(), 10)
	adm := benchTopic(b, brokers, name)
	defer func() { _, _ = adm.DeleteTopics(ctx, name) }()
	data := make([]byte, 256) // a JSON string
	for i := range data {
		data[i] = 'x'
	}
	data[0], data[len(data)-1] = '"', '"'
	evs := make([]event.Event, 0, 1000)
	for n := 0; n < b.N; n += len(evs) {
		evs = evs[:0]
		for i := n; i < min(n+1000, b.N); i++ {
			e := eventkittest.NewEvent(strconv.Itoa(i))
			e.DataEncoded = data
			evs = append(evs, e)
		}
		if err := tr.PublishAsync(ctx, name, evs, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := tr.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), testkit.CPUTime()
	s, err := tr.Subscribe(ctx, name, eventkit.WithGroup("bench-consume"), eventkit.FromStart())
	if err != nil {
		b.Fatal(err)
	}
	for got := 0; got < b.N; got++ {
		m, ok := <-s.Messages()
		if !ok {
			b.Fatalf("subscription ended after %d: %v", got, s.Err())
		}
		if err := m.Ack(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(testkit.CPUTime()-cpu0)/float64(b.N), "cpu-ns/event")
	_ = s.Close()
}

// benchTopic creates a topic of 8 partitions on brokers and waits until
// each has a leader; the admin client it returns is closed when b ends.
func benchTopic(b *testing.B, brokers []string, name string) *kadm.Client {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 8, -1, nil, name); err != nil {
		b.Fatal(err)
	}
	for {
		td, err := adm.ListTopics(ctx, name)
		if err == nil && td[name].Err == nil && len(td[name].Partitions) == 8 && td[name].Partitions.NumReplicas() > 0 {
			return adm
		}
		select {
		case <-ctx.Done():
			b.Fatalf("topic %s not ready: %v", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
