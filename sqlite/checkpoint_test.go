package sqlite_test

import (
	"context"
	"testing"

	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/sqlite"
)

func TestCheckpointStore(t *testing.T) {
	eventkittest.TestCheckpointStore(t, func(t *testing.T) es.CheckpointStore {
		s := sqlite.NewCheckpointStore(esTestDB(t), "")
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}
