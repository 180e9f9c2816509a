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
	db  *sql.DB
	t   sqlstore.Snapshots
	err error // an invalid table name, returned by Migrate
}

var _ es.SnapshotStore = (*SnapshotStore)(nil)

// NewSnapshotStore returns a snapshot store in table of db ("" for the
// default). Call Migrate once.
func NewSnapshotStore(db *sql.DB, table string) *SnapshotStore {
	return &SnapshotStore{err: checkTable("sqlite.NewSnapshotStore", table), db: db, t: sqlstore.NewSnapshots(dialect, esSqlIdent(cmp.Or(table, "eventkit_snapshots")))}
}

// Migrate creates the table if it does not exist (idempotent). It fails
// with an error wrapping eventkit.ErrInvalidOption if the table name given
// to the constructor is not a plain SQL identifier.
func (s *SnapshotStore) Migrate(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
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
