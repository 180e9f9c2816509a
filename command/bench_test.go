package command_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/command"
	"github.com/eventkit/eventkit/command/natsreply"
	"github.com/eventkit/eventkit/memory"
	ekredis "github.com/eventkit/eventkit/redis"
	"github.com/nats-io/nats.go/jetstream"
)

// benchRequests measures concurrent request/reply round trips.
func benchRequests(b *testing.B, pub eventkit.Publisher, sub eventkit.Subscriber, replyPub eventkit.Publisher, replySub eventkit.Subscriber, opts ...command.Option) {
	ctx := context.Background()
	h, err := command.NewHandlers(replyPub, opts...)
	if err != nil {
		b.Fatal(err)
	}
	_ = command.HandleReply(h, "calc.add", sum)
	r := eventkit.NewRouter(sub)
	if err := h.Mount(r, eventkit.Concurrency(64)); err != nil {
		b.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer r.Shutdown(ctx)
	c, err := command.NewClient(pub, replySub, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Request(ctx, "calc.add", Add{}); err != nil { // subscribe the replies
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if got, err := command.Request[int](ctx, c, "calc.add", Add{A: 1, B: 2}); err != nil || got != 3 {
				b.Errorf("%d, %v", got, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "requests/s")
}

func BenchmarkRequestMemory(b *testing.B) {
	bus := memory.New()
	defer bus.Close()
	benchRequests(b, bus, bus, bus, bus)
}

// BenchmarkRequestNATS: commands through JetStream, replies through core
// NATS (natsreply), on the server of EVENTKIT_NATS_URL.
func BenchmarkRequestNATS(b *testing.B) {
	e := newNATSEnv(b, jetstream.FileStorage)
	core := natsreply.New(e.nc)
	defer func() {
		e.deleteStreams(b, e.prefix)
		_ = core.Close()
	}()
	benchRequests(b, e.tr, e.tr, core, core, command.WithPrefix(e.prefix), command.WithReplyPrefix(e.replies))
}

// BenchmarkRequestRedis: commands and replies through Redis Streams, on the
// server of EVENTKIT_REDIS_ADDR.
func BenchmarkRequestRedis(b *testing.B) {
	tr := dialRedis(b, ekredis.WithBlock(100*time.Millisecond))
	benchRequests(b, tr, tr, tr, tr)
}
