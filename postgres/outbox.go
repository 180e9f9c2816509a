package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/internal/opt"
	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/postgres/internal/pgsql"
	"github.com/eventkit/eventkit/topic"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// OutboxPolicy is what an Outbox does with a row once it was delivered.
type OutboxPolicy int

const (
	// OutboxDelete deletes delivered rows (the default).
	OutboxDelete OutboxPolicy = iota
	// OutboxArchive moves delivered rows to the table <name>_archive.
	OutboxArchive
	// OutboxKeep keeps delivered rows, with delivered_at set, for the
	// retention given by OutboxRetention (default 24h); the relay purges
	// them after it.
	OutboxKeep
)

// OutboxOption configures an Outbox. An invalid value makes NewOutbox fail
// with an error wrapping eventkit.ErrInvalidOption.
type OutboxOption func(*Outbox) error

// OutboxTable sets the outbox table's name, optionally schema-qualified
// ("app.outbox"; default "eventkit_outbox"). Its companion tables are
// <name>_leases, <name>_relays and, with OutboxArchive, <name>_archive.
func OutboxTable(name string) OutboxOption {
	_, err := pgsql.Ident(name, "")
	return opt.Set("postgres.OutboxTable", name, err != nil, fmt.Sprint(err), func(o *Outbox) *string { return &o.name })
}

// OutboxPartitions sets the number of partitions (default 16); n must be
// positive. It is fixed when the tables are created: changing it later has
// no effect.
func OutboxPartitions(n int) OutboxOption {
	return opt.Set("postgres.OutboxPartitions", n, n <= 0, fmt.Sprintf("must be positive, got %d", n), func(o *Outbox) *int { return &o.partitions })
}

// OutboxDeliveredPolicy sets what happens to delivered rows (default
// OutboxDelete).
func OutboxDeliveredPolicy(p OutboxPolicy) OutboxOption {
	return opt.Set("postgres.OutboxDeliveredPolicy", p, p < OutboxDelete || p > OutboxKeep, fmt.Sprintf("unknown policy %d", p), func(o *Outbox) *OutboxPolicy { return &o.policy })
}

// OutboxRetention sets how long OutboxKeep keeps delivered rows (default
// 24h); it must be positive.
func OutboxRetention(d time.Duration) OutboxOption {
	return opt.Set("postgres.OutboxRetention", d, d <= 0, "must be positive, got "+d.String(), func(o *Outbox) *time.Duration { return &o.retention })
}

// OutboxNotify sets whether Write notifies the relays (NOTIFY, delivered at
// commit) so that they publish at once instead of at their next poll
// (default true). A NOTIFY serializes the commits of notifying transactions
// briefly; turn it off for the highest write rates and rely on polling.
func OutboxNotify(on bool) OutboxOption { return func(o *Outbox) error { o.notify = on; return nil } }

// Outbox is the transactional outbox on PostgreSQL: Write stores events in
// the caller's transaction, and the Outbox is the outbox.Store (and
// outbox.Notifier) that an outbox.Relay publishes from.
//
// Commit order: Write takes a transaction-scoped advisory lock on each
// partition it writes (pg_advisory_xact_lock, in partition order) before it
// allocates the rows' ids, so that the transactions writing one partition
// allocate ids and commit one after another: within a partition, a row with
// a lower id always commits before a row with a higher id (PostgreSQL makes a
// commit visible before it releases the transaction's locks). The cost is
// that business transactions writing the same partition serialize from
// their Write to their commit; keep them short, and call Write once per
// transaction (two Writes in opposite partition order can deadlock, which
// PostgreSQL detects and aborts).
type Outbox struct {
	pool       *pgxpool.Pool
	name       string
	partitions int
	policy     OutboxPolicy
	retention  time.Duration
	notify     bool

	table, leases, relays, archive string // sanitized identifiers
	channel                        string
	lockKey                        int32
}

// NewOutbox returns the outbox on pool. Call Migrate once to create its
// tables. An invalid option value makes it fail with an error wrapping
// eventkit.ErrInvalidOption.
func NewOutbox(pool *pgxpool.Pool, opts ...OutboxOption) (*Outbox, error) {
	o := &Outbox{pool: pool, name: "eventkit_outbox", partitions: 16, retention: 24 * time.Hour, notify: true}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	o.table, _ = pgsql.Ident(o.name, "")
	o.leases, _ = pgsql.Ident(o.name, "_leases")
	o.relays, _ = pgsql.Ident(o.name, "_relays")
	o.archive, _ = pgsql.Ident(o.name, "_archive")
	o.channel, o.lockKey = pgsql.Channel("eventkit_outbox", o.name)
	return o, nil
}

