package sqlite_test

import (
	"testing"

	"github.com/eventkit/eventkit/dedup"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/eventkittest"
	"github.com/eventkit/eventkit/sqlite"
)

// The conformance suites of the small stores, each on a database of its own
// test, in the default table.

func TestDedupStore(t *testing.T) {
	eventkittest.TestDedupStore(t, func(t *testing.T) dedup.Store {
		return eventkittest.Migrated(t, sqlite.NewDedupStore(esTestDB(t), "", 0))
	})
}

func TestCheckpointStore(t *testing.T) {
	eventkittest.TestCheckpointStore(t, func(t *testing.T) es.CheckpointStore {
		return eventkittest.Migrated(t, sqlite.NewCheckpointStore(esTestDB(t), ""))
	})
}

func TestSnapshotStore(t *testing.T) {
	eventkittest.TestSnapshotStore(t, func(t *testing.T) es.SnapshotStore {
		return eventkittest.Migrated(t, sqlite.NewSnapshotStore(esTestDB(t), ""))
	})
}
