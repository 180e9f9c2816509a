package sqlite

import (
	"cmp"
	"context"
	"database/sql"

	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/internal/sqlstore"
)

// CheckpointStore is an es.CheckpointStore in an SQLite table (default
// "eventkit_checkpoints"). SaveTx saves a checkpoint in the caller's
// transaction, so a projection commits its read model and its position
// together (effectively-once).
type CheckpointStore struct {
	db  *sql.DB
	t   sqlstore.Checkpoints
	err error // an invalid table name, returned by Migrate
}

var _ es.CheckpointStore = (*CheckpointStore)(nil)

// NewCheckpointStore returns a checkpoint store in table of db ("" for the
// default). Call Migrate once.
func NewCheckpointStore(db *sql.DB, table string) *CheckpointStore {
	return &CheckpointStore{err: checkTable("sqlite.NewCheckpointStore", table), db: db, t: sqlstore.NewCheckpoints(dialect, esSqlIdent(cmp.Or(table, "eventkit_checkpoints")))}
}

// Migrate creates the table if it does not exist (idempotent). It fails
// with an error wrapping eventkit.ErrInvalidOption if the table name given
// to the constructor is not a plain SQL identifier.
func (s *CheckpointStore) Migrate(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	return s.t.Migrate(ctx, sqlstore.Std(s.db))
}

// Load implements es.CheckpointStore.
func (s *CheckpointStore) Load(ctx context.Context, name string) (uint64, bool, error) {
	return s.t.Load(ctx, sqlstore.Std(s.db), name)
}

// Save implements es.CheckpointStore.
func (s *CheckpointStore) Save(ctx context.Context, name string, pos uint64) error {
	return s.t.Save(ctx, sqlstore.Std(s.db), name, pos)
}

// SaveTx saves the checkpoint in tx: it commits, or not, with tx.
func (s *CheckpointStore) SaveTx(ctx context.Context, tx *sql.Tx, name string, pos uint64) error {
	return s.t.Save(ctx, sqlstore.Std(tx), name, pos)
}
