package sqlite_test

import (
	"context"
	"testing"

	"github.com/eventkit/eventkit/dedup"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/sqlite"
)

func TestDedupStore(t *testing.T) {
	eventkittest.TestDedupStore(t, func(t *testing.T) dedup.Store {
		s := sqlite.NewDedupStore(esTestDB(t), "", 0)
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}
