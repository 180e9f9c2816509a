package postgres_test

import (
	"context"
	"testing"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/postgres"
	"github.com/eventkit/eventkit/saga"
)

func TestSagaStoreConformance(t *testing.T) {
	eventkittest.TestSagaStore(t, func(t *testing.T) (saga.Store, outbox.Store) {
		pool, schema := esTestPool(t)
		ob, err := postgres.NewOutbox(pool, postgres.OutboxTable(schema+".outbox"), postgres.OutboxPartitions(4))
		if err != nil {
			t.Fatal(err)
		}
		s := postgres.NewSagaStore(pool, ob, schema+".sagas")
		for range 2 { // idempotent
			if err := s.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		return s, ob
	})
}
