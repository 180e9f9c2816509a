package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/eventkit/eventkit/dedup"
)

// DedupStore is a dedup.Store in an SQLite table (default
// "eventkit_dedup"). MarkTx marks a key in the caller's transaction, so a
// handler's effect and its dedup record commit together.
type DedupStore struct {
	db         *sql.DB
	table      string
	defaultTTL time.Duration
	now        func() time.Time
}

var _ dedup.Store = (*DedupStore)(nil)

// NewDedupStore returns a dedup store in table of db ("" for the default)
// whose records last defaultTTL when Mark gets no TTL (<= 0 here: 7 days).
// Call Migrate once. Expired rows are ignored, and deleted by Purge.
func NewDedupStore(db *sql.DB, table string, defaultTTL time.Duration) *DedupStore {
	if table == "" {
		table = "eventkit_dedup"
	}
	if defaultTTL <= 0 {
		defaultTTL = 7 * 24 * time.Hour
	}
	return &DedupStore{db: db, table: esSqlIdent(table), defaultTTL: defaultTTL, now: time.Now}
}

// Migrate creates the table if it does not exist (idempotent).
func (s *DedupStore) Migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate dedup: %w", err)
	}
	return nil
}

// Seen implements dedup.Store.
func (s *DedupStore) Seen(ctx context.Context, key string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+s.table+` WHERE key = ? AND expires_at > ?`, key, s.now().UnixNano()).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("sqlite: dedup seen: %w", err)
	}
	return n > 0, nil
}

// Mark implements dedup.Store.
func (s *DedupStore) Mark(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return s.mark(ctx, s.db, key, ttl)
}

// MarkTx marks key in tx.
func (s *DedupStore) MarkTx(ctx context.Context, tx *sql.Tx, key string, ttl time.Duration) (bool, error) {
	return s.mark(ctx, tx, key, ttl)
}

func (s *DedupStore) mark(ctx context.Context, db esSqlExecer, key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		ttl = s.defaultTTL
	}
	now := s.now()
	// One statement: insert, or take over an expired record; a live one is kept.
	res, err := db.ExecContext(ctx, `INSERT INTO `+s.table+` (key, expires_at) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE expires_at <= ?`,
		key, now.Add(ttl).UnixNano(), now.UnixNano())
	if err != nil {
		return false, fmt.Errorf("sqlite: dedup mark: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: dedup mark: %w", err)
	}
	return n == 1, nil
}

// Purge deletes the expired records.
func (s *DedupStore) Purge(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM `+s.table+` WHERE expires_at <= ?`, s.now().UnixNano())
	if err != nil {
		return 0, fmt.Errorf("sqlite: dedup purge: %w", err)
	}
	return res.RowsAffected()
}
