package postgres_test

import (
	"testing"

	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/postgres"
)

// TestStoreTableNames: the checkpoint, snapshot and dedup stores refuse a
// table name that is not a plain SQL identifier (they quoted any name
// before); the check needs no database.
func TestStoreTableNames(t *testing.T) {
	testkit.TableNamesRefused(t, []string{`t"; DROP TABLE x; --`, "a.b.c", "t-1"}, map[string]func(string) testkit.Migrator{
		"postgres.NewCheckpointStore": func(n string) testkit.Migrator { return postgres.NewCheckpointStore(nil, n) },
		"postgres.NewSnapshotStore":   func(n string) testkit.Migrator { return postgres.NewSnapshotStore(nil, n) },
		"postgres.NewDedupStore":      func(n string) testkit.Migrator { return postgres.NewDedupStore(nil, n, 0) },
	})
}
