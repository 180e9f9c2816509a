package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventkit/eventkit/saga"
)

// SagaStore is a saga.Store in an SQLite database: the instances in one
// table (default "eventkit_sagas"), the event ids they handled in
// <table>_seen, and the messages their steps emit in an Outbox of the same
// database, written in the transaction that saves the step. Run an
// outbox.Relay on that Outbox to publish them. Open the database in WAL
// mode with a busy timeout (see EventStore).
type SagaStore struct {
	db     *sql.DB
	outbox *Outbox
	table  string
	seen   string
	name   string
}

var _ saga.Store = (*SagaStore)(nil)

// NewSagaStore returns a saga store in db whose steps' messages go to ob
// (an outbox of the same database), in table ("" for the default). Call
// Migrate once (it migrates ob too).
func NewSagaStore(db *sql.DB, ob *Outbox, table string) *SagaStore {
	if table == "" {
		table = "eventkit_sagas"
	}
	return &SagaStore{db: db, outbox: ob, name: table, table: esSqlIdent(table), seen: esSqlIdent(table + "_seen")}
}

// Outbox returns the outbox that receives the messages of saga steps, for
// an outbox.Relay.
func (s *SagaStore) Outbox() *Outbox { return s.outbox }

// Migrate creates the store's tables, and its outbox's, if they do not
// exist.
func (s *SagaStore) Migrate(ctx context.Context) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS ` + s.table + ` (saga TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
			status TEXT NOT NULL, wake INTEGER, data BLOB NOT NULL, PRIMARY KEY (saga, id))`,
		`CREATE INDEX IF NOT EXISTS ` + esSqlIdent(s.name+"_wake") + ` ON ` + s.table + ` (saga, wake) WHERE wake IS NOT NULL`,
		`CREATE TABLE IF NOT EXISTS ` + s.seen + ` (saga TEXT NOT NULL, id TEXT NOT NULL, event_id TEXT NOT NULL,
			PRIMARY KEY (saga, id, event_id))`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("sqlite: saga migrate: %w", err)
		}
	}
	return s.outbox.Migrate(ctx)
}

// Load implements saga.Store.
func (s *SagaStore) Load(ctx context.Context, name, id string) (saga.Record, error) {
	var data []byte
	err := s.db.QueryRowContext(ctx, `SELECT data FROM `+s.table+` WHERE saga = ? AND id = ?`, name, id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return saga.Record{}, fmt.Errorf("sqlite: saga %s %q: %w", name, id, saga.ErrNotFound)
	}
	var r saga.Record
	if err == nil {
		r, err = saga.UnmarshalRecord(data)
	}
	if err != nil {
		return saga.Record{}, fmt.Errorf("sqlite: saga load: %w", err)
	}
	return r, nil
}

// Seen implements saga.Store.
func (s *SagaStore) Seen(ctx context.Context, name, id, eventID string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM `+s.seen+` WHERE saga = ? AND id = ? AND event_id = ?`, name, id, eventID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("sqlite: saga seen: %w", err)
	}
	return n > 0, nil
}

// sqlWake is a wake time as stored: Unix milliseconds, rounded down, or
// NULL.
func sqlWake(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// Save implements saga.Store: one transaction.
func (s *SagaStore) Save(ctx context.Context, c saga.Change) error {
	r := c.Record
	data, err := saga.MarshalRecord(r)
	if err != nil {
		return fmt.Errorf("sqlite: saga save: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: saga save: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var res sql.Result
	if r.Version == 1 {
		res, err = tx.ExecContext(ctx, `INSERT INTO `+s.table+` (saga, id, version, status, wake, data) VALUES (?, ?, 1, ?, ?, ?)
			ON CONFLICT DO NOTHING`, r.Saga, r.ID, string(r.Status), sqlWake(r.Wake), data)
	} else {
		res, err = tx.ExecContext(ctx, `UPDATE `+s.table+` SET version = ?, status = ?, wake = ?, data = ?
			WHERE saga = ? AND id = ? AND version = ?`, int64(r.Version), string(r.Status), sqlWake(r.Wake), data, r.Saga, r.ID, int64(r.Version-1))
	}
	if err := sqlOneRow(res, err, "version", r); err != nil {
		return err
	}
	if c.EventID != "" {
		res, err = tx.ExecContext(ctx, `INSERT INTO `+s.seen+` (saga, id, event_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, r.Saga, r.ID, c.EventID)
		if err := sqlOneRow(res, err, "event "+c.EventID, r); err != nil {
			return err
		}
	}
	if r.Status.Final() { // a final instance handles no event: forget their ids
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+s.seen+` WHERE saga = ? AND id = ?`, r.Saga, r.ID); err != nil {
			return fmt.Errorf("sqlite: saga save: %w", err)
		}
	}
	for _, m := range c.Outgoing {
		if err := s.outbox.Write(ctx, tx, m.Topic, m.Event); err != nil {
			return fmt.Errorf("sqlite: saga save: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: saga save: %w", err)
	}
	return nil
}

// sqlOneRow returns nil if the statement changed one row, ErrConflict if it
// changed none.
func sqlOneRow(res sql.Result, err error, what string, r saga.Record) error {
	if err != nil {
		return fmt.Errorf("sqlite: saga save: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("sqlite: saga %s %q version %d (%s): %w", r.Saga, r.ID, r.Version, what, errors.Join(saga.ErrConflict, err))
	}
	return nil
}

// Due implements saga.Store.
func (s *SagaStore) Due(ctx context.Context, name string, now time.Time, limit int) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM `+s.table+` WHERE saga = ? AND wake IS NOT NULL AND wake <= ?
		ORDER BY wake, id LIMIT ?`, name, now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: saga due: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: saga due: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: saga due: %w", err)
	}
	return ids, nil
}

// List implements saga.Store.
func (s *SagaStore) List(ctx context.Context, name string, f saga.Filter) ([]saga.Record, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT data FROM `+s.table+` WHERE saga = ? AND id > ? AND (? = '' OR status = ?)
		ORDER BY id LIMIT ?`, name, f.After, string(f.Status), string(f.Status), f.Limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: saga list: %w", err)
	}
	defer rows.Close()
	var out []saga.Record
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("sqlite: saga list: %w", err)
		}
		r, err := saga.UnmarshalRecord(data)
		if err != nil {
			return nil, fmt.Errorf("sqlite: saga list: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: saga list: %w", err)
	}
	return out, nil
}