// Migrate creates the outbox's tables if they do not exist.
func (o *Outbox) Migrate(ctx context.Context) error {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + o.table + ` (
			id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			partition int NOT NULL,
			topic text NOT NULL,
			event_id text NOT NULL,
			event bytea NOT NULL,
			created_at timestamptz NOT NULL DEFAULT now(),
			delivered_at timestamptz)`,
		`CREATE INDEX IF NOT EXISTS ` + pgsql.IndexName(o.name, "_pending") + ` ON ` + o.table + ` (id) WHERE delivered_at IS NULL`,
		`CREATE INDEX IF NOT EXISTS ` + pgsql.IndexName(o.name, "_delivered") + ` ON ` + o.table + ` (delivered_at) WHERE delivered_at IS NOT NULL`,
		`CREATE TABLE IF NOT EXISTS ` + o.leases + ` (
			partition int PRIMARY KEY,
			owner text NOT NULL DEFAULT '',
			expires_at timestamptz NOT NULL DEFAULT '-infinity')`,
		`CREATE TABLE IF NOT EXISTS ` + o.relays + ` (
			owner text PRIMARY KEY,
			seen_at timestamptz NOT NULL)`,
		`INSERT INTO ` + o.leases + ` (partition) SELECT generate_series(0, ` + fmt.Sprint(o.partitions-1) + `)
			WHERE NOT EXISTS (SELECT 1 FROM ` + o.leases + `)`,
	}
	if o.policy == OutboxArchive {
		stmts = append(stmts, `CREATE TABLE IF NOT EXISTS `+o.archive+` (LIKE `+o.table+`)`)
	}
	tx, err := o.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: outbox migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// Serialize concurrent migrations of the same outbox.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, -1)`, o.lockKey); err != nil {
		return fmt.Errorf("postgres: outbox migrate: %w", err)
	}
	n, err := dialect.MigrateOutbox(ctx, pgDB{tx}, o.leases, stmts...)
	if err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: outbox migrate: %w", err)
	}
	o.partitions = n
	return nil
}

// Write stores events, to be published to topic, in tx: they exist if and
// only if tx commits. The events are validated first; none is written if
// one is invalid. Write locks the partitions it writes until tx ends (see
// Outbox).
func (o *Outbox) Write(ctx context.Context, tx pgx.Tx, topicName string, events ...event.Event) error {
	if err := topic.ValidateName(topicName); err != nil {
		return fmt.Errorf("postgres: outbox write: %w", err)
	}
	if err := eventkit.ValidateEvents(events); err != nil {
		return fmt.Errorf("postgres: outbox write: %w", err)
	}
	if len(events) == 0 {
		return nil
	}
	parts := make([]int32, len(events))
	ids := make([]string, len(events))
	bodies := make([][]byte, len(events))
	for i, e := range events {
		b, err := eventkit.MarshalEvent(e)
		if err != nil {
			return fmt.Errorf("postgres: outbox write: encoding event %q: %w", e.ID(), err)
		}
		parts[i] = int32(outbox.PartitionOf(e, o.partitions))
		ids[i] = e.ID()
		bodies[i] = b
	}
	locks := slices.Clone(parts)
	slices.Sort(locks)
	locks = slices.Compact(locks)
	b := &pgx.Batch{}
	for _, p := range locks {
		b.Queue(`SELECT pg_advisory_xact_lock($1, $2)`, o.lockKey, p)
	}
	b.Queue(`INSERT INTO `+o.table+` (partition, topic, event_id, event)
		SELECT p, $2, i, e FROM unnest($1::int[], $3::text[], $4::bytea[]) WITH ORDINALITY AS u(p, i, e, n) ORDER BY n`,
		parts, topicName, ids, bodies)
	if o.notify {
		b.Queue(`SELECT pg_notify($1, '')`, o.channel)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: outbox write: %w", err)
	}
	return nil
}

// Partitions implements outbox.Store.
func (o *Outbox) Partitions() int { return o.partitions }

// Claim implements outbox.Store with the <name>_leases and <name>_relays
// tables.
func (o *Outbox) Claim(ctx context.Context, owner string, ttl time.Duration) ([]int, error) {
	var held []int
	err := pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) error {
		held = held[:0]
		var live int
		err := tx.QueryRow(ctx, `WITH hb AS (
				INSERT INTO `+o.relays+` (owner, seen_at) VALUES ($1, now())
				ON CONFLICT (owner) DO UPDATE SET seen_at = now()),
			gone AS (DELETE FROM `+o.relays+` WHERE seen_at < now() - 3 * $2::interval)
			SELECT 1 + count(*) FROM `+o.relays+` WHERE owner <> $1 AND seen_at >= now() - $2::interval`,
			owner, ttl).Scan(&live)
		if err != nil {
			return err
		}
		share := (o.partitions + live - 1) / live
		rows, err := tx.Query(ctx, `UPDATE `+o.leases+` SET expires_at = now() + $2::interval
			WHERE owner = $1 AND expires_at > now() RETURNING partition`, owner, ttl)
		if err != nil {
			return err
		}
		mine, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return err
		}
		slices.Sort(mine)
		if len(mine) > share {
			extra := mine[share:]
			mine = mine[:share]
			if _, err := tx.Exec(ctx, `UPDATE `+o.leases+` SET owner = '', expires_at = '-infinity'
				WHERE owner = $1 AND partition = ANY($2)`, owner, extra); err != nil {
				return err
			}
		} else if len(mine) < share {
			rows, err := tx.Query(ctx, `UPDATE `+o.leases+` SET owner = $1, expires_at = now() + $2::interval
				WHERE partition IN (SELECT partition FROM `+o.leases+` WHERE expires_at <= now()
					ORDER BY partition LIMIT $3 FOR UPDATE SKIP LOCKED)
				RETURNING partition`, owner, ttl, share-len(mine))
			if err != nil {
				return err
			}
			more, err := pgx.CollectRows(rows, pgx.RowTo[int])
			if err != nil {
				return err
			}
			mine = append(mine, more...)
		}
		held = mine
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: outbox claim: %w", err)
	}
	slices.Sort(held)
	return held, nil
}

