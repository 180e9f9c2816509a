package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/opt"
	"github.com/eventkit/eventkit/internal/sqlstore"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/topic"
)

// Outbox is the transactional outbox in an SQLite database: Write stores
// events in the caller's *sql.Tx, and the Outbox is the outbox.Store that an
// outbox.Relay publishes from. Delivered rows are deleted.
//
// Commit order: SQLite runs one write transaction at a time, and row ids
// come from AUTOINCREMENT (never reused), so ids are allocated and committed
// in the same order: a relay never sees a lower id commit after a higher
// one. SQLite has no LISTEN/NOTIFY: relays poll (outbox.WithPollInterval;
// 50-100ms suits an embedded database), or call Relay.Wake after a commit.
// Open the database in WAL mode with a busy timeout (see EventStore).
type Outbox struct {
	db         *sql.DB
	name       string
	partitions int
	table      string
	leases     string
	relays     string
}

// OutboxOption configures an Outbox. An invalid value makes NewOutbox fail
// with an error wrapping eventkit.ErrInvalidOption.
type OutboxOption func(*Outbox) error

// OutboxTable sets the outbox table's name (default "eventkit_outbox"); its
// companions are <name>_leases and <name>_relays. It must not be empty.
func OutboxTable(name string) OutboxOption {
	return opt.Set("sqlite.OutboxTable", name, name == "", "must not be empty", func(o *Outbox) *string { return &o.name })
}

// OutboxPartitions sets the number of partitions (default 16), fixed when
// the tables are created; n must be positive.
func OutboxPartitions(n int) OutboxOption {
	return opt.Set("sqlite.OutboxPartitions", n, n <= 0, fmt.Sprintf("must be positive, got %d", n), func(o *Outbox) *int { return &o.partitions })
}

// NewOutbox returns the outbox in db. Call Migrate once. An invalid option
// value makes it fail with an error wrapping eventkit.ErrInvalidOption.
func NewOutbox(db *sql.DB, opts ...OutboxOption) (*Outbox, error) {
	o := &Outbox{db: db, name: "eventkit_outbox", partitions: 16}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	o.table = esSqlIdent(o.name)
	o.leases = esSqlIdent(o.name + "_leases")
	o.relays = esSqlIdent(o.name + "_relays")
	return o, nil
}

