package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"time"

	"github.com/eventkit/eventkit/dedup"
	"github.com/eventkit/eventkit/internal/sqlstore"
)

// DedupStore is a dedup.Store in an SQLite table (default
// "eventkit_dedup"). MarkTx marks a key in the caller's transaction, so a
// handler's effect and its dedup record commit together.
type DedupStore struct {
	db         *sql.DB
	table      string
	defaultTTL time.Duration
	now        func() time.Time
	err        error // an invalid table name, returned by Migrate
}

var _ dedup.Store = (*DedupStore)(nil)

// NewDedupStore returns a dedup store in table of db ("" for the default)
// whose records last defaultTTL when Mark gets no TTL (<= 0 here: 7 days).
// Call Migrate once. Expired rows are ignored, and deleted by Purge.
func NewDedupStore(db *sql.DB, table string, defaultTTL time.Duration) *DedupStore {
	return &DedupStore{err: checkTable("sqlite.NewDedupStore", table), db: db, table: esSqlIdent(cmp.Or(table, "eventkit_dedup")), defaultTTL: sqlstore.PositiveOr(defaultTTL, sqlstore.DefaultDedupTTL), now: time.Now}
}

// Migrate creates the table if it does not exist (idempotent). It fails
// with an error wrapping eventkit.ErrInvalidOption if the table name given
// to the constructor is not a plain SQL identifier.
func (s *DedupStore) Migrate(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	return dialect.Migrate(ctx, sqlstore.Std(s.db), "dedup", `CREATE TABLE IF NOT EXISTS `+s.table+` (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)`)
}

// Seen implements dedup.Store.
func (s *DedupStore) Seen(ctx context.Context, key string) (bool, error) {
	var n int
	_, err := dialect.Get(ctx, sqlstore.Std(s.db), "dedup seen", `SELECT COUNT(*) FROM `+s.table+` WHERE key = ? AND expires_at > ?`, []any{key, s.now().UnixNano()}, &n)
	return n > 0, err
}

// Mark implements dedup.Store.
func (s *DedupStore) Mark(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return s.mark(ctx, sqlstore.Std(s.db), key, ttl)
}

// MarkTx marks key in tx.
func (s *DedupStore) MarkTx(ctx context.Context, tx *sql.Tx, key string, ttl time.Duration) (bool, error) {
	return s.mark(ctx, sqlstore.Std(tx), key, ttl)
}

func (s *DedupStore) mark(ctx context.Context, db sqlstore.DB, key string, ttl time.Duration) (bool, error) {
	ttl = sqlstore.PositiveOr(ttl, s.defaultTTL)
	now := s.now()
	// One statement: insert, or take over an expired record; a live one is kept.
	n, err := dialect.Exec(ctx, db, "dedup mark", `INSERT INTO `+s.table+` (key, expires_at) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE expires_at <= ?`,
		key, now.Add(ttl).UnixNano(), now.UnixNano())
	return n == 1, err
}

// Purge deletes the expired records.
func (s *DedupStore) Purge(ctx context.Context) (int64, error) {
	return dialect.Exec(ctx, sqlstore.Std(s.db), "dedup purge", `DELETE FROM `+s.table+` WHERE expires_at <= ?`, s.now().UnixNano())
}
