package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventkit/eventkit/es"
)

// SnapshotStore is an es.SnapshotStore in an SQLite table (default
// "eventkit_snapshots"): the latest snapshot of each stream.
type SnapshotStore struct {
	db    *sql.DB
	table string
}

var _ es.SnapshotStore = (*SnapshotStore)(nil)

// NewSnapshotStore returns a snapshot store in table of db ("" for the
// default). Call Migrate once.
func NewSnapshotStore(db *sql.DB, table string) *SnapshotStore {
	if table == "" {
		table = "eventkit_snapshots"
	}
	return &SnapshotStore{db: db, table: esSqlIdent(table)}
}

// Migrate creates the table if it does not exist (idempotent).
func (s *SnapshotStore) Migrate(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
		stream_id TEXT PRIMARY KEY, version INTEGER NOT NULL, schema_version INTEGER NOT NULL,
		data BLOB NOT NULL, recorded_at TEXT NOT NULL)`)
	if err != nil {
		return fmt.Errorf("sqlite: migrate snapshots: %w", err)
	}
	return nil
}

// SaveSnapshot implements es.SnapshotStore.
func (s *SnapshotStore) SaveSnapshot(ctx context.Context, snap es.Snapshot) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO `+s.table+` (stream_id, version, schema_version, data, recorded_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, schema_version = excluded.schema_version,
		data = excluded.data, recorded_at = excluded.recorded_at`,
		snap.StreamID, int64(snap.Version), snap.SchemaVersion, snap.Data, snap.RecordedAt.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("sqlite: save snapshot: %w", err)
	}
	return nil
}

// LoadSnapshot implements es.SnapshotStore.
func (s *SnapshotStore) LoadSnapshot(ctx context.Context, stream string) (es.Snapshot, bool, error) {
	snap := es.Snapshot{StreamID: stream}
	var v int64
	var at string
	err := s.db.QueryRowContext(ctx, `SELECT version, schema_version, data, recorded_at FROM `+s.table+` WHERE stream_id = ?`, stream).
		Scan(&v, &snap.SchemaVersion, &snap.Data, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return es.Snapshot{}, false, nil
	}
	if err != nil {
		return es.Snapshot{}, false, fmt.Errorf("sqlite: load snapshot: %w", err)
	}
	snap.Version = uint64(v)
	if snap.RecordedAt, err = time.Parse(time.RFC3339Nano, at); err != nil {
		return es.Snapshot{}, false, fmt.Errorf("sqlite: load snapshot: %w", err)
	}
	return snap, true, nil
}
