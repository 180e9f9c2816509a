package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventkit/eventkit"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/outbox"
)

// DB runs statements: each store package adapts its driver's pool,
// connection or transaction to it.
type DB interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
	// QueryRow runs a query that returns at most one row.
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Row is the row of DB.QueryRow.
type Row interface {
	// Scan copies the row's columns into dest, or returns the dialect's
	// NoRows error when there is no row.
	Scan(dest ...any) error
}

// Rows are the rows of a query, as both drivers return them.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// Dialect is what the shared code knows of a database, and the one place
// that words the stores' errors.
type Dialect struct {
	// Name prefixes the errors: "postgres", "sqlite".
	Name string
	// NoRows is the error of Row.Scan when there is no row.
	NoRows error
	// Param returns the placeholder of the n-th parameter (from 1): "$1"
	// or "?".
	Param func(n int) string
	// Text, Int64, Int32, Bytes and Time are the column types of the
	// shared tables.
	Text, Int64, Int32, Bytes, Time string
	// TimeValue converts a time into the value stored in a Time column
	// (nil: the time.Time itself).
	TimeValue func(time.Time) any
	// Now is the SQL expression of the current time that a Time column
	// defaults to ("": none, the store writes the time).
	Now string
}

// Exec runs query on db; what names the operation in the error.
func (d *Dialect) Exec(ctx context.Context, db DB, what, query string, args ...any) (int64, error) {
	n, err := db.Exec(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", d.Name, what, err)
	}
	return n, nil
}

// Migrate runs the statements of a migration in order.
func (d *Dialect) Migrate(ctx context.Context, db DB, what string, stmts ...string) error {
	for _, q := range stmts {
		if _, err := d.Exec(ctx, db, "migrate "+what, q); err != nil {
			return err
		}
	}
	return nil
}

// Get scans the row of query into dest; it returns false, and no error,
// when there is no row.
func (d *Dialect) Get(ctx context.Context, db DB, what, query string, args []any, dest ...any) (bool, error) {
	err := db.QueryRow(ctx, query, args...).Scan(dest...)
	if errors.Is(err, d.NoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %s: %w", d.Name, what, err)
	}
	return true, nil
}

// MigrateOutbox runs the statements of an outbox's migration in db (a
// transaction), one of which fills the leases table when it is empty, and
// returns the number of partitions the leases table holds: the number the
// outbox was first created with.
func (d *Dialect) MigrateOutbox(ctx context.Context, db DB, leases string, stmts ...string) (int, error) {
	if err := d.Migrate(ctx, db, "outbox", stmts...); err != nil {
		return 0, err
	}
	var n int
	if _, err := d.Get(ctx, db, "migrate outbox", `SELECT count(*) FROM `+leases, nil, &n); err != nil {
		return 0, err
	}
	return n, nil
}

