package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/eventkit/eventkit/dedup"
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
}

var _ dedup.Store = (*DedupStore)(nil)

// NewDedupStore returns a dedup store in table (may be schema-qualified;
// "" for the default) whose records last defaultTTL when Mark gets no TTL
// (<= 0 here: 7 days). Call Migrate once. Expired rows are ignored, and
// deleted by Purge.
func NewDedupStore(pool *pgxpool.Pool, table string, defaultTTL time.Duration) *DedupStore {
	if table == "" {
		table = "eventkit_dedup"
	}
	if defaultTTL <= 0 {
		defaultTTL = 7 * 24 * time.Hour
	}
	return &DedupStore{pool: pool, table: quoteIdent(table), defaultTTL: defaultTTL}
}

// Migrate creates the table if it does not exist (idempotent).
func (s *DedupStore) Migrate(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (key text PRIMARY KEY, expires_at timestamptz NOT NULL)`)
	if err != nil {
		return fmt.Errorf("postgres: migrate dedup: %w", err)
	}
	return nil
}

// Seen implements dedup.Store.
func (s *DedupStore) Seen(ctx context.Context, key string) (bool, error) {
	var seen bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+s.table+` WHERE key = $1 AND expires_at > clock_timestamp())`, key).Scan(&seen)
	if err != nil {
		return false, fmt.Errorf("postgres: dedup seen: %w", err)
	}
	return seen, nil
}

// Mark implements dedup.Store.
func (s *DedupStore) Mark(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return s.mark(ctx, s.pool, key, ttl)
}

// MarkTx marks key inside tx.
func (s *DedupStore) MarkTx(ctx context.Context, tx pgx.Tx, key string, ttl time.Duration) (bool, error) {
	return s.mark(ctx, tx, key, ttl)
}

func (s *DedupStore) mark(ctx context.Context, db execer, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		ttl = s.defaultTTL
	}
	// Insert, or take over an expired record; a live record is kept.
	tag, err := db.Exec(ctx, `INSERT INTO `+s.table+` (key, expires_at) VALUES ($1, clock_timestamp() + $2 * interval '1 microsecond')
		ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE `+s.table+`.expires_at <= clock_timestamp()`,
		key, ttl.Microseconds())
	if err != nil {
		return false, fmt.Errorf("postgres: dedup mark: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Purge deletes the expired records.
func (s *DedupStore) Purge(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+s.table+` WHERE expires_at <= clock_timestamp()`)
	if err != nil {
		return 0, fmt.Errorf("postgres: dedup purge: %w", err)
	}
	return tag.RowsAffected(), nil
}
