package postgres

import (
	"cmp"
	"context"

	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/internal/sqlstore"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SnapshotStore is an es.SnapshotStore in a PostgreSQL table (default
// "eventkit_snapshots"): the latest snapshot of each stream.
type SnapshotStore struct {
	pool *pgxpool.Pool
	t    sqlstore.Snapshots
	err  error // an invalid table name, returned by Migrate
}

var _ es.SnapshotStore = (*SnapshotStore)(nil)

// NewSnapshotStore returns a snapshot store in table (may be
// schema-qualified; "" for the default). Call Migrate once.
func NewSnapshotStore(pool *pgxpool.Pool, table string) *SnapshotStore {
	return &SnapshotStore{err: checkTable("postgres.NewSnapshotStore", table), pool: pool, t: sqlstore.NewSnapshots(dialect, quoteIdent(cmp.Or(table, "eventkit_snapshots")))}
}

// Migrate creates the table if it does not exist (idempotent). It fails
// with an error wrapping eventkit.ErrInvalidOption if the table name given
// to the constructor is not a plain SQL identifier.
func (s *SnapshotStore) Migrate(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	return s.t.Migrate(ctx, pgDB{s.pool})
}

// SaveSnapshot implements es.SnapshotStore.
func (s *SnapshotStore) SaveSnapshot(ctx context.Context, snap es.Snapshot) error {
	return s.t.Save(ctx, pgDB{s.pool}, snap)
}

// LoadSnapshot implements es.SnapshotStore.
func (s *SnapshotStore) LoadSnapshot(ctx context.Context, stream string) (es.Snapshot, bool, error) {
	return s.t.Load(ctx, pgDB{s.pool}, stream)
}