// Release implements outbox.Store.
func (o *Outbox) Release(ctx context.Context, owner string) error {
	b := &pgx.Batch{}
	b.Queue(`UPDATE `+o.leases+` SET owner = '', expires_at = '-infinity' WHERE owner = $1`, owner)
	b.Queue(`DELETE FROM `+o.relays+` WHERE owner = $1`, owner)
	if err := o.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: outbox release: %w", err)
	}
	return nil
}

// Fetch implements outbox.Store with one index scan in id order from the
// lowest cursor (the entries of deleted, delivered rows are skipped cheaply
// once an index scan has marked them dead). Rows at or below their own
// partition's cursor are dropped here rather than in SQL: a join against the
// cursors costs PostgreSQL more than the rows it saves, since such rows are
// delivered (gone) in all but the rarest case.
func (o *Outbox) Fetch(ctx context.Context, cursors []outbox.Cursor, limit int) ([]outbox.Record, error) {
	parts := make([]int32, len(cursors))
	after := make(map[int]int64, len(cursors))
	low := int64(-1)
	for i, c := range cursors {
		parts[i] = int32(c.Partition)
		after[c.Partition] = c.After
		if low < 0 || c.After < low {
			low = c.After
		}
	}
	rows, err := o.pool.Query(ctx, `SELECT id, partition, topic, event FROM `+o.table+`
		WHERE delivered_at IS NULL AND partition = ANY($1) AND id > $2 ORDER BY id LIMIT $3`, parts, low, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: outbox fetch: %w", err)
	}
	defer rows.Close()
	return dialect.OutboxRecords(rows, func(r outbox.Record) bool { return r.ID <= after[r.Partition] })
}

// MarkDelivered implements outbox.Store: it deletes, archives or stamps the
// rows by the policy, in partitions whose lease owner still holds.
func (o *Outbox) MarkDelivered(ctx context.Context, owner string, records []outbox.Record) error {
	if len(records) == 0 {
		return nil
	}
	ids := make([]int64, len(records))
	for i, r := range records {
		ids[i] = r.ID
	}
	held := `partition IN (SELECT partition FROM ` + o.leases + ` WHERE owner = $2 AND expires_at > now())`
	var q string
	switch o.policy {
	case OutboxArchive:
		q = `WITH d AS (DELETE FROM ` + o.table + ` WHERE id = ANY($1) AND ` + held + ` RETURNING *)
			INSERT INTO ` + o.archive + ` (id, partition, topic, event_id, event, created_at, delivered_at)
			SELECT id, partition, topic, event_id, event, created_at, now() FROM d`
	case OutboxKeep:
		q = `UPDATE ` + o.table + ` SET delivered_at = now() WHERE id = ANY($1) AND delivered_at IS NULL AND ` + held
	default:
		q = `DELETE FROM ` + o.table + ` WHERE id = ANY($1) AND ` + held
	}
	tag, err := o.pool.Exec(ctx, q, ids, owner)
	if err != nil {
		return fmt.Errorf("postgres: outbox mark delivered: %w", err)
	}
	if n := tag.RowsAffected(); n < int64(len(ids)) {
		return fmt.Errorf("postgres: outbox mark delivered: %d of %d rows: %w", n, len(ids), outbox.ErrLeaseLost)
	}
	return nil
}

// Purge implements outbox.Purger: with OutboxKeep, it deletes rows delivered
// longer ago than the retention.
func (o *Outbox) Purge(ctx context.Context) (int64, error) {
	if o.policy != OutboxKeep {
		return 0, nil
	}
	tag, err := o.pool.Exec(ctx, `DELETE FROM `+o.table+` WHERE delivered_at < now() - $1::interval`, o.retention)
	if err != nil {
		return 0, fmt.Errorf("postgres: outbox purge: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Listen implements outbox.Notifier with LISTEN on a connection of its own.
func (o *Outbox) Listen(ctx context.Context, wake func()) error {
	return pgsql.Listen(ctx, o.pool, o.channel, wake)
}

// Pending returns the number of rows not yet delivered.
func (o *Outbox) Pending(ctx context.Context) (int64, error) {
	var n int64
	if err := o.pool.QueryRow(ctx, `SELECT count(*) FROM `+o.table+` WHERE delivered_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: outbox pending: %w", err)
	}
	return n, nil
}

var (
	_ outbox.Store          = (*Outbox)(nil)
	_ outbox.Notifier       = (*Outbox)(nil)
	_ outbox.Purger         = (*Outbox)(nil)
	_ outbox.Writer[pgx.Tx] = (*Outbox)(nil)
)