// OutboxRecords reads the rows of an outbox fetch (id, partition, topic,
// event in the JSON format) until they end, leaving out those for which
// skip (if not nil) is true.
func (d *Dialect) OutboxRecords(rows Rows, skip func(outbox.Record) bool) ([]outbox.Record, error) {
	var out []outbox.Record
	var body []byte
	for rows.Next() {
		var r outbox.Record
		err := rows.Scan(&r.ID, &r.Partition, &r.Topic, &body)
		if err != nil {
			return nil, fmt.Errorf("%s: outbox fetch: %w", d.Name, err)
		}
		if skip != nil && skip(r) {
			continue
		}
		if r.Event, err = eventkit.UnmarshalEvent(body); err != nil {
			return nil, fmt.Errorf("%s: outbox fetch: row %d: %w", d.Name, r.ID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: outbox fetch: %w", d.Name, err)
	}
	return out, nil
}

// Checkpoints is a checkpoint table (es.CheckpointStore): a projection's
// name and its position, with the time of its last save where the dialect
// has a Now.
type Checkpoints struct {
	d                     *Dialect
	create, query, upsert string
}

// NewCheckpoints returns the checkpoint table table (quoted) in dialect d.
func NewCheckpoints(d *Dialect, table string) Checkpoints {
	var stampCol, stampSet string
	if d.Now != "" {
		stampCol, stampSet = `, updated_at `+d.Time+` NOT NULL DEFAULT `+d.Now, `, updated_at = `+d.Now
	}
	return Checkpoints{
		d:      d,
		create: `CREATE TABLE IF NOT EXISTS ` + table + ` (name ` + d.Text + ` PRIMARY KEY, position ` + d.Int64 + ` NOT NULL` + stampCol + `)`,
		query:  `SELECT position FROM ` + table + ` WHERE name = ` + d.Param(1),
		upsert: `INSERT INTO ` + table + ` (name, position) VALUES (` + d.Param(1) + `, ` + d.Param(2) + `)
			ON CONFLICT (name) DO UPDATE SET position = excluded.position` + stampSet,
	}
}

// Migrate creates the table.
func (c *Checkpoints) Migrate(ctx context.Context, db DB) error {
	return c.d.Migrate(ctx, db, "checkpoints", c.create)
}

// Load returns the position saved for name, and false when there is none.
func (c *Checkpoints) Load(ctx context.Context, db DB, name string) (uint64, bool, error) {
	var p int64
	ok, err := c.d.Get(ctx, db, "load checkpoint", c.query, []any{name}, &p)
	return uint64(p), ok, err
}

// Save saves the position of name in db (a transaction, or not).
func (c *Checkpoints) Save(ctx context.Context, db DB, name string, pos uint64) error {
	_, err := c.d.Exec(ctx, db, "save checkpoint", c.upsert, name, int64(pos))
	return err
}

// Snapshots is a snapshot table (es.SnapshotStore): the latest snapshot of
// each stream. The recorded time is stored as the dialect's TimeValue
// makes it, and read back from a time.Time or RFC 3339 text.
type Snapshots struct {
	d                     *Dialect
	create, upsert, query string
}

// NewSnapshots returns the snapshot table table (quoted) in dialect d.
func NewSnapshots(d *Dialect, table string) Snapshots {
	return Snapshots{
		d: d,
		create: `CREATE TABLE IF NOT EXISTS ` + table + ` (
			stream_id ` + d.Text + ` PRIMARY KEY, version ` + d.Int64 + ` NOT NULL, schema_version ` + d.Int32 + ` NOT NULL,
			data ` + d.Bytes + ` NOT NULL, recorded_at ` + d.Time + ` NOT NULL)`,
		upsert: `INSERT INTO ` + table + ` (stream_id, version, schema_version, data, recorded_at)
			VALUES (` + d.Param(1) + `, ` + d.Param(2) + `, ` + d.Param(3) + `, ` + d.Param(4) + `, ` + d.Param(5) + `)
			ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, schema_version = excluded.schema_version,
			data = excluded.data, recorded_at = excluded.recorded_at`,
		query: `SELECT version, schema_version, data, recorded_at FROM ` + table + ` WHERE stream_id = ` + d.Param(1),
	}
}

// Migrate creates the table.
func (s *Snapshots) Migrate(ctx context.Context, db DB) error {
	return s.d.Migrate(ctx, db, "snapshots", s.create)
}

// Save stores snap, replacing the stream's snapshot.
func (s *Snapshots) Save(ctx context.Context, db DB, snap es.Snapshot) error {
	var at any = snap.RecordedAt
	if s.d.TimeValue != nil {
		at = s.d.TimeValue(snap.RecordedAt)
	}
	_, err := s.d.Exec(ctx, db, "save snapshot", s.upsert, snap.StreamID, int64(snap.Version), snap.SchemaVersion, snap.Data, at)
	return err
}

// Load returns the snapshot of stream, and false when there is none.
func (s *Snapshots) Load(ctx context.Context, db DB, stream string) (es.Snapshot, bool, error) {
	snap := es.Snapshot{StreamID: stream}
	var v int64
	var at any
	ok, err := s.d.Get(ctx, db, "load snapshot", s.query, []any{stream}, &v, &snap.SchemaVersion, &snap.Data, &at)
	if !ok || err != nil {
		return es.Snapshot{}, false, err
	}
	snap.Version = uint64(v)
	switch at := at.(type) {
	case time.Time:
		snap.RecordedAt = at
	case string:
		if snap.RecordedAt, err = time.Parse(time.RFC3339Nano, at); err != nil {
			return es.Snapshot{}, false, fmt.Errorf("%s: load snapshot: %w", s.d.Name, err)
		}
	default:
		return es.Snapshot{}, false, fmt.Errorf("%s: load snapshot: recorded_at of type %T", s.d.Name, at)
	}
	return snap, true, nil
}

// DefaultDedupTTL is how long a dedup record lasts when neither Mark nor
// the store's default says.
const DefaultDedupTTL = 7 * 24 * time.Hour

// PositiveOr returns d if it is positive, else def.
func PositiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// StdQuerier is what a database/sql *DB, *Tx and *Conn share.
type StdQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Std adapts a database/sql *DB, *Tx or *Conn to DB.
func Std(q StdQuerier) DB { return stdDB{q} }

type stdDB struct{ q StdQuerier }

func (d stdDB) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := d.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (d stdDB) QueryRow(ctx context.Context, query string, args ...any) Row {
	return d.q.QueryRowContext(ctx, query, args...)
}
