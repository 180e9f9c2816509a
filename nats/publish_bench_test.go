package nats_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkPublish publishes to the shared embedded server (in-process
// connection, memory storage) in calls of batch events. Besides ns/event
// (wall time), it reports cpu-ns/event: the CPU time of the whole process
// per event, which includes the embedded server's share; on a machine
// shared with other work it is steadier than wall time.
func BenchmarkPublish(b *testing.B) {
	for _, batch := range []int{1, 100, 4096} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			tr, ns := benchTransport(b, "ekb")
			evs := make([]event.Event, batch)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			n := 0
			for n < b.N {
				k := min(batch, b.N-n)
				for j := range k {
					evs[j] = eventkittest.NewEvent(fmt.Sprintf("e%d", n+j))
				}
				if err := tr.Publish(ctx, ns+".x", evs[:k]...); err != nil {
					b.Fatal(err)
				}
				n += k
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/event")
		})
	}
}

// benchTransport returns a transport on the shared embedded server with a
// memory stream for "<ns>.>", closed and deleted at the end, and ns.
func benchTransport(b *testing.B, prefix string) (*eknats.Transport, string) {
	nc, err := embedded(b).Connect()
	if err != nil {
		b.Fatal(err)
	}
	ns := eventkittest.UniqueName(prefix)
	tr, err := eknats.New(nc, eknats.WithStream(eknats.StreamConfig{Name: ns, Subjects: []string{ns + ".>"}, Storage: jetstream.MemoryStorage}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = tr.Close()
		js, _ := jetstream.New(nc)
		_ = js.DeleteStream(context.Background(), ns)
		nc.Close()
	})
	return tr, ns
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
