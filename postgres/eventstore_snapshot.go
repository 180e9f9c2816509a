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
}

var _ es.SnapshotStore = (*SnapshotStore)(nil)

// NewSnapshotStore returns a snapshot store in table (may be
// schema-qualified; "" for the default). Call Migrate once.
func NewSnapshotStore(pool *pgxpool.Pool, table string) *SnapshotStore {
	t := quoteIdent(cmp.Or(table, "eventkit_snapshots"))
	return &SnapshotStore{pool: pool, t: sqlstore.Snapshots{
		Dialect: dialect,
		Create: `CREATE TABLE IF NOT EXISTS ` + t + ` (
			stream_id text PRIMARY KEY, version bigint NOT NULL, schema_version int NOT NULL,
			data bytea NOT NULL, recorded_at timestamptz NOT NULL)`,
		Upsert: `INSERT INTO ` + t + ` (stream_id, version, schema_version, data, recorded_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, schema_version = EXCLUDED.schema_version,
			data = EXCLUDED.data, recorded_at = EXCLUDED.recorded_at`,
		Select: `SELECT version, schema_version, data, recorded_at FROM ` + t + ` WHERE stream_id = $1`,
	}}
}

// Migrate creates the table if it does not exist (idempotent).
func (s *SnapshotStore) Migrate(ctx context.Context) error { return s.t.Migrate(ctx, pgDB{s.pool}) }

// SaveSnapshot implements es.SnapshotStore.
func (s *SnapshotStore) SaveSnapshot(ctx context.Context, snap es.Snapshot) error {
	return s.t.Save(ctx, pgDB{s.pool}, snap)
}

// LoadSnapshot implements es.SnapshotStore.
func (s *SnapshotStore) LoadSnapshot(ctx context.Context, stream string) (es.Snapshot, bool, error) {
	return s.t.Load(ctx, pgDB{s.pool}, stream)
}
