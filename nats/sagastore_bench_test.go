package nats_test

import (
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/internal/testkit"
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
				s := embeddedSagaStore(b, eknats.WithKVStorage(storage))
				testkit.ParallelRate(b, "saves/s", func(id string) error {
					c := saga.Change{Record: saga.Record{Saga: "bench", ID: id, Version: 1, Status: saga.Running}, EventID: id}
					for i := range emits {
						c.Outgoing = append(c.Outgoing, saga.Message{Topic: "stock.commands", Event: eventkittest.NewEvent(id + "-" + strconv.Itoa(i))})
					}
					return s.Save(b.Context(), c)
				})
			})
		}
	}
}
