package postgres

import (
	"cmp"
	"context"

	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/internal/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CheckpointStore is an es.CheckpointStore in a PostgreSQL table (default
// "eventkit_checkpoints"). SaveTx saves a checkpoint inside the caller's
// transaction, so a projection can commit its read model and its position
// together (effectively-once).
type CheckpointStore struct {
	pool *pgxpool.Pool
	t    sqlstore.Checkpoints
	err  error // an invalid table name, returned by Migrate
}

var _ es.CheckpointStore = (*CheckpointStore)(nil)

// NewCheckpointStore returns a checkpoint store in table (may be
// schema-qualified; "" for the default). Call Migrate once.
func NewCheckpointStore(pool *pgxpool.Pool, table string) *CheckpointStore {
	return &CheckpointStore{err: checkTable("postgres.NewCheckpointStore", table), pool: pool, t: sqlstore.NewCheckpoints(dialect, quoteIdent(cmp.Or(table, "eventkit_checkpoints")))}
}

// Migrate creates the table if it does not exist (idempotent). It fails
// with an error wrapping eventkit.ErrInvalidOption if the table name given
// to the constructor is not a plain SQL identifier.
func (s *CheckpointStore) Migrate(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	return s.t.Migrate(ctx, pgDB{s.pool})
}

// Load implements es.CheckpointStore.
func (s *CheckpointStore) Load(ctx context.Context, name string) (uint64, bool, error) {
	return s.t.Load(ctx, pgDB{s.pool}, name)
}

// Save implements es.CheckpointStore.
func (s *CheckpointStore) Save(ctx context.Context, name string, pos uint64) error {
	return s.t.Save(ctx, pgDB{s.pool}, name, pos)
}

// SaveTx saves the checkpoint in tx: it is committed, or not, with the
// rest of tx.
func (s *CheckpointStore) SaveTx(ctx context.Context, tx pgx.Tx, name string, pos uint64) error {
	return s.t.Save(ctx, pgDB{tx}, name, pos)
}
