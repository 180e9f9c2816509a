package sqlite_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/sqlite"
)

// TestStoreTableNames: the checkpoint, snapshot and dedup stores refuse a
// table name that is not a plain SQL identifier, naming the constructor
// and the name (they quoted any name before); the check needs no database.
func TestStoreTableNames(t *testing.T) {
	migrators := map[string]func(table string) interface{ Migrate(context.Context) error }{
		"sqlite.NewCheckpointStore": func(table string) interface{ Migrate(context.Context) error } {
			return sqlite.NewCheckpointStore(nil, table)
		},
		"sqlite.NewSnapshotStore": func(table string) interface{ Migrate(context.Context) error } {
			return sqlite.NewSnapshotStore(nil, table)
		},
		"sqlite.NewDedupStore": func(table string) interface{ Migrate(context.Context) error } {
			return sqlite.NewDedupStore(nil, table, 0)
		},
	}
	for ctor, newStore := range migrators {
		for _, bad := range []string{`t"; DROP TABLE x; --`, "main.t", "t-1"} {
			err := newStore(bad).Migrate(context.Background())
			if !errors.Is(err, eventkit.ErrInvalidOption) || !strings.Contains(err.Error(), ctor) {
				t.Errorf("%s(%q).Migrate = %v, want ErrInvalidOption naming %s", ctor, bad, err, ctor)
			}
		}
	}
}
