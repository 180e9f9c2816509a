package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/eventkit/eventkit/es"
)

// CheckpointStore is an es.CheckpointStore in an SQLite table (default
// "eventkit_checkpoints"). SaveTx saves a checkpoint in the caller's
// transaction, so a projection commits its read model and its position
// together (effectively-once).
type CheckpointStore struct {
	db    *sql.DB
	table string
}

var _ es.CheckpointStore = (*CheckpointStore)(nil)

// NewCheckpointStore returns a checkpoint store in table of db ("" for the
// default). Call Migrate once.
func NewCheckpointStore(db *sql.DB, table string) *CheckpointStore {
	if table == "" {
		table = "eventkit_checkpoints"
	}
	return &CheckpointStore{db: db, table: esSqlIdent(table)}
}

// Migrate creates the table if it does not exist (idempotent).
func (s *CheckpointStore) Migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (name TEXT PRIMARY KEY, position INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate checkpoints: %w", err)
	}
	return nil
}

// Load implements es.CheckpointStore.
func (s *CheckpointStore) Load(ctx context.Context, name string) (uint64, bool, error) {
	var p int64
	err := s.db.QueryRowContext(ctx, `SELECT position FROM `+s.table+` WHERE name = ?`, name).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("sqlite: load checkpoint: %w", err)
	}
	return uint64(p), true, nil
}

// Save implements es.CheckpointStore.
func (s *CheckpointStore) Save(ctx context.Context, name string, pos uint64) error {
	return s.save(ctx, s.db, name, pos)
}

// SaveTx saves the checkpoint in tx: it commits, or not, with tx.
func (s *CheckpointStore) SaveTx(ctx context.Context, tx *sql.Tx, name string, pos uint64) error {
	return s.save(ctx, tx, name, pos)
}

// esSqlExecer is what *sql.DB, *sql.Tx and *sql.Conn share.
type esSqlExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *CheckpointStore) save(ctx context.Context, db esSqlExecer, name string, pos uint64) error {
	_, err := db.ExecContext(ctx, `INSERT INTO `+s.table+` (name, position) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position`, name, int64(pos))
	if err != nil {
		return fmt.Errorf("sqlite: save checkpoint: %w", err)
	}
	return nil
}
