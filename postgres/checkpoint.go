package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventkit/eventkit/es"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CheckpointStore is an es.CheckpointStore in a PostgreSQL table (default
// "eventkit_checkpoints"). SaveTx saves a checkpoint inside the caller's
// transaction, so a projection can commit its read model and its position
// together (effectively-once).
type CheckpointStore struct {
	pool  *pgxpool.Pool
	table string
}

var _ es.CheckpointStore = (*CheckpointStore)(nil)

// NewCheckpointStore returns a checkpoint store in table (may be
// schema-qualified; "" for the default). Call Migrate once.
func NewCheckpointStore(pool *pgxpool.Pool, table string) *CheckpointStore {
	if table == "" {
		table = "eventkit_checkpoints"
	}
	return &CheckpointStore{pool: pool, table: quoteIdent(table)}
}

// Migrate creates the table if it does not exist (idempotent).
func (s *CheckpointStore) Migrate(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (name text PRIMARY KEY, position bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		return fmt.Errorf("postgres: migrate checkpoints: %w", err)
	}
	return nil
}

// Load implements es.CheckpointStore.
func (s *CheckpointStore) Load(ctx context.Context, name string) (uint64, bool, error) {
	var p int64
	err := s.pool.QueryRow(ctx, `SELECT position FROM `+s.table+` WHERE name = $1`, name).Scan(&p)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("postgres: load checkpoint: %w", err)
	}
	return uint64(p), true, nil
}

// Save implements es.CheckpointStore.
func (s *CheckpointStore) Save(ctx context.Context, name string, pos uint64) error {
	return s.save(ctx, s.pool, name, pos)
}

// SaveTx saves the checkpoint in tx: it is committed, or not, with the
// rest of tx.
func (s *CheckpointStore) SaveTx(ctx context.Context, tx pgx.Tx, name string, pos uint64) error {
	return s.save(ctx, tx, name, pos)
}

// execer is what a pool and a transaction share.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func (s *CheckpointStore) save(ctx context.Context, db execer, name string, pos uint64) error {
	_, err := db.Exec(ctx, `INSERT INTO `+s.table+` (name, position) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()`, name, int64(pos))
	if err != nil {
		return fmt.Errorf("postgres: save checkpoint: %w", err)
	}
	return nil
}
