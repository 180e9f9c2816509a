package redis_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
	ekredis "github.com/eventkit/eventkit/redis"
)

// BenchmarkPublishConsume publishes b.N events in batches of 100, then one
// group member reads and acks them all (see bench/brokers for the
// comparison with raw go-redis).
func BenchmarkPublishConsume(b *testing.B) {
	addr := eventkittest.Env("EVENTKIT_REDIS_ADDR", eventkittest.DefaultRedisAddr)
	if err := eventkittest.DialProbe(addr); err != nil {
		b.Skip(err)
	}
	c := newBenchClient(addr)
	defer c.Close()
	prefix := eventkittest.UniqueName("ekbench:") + ":"
	tr, err := ekredis.New(c, ekredis.WithPrefix(prefix))
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	ctx := context.Background()
	tp := "bench.events"
	defer c.Del(ctx, tr.StreamKey(tp), tr.RegistryKey())
	data := []byte(`{"note":"` + strings.Repeat("x", 240) + `"}`)
	events := make([]event.Event, 100)
	for i := range events {
		e := event.New()
		e.SetID("e-" + strconv.Itoa(i))
		e.SetSource("urn:bench")
		e.SetType("bench.event")
		_ = e.SetData("application/json", data)
		events[i] = e
	}
	sub := testkit.Subscribe(b, ctx, tr, tp, eventkit.WithGroup("bench"))
	b.ResetTimer()
	for i := 0; i < b.N; i += 100 {
		if err := tr.Publish(ctx, tp, events[:min(100, b.N-i)]...); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < b.N; i++ {
		m := <-sub.Messages()
		_ = m.Ack()
	}
	_ = sub.Close()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
