package postgres

import (
	"cmp"
	"context"
	"time"

	"github.com/eventkit/eventkit/dedup"
	"github.com/eventkit/eventkit/internal/sqlstore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DedupStore is a dedup.Store in a PostgreSQL table (default
// "eventkit_dedup"). MarkTx marks a key inside the caller's transaction, so
// a handler's effect and its dedup record commit together.
type DedupStore struct {
	pool       *pgxpool.Pool
	table      string
	defaultTTL time.Duration
	err        error // an invalid table name, returned by Migrate
}

var _ dedup.Store = (*DedupStore)(nil)

// NewDedupStore returns a dedup store in table (may be schema-qualified;
// "" for the default) whose records last defaultTTL when Mark gets no TTL
// (<= 0 here: 7 days). Call Migrate once. Expired rows are ignored, and
// deleted by Purge.
func NewDedupStore(pool *pgxpool.Pool, table string, defaultTTL time.Duration) *DedupStore {
	return &DedupStore{err: checkTable("postgres.NewDedupStore", table), pool: pool, table: quoteIdent(cmp.Or(table, "eventkit_dedup")), defaultTTL: sqlstore.PositiveOr(defaultTTL, sqlstore.DefaultDedupTTL)}
}

// Migrate creates the table if it does not exist (idempotent). It fails
// with an error wrapping eventkit.ErrInvalidOption if the table name given
// to the constructor is not a plain SQL identifier.
func (s *DedupStore) Migrate(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	return dialect.Migrate(ctx, pgDB{s.pool}, "dedup", `CREATE TABLE IF NOT EXISTS `+s.table+` (key text PRIMARY KEY, expires_at timestamptz NOT NULL)`)
}

// Seen implements dedup.Store.
func (s *DedupStore) Seen(ctx context.Context, key string) (bool, error) {
	var seen bool
	_, err := dialect.Get(ctx, pgDB{s.pool}, "dedup seen", `SELECT EXISTS (SELECT 1 FROM `+s.table+` WHERE key = $1 AND expires_at > clock_timestamp())`, []any{key}, &seen)
	return seen, err
}

// Mark implements dedup.Store.
func (s *DedupStore) Mark(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return s.mark(ctx, pgDB{s.pool}, key, ttl)
}

// MarkTx marks key inside tx.
func (s *DedupStore) MarkTx(ctx context.Context, tx pgx.Tx, key string, ttl time.Duration) (bool, error) {
	return s.mark(ctx, pgDB{tx}, key, ttl)
}

func (s *DedupStore) mark(ctx context.Context, db sqlstore.DB, key string, ttl time.Duration) (bool, error) {
	ttl = sqlstore.PositiveOr(ttl, s.defaultTTL)
	// Insert, or take over an expired record; a live record is kept.
	n, err := dialect.Exec(ctx, db, "dedup mark", `INSERT INTO `+s.table+` (key, expires_at) VALUES ($1, clock_timestamp() + $2 * interval '1 microsecond')
		ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE `+s.table+`.expires_at <= clock_timestamp()`,
		key, ttl.Microseconds())
	return n == 1, err
}

// Purge deletes the expired records.
func (s *DedupStore) Purge(ctx context.Context) (int64, error) {
	return dialect.Exec(ctx, pgDB{s.pool}, "dedup purge", `DELETE FROM `+s.table+` WHERE expires_at <= clock_timestamp()`)
}
