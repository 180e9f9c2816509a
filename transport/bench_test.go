package transport_test

import (
	"context"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/driver"
	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/transport"
)

// benchDriver is a driver whose subscription returns full batches of one
// event at once: what BenchmarkConsume measures is package transport's own
// work per message (the hand-over to Messages and the ack).
type benchDriver struct{ inline, observed bool }

func (benchDriver) Capabilities() eventkit.Capabilities { return eventkit.CapNack }
func (benchDriver) Close() error                        { return nil }

func (d benchDriver) OpenSubscription(context.Context, string, driver.Config) (driver.Subscription, error) {
	e := event.New()
	e.SetID("1")
	e.SetSource("bench")
	e.SetType("bench.event")
	s := &benchSub{ev: e}
	switch {
	case d.inline && d.observed:
		return observedInlineBenchSub{inlineBenchSub{s}}, nil
	case d.inline:
		return inlineBenchSub{s}, nil
	case d.observed:
		return observedBenchSub{s}, nil
	}
	return s, nil
}

type benchSub struct{ ev event.Event }

func (s *benchSub) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	msgs := make([]driver.Message, max)
	out := make([]*driver.Message, max)
	for i := range msgs {
		msgs[i] = driver.Message{Topic: "b.a", Event: s.ev, Attempt: 1, ID: i}
		out[i] = &msgs[i]
	}
	return out, nil
}

func (s *benchSub) SendAcks(context.Context, []driver.AckID) error { return nil }
func (s *benchSub) SendNacks(context.Context, []driver.Nack) error { return nil }
func (s *benchSub) Close() error                                   { return nil }

type inlineBenchSub struct{ *benchSub }

func (inlineBenchSub) AckInline(driver.AckID) error { return nil }

type observedBenchSub struct{ *benchSub }

func (observedBenchSub) Delivered(driver.AckID) {}

type observedInlineBenchSub struct{ inlineBenchSub }

func (observedInlineBenchSub) Delivered(driver.AckID) {}

// BenchmarkConsume takes and acks b.N messages from a subscription whose
// driver costs nothing: package transport's cost per message, with the
// acks queued for the ack goroutine (queued) or made inline
// (driver.InlineAcker), and for a driver that observes deliveries
// (driver.DeliveryObserver, as NATS's).
func BenchmarkConsume(b *testing.B) {
	for _, c := range []struct {
		name             string
		inline, observed bool
	}{{"queued", false, false}, {"inline", true, false}, {"observed-queued", false, true}, {"observed-inline", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			sub, err := transport.NewSubscriber(benchDriver{inline: c.inline, observed: c.observed}, transport.WithLogger(quietLogger()))
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			s, err := sub.Subscribe(context.Background(), "b.a")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			c0 := testkit.CPUTime()
			for range b.N {
				if err := (<-s.Messages()).Ack(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(testkit.CPUTime()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}
