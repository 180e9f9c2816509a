package nats_test

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventkit/eventkit/eventkittest"
	eknats "github.com/eventkit/eventkit/nats"
	"github.com/eventkit/eventkit/saga"
)

// BenchmarkSagaStoreSave measures saves that create an instance, with no
// message (one publish) and with one (an atomic batch of two), on the
// embedded server's file and memory storage, 8 goroutines per core.
func BenchmarkSagaStoreSave(b *testing.B) {
	for _, storage := range []jetstream.StorageType{jetstream.FileStorage, jetstream.MemoryStorage} {
		for _, emits := range []int{0, 1} {
			b.Run(storage.String()+"/emits="+strconv.Itoa(emits), func(b *testing.B) {
				nc, err := embedded(b).Connect()
				if err != nil {
					b.Fatal(err)
				}
				defer nc.Close()
				js, err := jetstream.New(nc)
				if err != nil {
					b.Fatal(err)
				}
				name := eventkittest.UniqueName("ekbench")
				defer func() { _ = js.DeleteKeyValue(b.Context(), name) }()
				s, err := eknats.NewSagaStore(b.Context(), js, name, eknats.WithKVStorage(storage))
				if err != nil {
					b.Fatal(err)
				}
				var n atomic.Int64
				b.SetParallelism(8)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						id := strconv.FormatInt(n.Add(1), 10)
						c := saga.Change{Record: saga.Record{Saga: "bench", ID: id, Version: 1, Status: saga.Running}, EventID: id}
						for i := range emits {
							c.Outgoing = append(c.Outgoing, saga.Message{Topic: "stock.commands", Event: eventkittest.NewEvent(id + "-" + strconv.Itoa(i))})
						}
						if err := s.Save(b.Context(), c); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
			})
		}
	}
}
