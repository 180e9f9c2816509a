package postgres_test

import (
	"context"
	"testing"

	"github.com/eventkit/eventkit/dedup"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/postgres"
)

func TestDedupStore(t *testing.T) {
	eventkittest.TestDedupStore(t, func(t *testing.T) dedup.Store {
		pool, schema := esTestPool(t)
		s := postgres.NewDedupStore(pool, schema+".dedup", 0)
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}
