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
type benchDriver struct{ inline bool }

func (benchDriver) Capabilities() eventkit.Capabilities { return eventkit.CapNack }
func (benchDriver) Close() error                        { return nil }

func (d benchDriver) OpenSubscription(context.Context, string, driver.Config) (driver.Subscription, error) {
	e := event.New()
	e.SetID("1")
	e.SetSource("bench")
	e.SetType("bench.event")
	s := &benchSub{ev: e}
	if d.inline {
		return inlineBenchSub{s}, nil
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

// BenchmarkConsume takes and acks b.N messages from a subscription whose
// driver costs nothing: package transport's cost per message, with the
// acks queued for the ack goroutine (queued) or made inline
// (driver.InlineAcker).
func BenchmarkConsume(b *testing.B) {
	for _, c := range []struct {
		name   string
		inline bool
	}{{"queued", false}, {"inline", true}} {
		b.Run(c.name, func(b *testing.B) {
			sub, err := transport.NewSubscriber(benchDriver{inline: c.inline}, transport.WithLogger(quietLogger()))
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
