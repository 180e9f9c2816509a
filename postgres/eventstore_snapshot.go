package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventkit/eventkit/es"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SnapshotStore is an es.SnapshotStore in a PostgreSQL table (default
// "eventkit_snapshots"): the latest snapshot of each stream.
type SnapshotStore struct {
	pool  *pgxpool.Pool
	table string
}

var _ es.SnapshotStore = (*SnapshotStore)(nil)

// NewSnapshotStore returns a snapshot store in table (may be
// schema-qualified; "" for the default). Call Migrate once.
func NewSnapshotStore(pool *pgxpool.Pool, table string) *SnapshotStore {
	if table == "" {
		table = "eventkit_snapshots"
	}
	return &SnapshotStore{pool: pool, table: quoteIdent(table)}
}

// Migrate creates the table if it does not exist (idempotent).
func (s *SnapshotStore) Migrate(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
		stream_id text PRIMARY KEY, version bigint NOT NULL, schema_version int NOT NULL,
		data bytea NOT NULL, recorded_at timestamptz NOT NULL)`)
	if err != nil {
		return fmt.Errorf("postgres: migrate snapshots: %w", err)
	}
	return nil
}

// SaveSnapshot implements es.SnapshotStore.
func (s *SnapshotStore) SaveSnapshot(ctx context.Context, snap es.Snapshot) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` (stream_id, version, schema_version, data, recorded_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, schema_version = EXCLUDED.schema_version,
		data = EXCLUDED.data, recorded_at = EXCLUDED.recorded_at`,
		snap.StreamID, int64(snap.Version), snap.SchemaVersion, snap.Data, snap.RecordedAt)
	if err != nil {
		return fmt.Errorf("postgres: save snapshot: %w", err)
	}
	return nil
}

// LoadSnapshot implements es.SnapshotStore.
func (s *SnapshotStore) LoadSnapshot(ctx context.Context, stream string) (es.Snapshot, bool, error) {
	snap := es.Snapshot{StreamID: stream}
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT version, schema_version, data, recorded_at FROM `+s.table+` WHERE stream_id = $1`, stream).
		Scan(&v, &snap.SchemaVersion, &snap.Data, &snap.RecordedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return es.Snapshot{}, false, nil
	}
	if err != nil {
		return es.Snapshot{}, false, fmt.Errorf("postgres: load snapshot: %w", err)
	}
	snap.Version = uint64(v)
	return snap, true, nil
}