// Migrate creates the outbox's tables if they do not exist.
func (o *Outbox) Migrate(ctx context.Context) error {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: outbox migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + o.table + ` (
			id INTEGER PRIMARY KEY AUTOINCREMENT,
			partition INTEGER NOT NULL,
			topic TEXT NOT NULL,
			event_id TEXT NOT NULL,
			event BLOB NOT NULL,
			created_at INTEGER NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + esSqlIdent(o.name+"_partition") + ` ON ` + o.table + ` (partition, id)`,
		`CREATE TABLE IF NOT EXISTS ` + o.leases + ` (
			partition INTEGER PRIMARY KEY,
			owner TEXT NOT NULL DEFAULT '',
			expires_at INTEGER NOT NULL DEFAULT 0)`,
		`CREATE TABLE IF NOT EXISTS ` + o.relays + ` (
			owner TEXT PRIMARY KEY,
			seen_at INTEGER NOT NULL)`,
		`INSERT INTO ` + o.leases + ` (partition)
			WITH RECURSIVE p(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM p WHERE n + 1 < ` + fmt.Sprint(o.partitions) + `)
			SELECT n FROM p WHERE NOT EXISTS (SELECT 1 FROM ` + o.leases + `)`,
	}
	n, err := dialect.MigrateOutbox(ctx, sqlstore.Std(tx), o.leases, stmts...)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: outbox migrate: %w", err)
	}
	o.partitions = n
	return nil
}

// Write stores events, to be published to topic, in tx: they exist if and
// only if tx commits. The events are validated first; none is written if
// one is invalid.
func (o *Outbox) Write(ctx context.Context, tx *sql.Tx, topicName string, events ...event.Event) error {
	if err := topic.ValidateName(topicName); err != nil {
		return fmt.Errorf("sqlite: outbox write: %w", err)
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return fmt.Errorf("sqlite: outbox write: %w", err)
	}
	now := time.Now().UnixMilli()
	for _, e := range events {
		b, err := eventkit.MarshalEvent(e)
		if err != nil {
			return fmt.Errorf("sqlite: outbox write: encoding event %q: %w", e.ID(), err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+o.table+` (partition, topic, event_id, event, created_at) VALUES (?, ?, ?, ?, ?)`,
			outbox.PartitionOf(e, o.partitions), topicName, e.ID(), b, now); err != nil {
			return fmt.Errorf("sqlite: outbox write: %w", err)
		}
	}
	return nil
}

// Partitions implements outbox.Store.
func (o *Outbox) Partitions() int { return o.partitions }

// Claim implements outbox.Store (the database's relays share one clock: the
// machine's).
func (o *Outbox) Claim(ctx context.Context, owner string, ttl time.Duration) ([]int, error) {
	now := time.Now().UnixMilli()
	exp := now + ttl.Milliseconds()
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: outbox claim: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	// A write first, so that the transaction takes the write lock at once.
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+o.relays+` (owner, seen_at) VALUES (?, ?)
		ON CONFLICT (owner) DO UPDATE SET seen_at = excluded.seen_at`, owner, now); err != nil {
		return nil, fmt.Errorf("sqlite: outbox claim: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+o.relays+` WHERE seen_at < ?`, now-3*ttl.Milliseconds()); err != nil {
		return nil, fmt.Errorf("sqlite: outbox claim: %w", err)
	}
	var live int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+o.relays+` WHERE seen_at >= ?`, now-ttl.Milliseconds()).Scan(&live); err != nil {
		return nil, fmt.Errorf("sqlite: outbox claim: %w", err)
	}
	live = max(live, 1)
	share := (o.partitions + live - 1) / live
	mine, err := o.partitionsWhere(ctx, tx, `owner = ? AND expires_at > ?`, owner, now)
	if err != nil {
		return nil, fmt.Errorf("sqlite: outbox claim: %w", err)
	}
	if len(mine) > share {
		for _, p := range mine[share:] {
			if _, err := tx.ExecContext(ctx, `UPDATE `+o.leases+` SET owner = '', expires_at = 0 WHERE partition = ?`, p); err != nil {
				return nil, fmt.Errorf("sqlite: outbox claim: %w", err)
			}
		}
		mine = mine[:share]
	} else if len(mine) < share {
		free, err := o.partitionsWhere(ctx, tx, `expires_at <= ?`, now)
		if err != nil {
			return nil, fmt.Errorf("sqlite: outbox claim: %w", err)
		}
		mine = append(mine, free[:min(len(free), share-len(mine))]...)
	}
	for _, p := range mine {
		if _, err := tx.ExecContext(ctx, `UPDATE `+o.leases+` SET owner = ?, expires_at = ? WHERE partition = ?`, owner, exp, p); err != nil {
			return nil, fmt.Errorf("sqlite: outbox claim: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: outbox claim: %w", err)
	}
	slices.Sort(mine)
	return mine, nil
}

func (o *Outbox) partitionsWhere(ctx context.Context, tx *sql.Tx, cond string, args ...any) ([]int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT partition FROM `+o.leases+` WHERE `+cond+` ORDER BY partition`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var p int
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Release implements outbox.Store.
func (o *Outbox) Release(ctx context.Context, owner string) error {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: outbox release: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `UPDATE `+o.leases+` SET owner = '', expires_at = 0 WHERE owner = ?`, owner); err != nil {
		return fmt.Errorf("sqlite: outbox release: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+o.relays+` WHERE owner = ?`, owner); err != nil {
		return fmt.Errorf("sqlite: outbox release: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: outbox release: %w", err)
	}
	return nil
}

// Fetch implements outbox.Store.
func (o *Outbox) Fetch(ctx context.Context, cursors []outbox.Cursor, limit int) ([]outbox.Record, error) {
	if len(cursors) == 0 {
		return nil, nil
	}
	var where []string
	args := make([]any, 0, 2*len(cursors)+1)
	for _, c := range cursors {
		where = append(where, `(partition = ? AND id > ?)`)
		args = append(args, c.Partition, c.After)
	}
	args = append(args, limit)
	rows, err := o.db.QueryContext(ctx, `SELECT id, partition, topic, event FROM `+o.table+`
		WHERE `+strings.Join(where, " OR ")+` ORDER BY id LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: outbox fetch: %w", err)
	}
	defer rows.Close()
	return dialect.OutboxRecords(rows, nil)
}

// MarkDelivered implements outbox.Store: it deletes the rows of partitions
// that owner still holds.
func (o *Outbox) MarkDelivered(ctx context.Context, owner string, records []outbox.Record) error {
	if len(records) == 0 {
		return nil
	}
	ph := strings.TrimSuffix(strings.Repeat("?,", len(records)), ",")
	args := make([]any, 0, len(records)+2)
	for _, r := range records {
		args = append(args, r.ID)
	}
	args = append(args, owner, time.Now().UnixMilli())
	res, err := o.db.ExecContext(ctx, `DELETE FROM `+o.table+` WHERE id IN (`+ph+`)
		AND partition IN (SELECT partition FROM `+o.leases+` WHERE owner = ? AND expires_at > ?)`, args...)
	if err != nil {
		return fmt.Errorf("sqlite: outbox mark delivered: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n < int64(len(records)) {
		return fmt.Errorf("sqlite: outbox mark delivered: %d of %d rows: %w", n, len(records), outbox.ErrLeaseLost)
	}
	return nil
}

// Pending returns the number of rows not yet delivered.
func (o *Outbox) Pending(ctx context.Context) (int64, error) {
	var n int64
	if err := o.db.QueryRowContext(ctx, `SELECT count(*) FROM `+o.table).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: outbox pending: %w", err)
	}
	return n, nil
}

var (
	_ outbox.Store           = (*Outbox)(nil)
	_ outbox.Writer[*sql.Tx] = (*Outbox)(nil)
)
