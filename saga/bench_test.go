package saga_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/saga"
)

// BenchmarkStep measures a step that starts an instance and emits one
// command (one store transaction: instance, handled id, outbox row), on
// every store, with 8 goroutines per core handling distinct instances.
func BenchmarkStep(b *testing.B) {
	opens := []struct {
		name string
		open func(b *testing.B) saga.Store
	}{{"memory", func(*testing.B) saga.Store { return memory.NewSagaStore() }}}
	for _, bk := range backends {
		opens = append(opens, struct {
			name string
			open func(b *testing.B) saga.Store
		}{bk.name, func(b *testing.B) saga.Store { s, _ := bk.open(b, bk.place(b)); return s }})
	}
	for _, o := range opens {
		b.Run(o.name, func(b *testing.B) {
			s := orderSaga(b, o.open(b))
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := strconv.FormatInt(n.Add(1), 10)
					if err := s.HandleEvent(context.Background(), ev(id, "order.placed", id)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
		})
	}
}
