package saga_test

import (
	"context"
	"testing"

	"github.com/eventkit/eventkit/internal/testkit"
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
			testkit.ParallelRate(b, "steps/s", func(id string) error {
				return s.HandleEvent(context.Background(), ev(id, "order.placed", id))
			})
		})
	}
}
