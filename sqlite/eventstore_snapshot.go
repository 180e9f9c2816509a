package sqlite

import (
	"cmp"
	"context"
	"database/sql"

	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/internal/sqlstore"
)

// SnapshotStore is an es.SnapshotStore in an SQLite table (default
// "eventkit_snapshots"): the latest snapshot of each stream.
type SnapshotStore struct {
	db *sql.DB
	t  sqlstore.Snapshots
}

var _ es.SnapshotStore = (*SnapshotStore)(nil)

// NewSnapshotStore returns a snapshot store in table of db ("" for the
// default). Call Migrate once.
func NewSnapshotStore(db *sql.DB, table string) *SnapshotStore {
	return &SnapshotStore{db: db, t: sqlstore.NewSnapshots(dialect, esSqlIdent(cmp.Or(table, "eventkit_snapshots")))}
}

// Migrate creates the table if it does not exist (idempotent).
func (s *SnapshotStore) Migrate(ctx context.Context) error {
	return s.t.Migrate(ctx, sqlstore.Std(s.db))
}

// SaveSnapshot implements es.SnapshotStore.
func (s *SnapshotStore) SaveSnapshot(ctx context.Context, snap es.Snapshot) error {
	return s.t.Save(ctx, sqlstore.Std(s.db), snap)
}

// LoadSnapshot implements es.SnapshotStore.
func (s *SnapshotStore) LoadSnapshot(ctx context.Context, stream string) (es.Snapshot, bool, error) {
	return s.t.Load(ctx, sqlstore.Std(s.db), stream)
}
