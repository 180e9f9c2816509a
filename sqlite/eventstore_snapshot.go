package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"time"

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
	t := esSqlIdent(cmp.Or(table, "eventkit_snapshots"))
	return &SnapshotStore{db: db, t: sqlstore.Snapshots{
		Dialect: dialect,
		Create: `CREATE TABLE IF NOT EXISTS ` + t + ` (
			stream_id TEXT PRIMARY KEY, version INTEGER NOT NULL, schema_version INTEGER NOT NULL,
			data BLOB NOT NULL, recorded_at TEXT NOT NULL)`,
		Upsert: `INSERT INTO ` + t + ` (stream_id, version, schema_version, data, recorded_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, schema_version = excluded.schema_version,
			data = excluded.data, recorded_at = excluded.recorded_at`,
		Select: `SELECT version, schema_version, data, recorded_at FROM ` + t + ` WHERE stream_id = ?`,
		Time:   func(t time.Time) any { return t.UTC().Format(time.RFC3339Nano) },
	}}
}

// Migrate creates the table if it does not exist (idempotent).
func (s *SnapshotStore) Migrate(ctx context.Context) error { return s.t.Migrate(ctx, sqlDB{s.db}) }

// SaveSnapshot implements es.SnapshotStore.
func (s *SnapshotStore) SaveSnapshot(ctx context.Context, snap es.Snapshot) error {
	return s.t.Save(ctx, sqlDB{s.db}, snap)
}

// LoadSnapshot implements es.SnapshotStore.
func (s *SnapshotStore) LoadSnapshot(ctx context.Context, stream string) (es.Snapshot, bool, error) {
	return s.t.Load(ctx, sqlDB{s.db}, stream)
}
