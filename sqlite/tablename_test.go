package sqlite_test

import (
	"testing"

	"github.com/eventkit/eventkit/internal/testkit"
	"github.com/eventkit/eventkit/sqlite"
)

// TestStoreTableNames: the checkpoint, snapshot and dedup stores refuse a
// table name that is not a plain SQL identifier (they quoted any name
// before); the check needs no database.
func TestStoreTableNames(t *testing.T) {
	testkit.TableNamesRefused(t, []string{`t"; DROP TABLE x; --`, "main.t", "t-1"}, map[string]func(string) testkit.Migrator{
		"sqlite.NewCheckpointStore": func(n string) testkit.Migrator { return sqlite.NewCheckpointStore(nil, n) },
		"sqlite.NewSnapshotStore":   func(n string) testkit.Migrator { return sqlite.NewSnapshotStore(nil, n) },
		"sqlite.NewDedupStore":      func(n string) testkit.Migrator { return sqlite.NewDedupStore(nil, n, 0) },
	})
}
