package memory_test

import (
	"testing"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/memory"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/saga"
)

func TestSagaStoreConformance(t *testing.T) {
	eventkittest.TestSagaStore(t, func(t *testing.T) (saga.Store, outbox.Store) {
		s := memory.NewSagaStore()
		return s, s.Outbox()
	})
}
