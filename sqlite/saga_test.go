package sqlite_test

import (
	"context"
	"testing"

	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/saga"
	"github.com/eventkit/eventkit/sqlite"
)

func TestSagaStoreConformance(t *testing.T) {
	eventkittest.TestSagaStore(t, func(t *testing.T) (saga.Store, outbox.Store) {
		db := esTestDB(t)
		ob := sqlite.NewOutbox(db, sqlite.OutboxPartitions(4))
		s := sqlite.NewSagaStore(db, ob, "")
		for range 2 { // idempotent
			if err := s.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		return s, ob
	})
}
