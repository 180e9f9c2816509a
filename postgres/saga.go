package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/eventkit/eventkit/outbox"
	"github.com/eventkit/eventkit/saga"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SagaStore is a saga.Store in PostgreSQL: the instances in one table
// (default "eventkit_sagas", may be schema-qualified), the event ids they
// handled in <table>_seen, and the messages their steps emit in an Outbox
// of the same database, written in the transaction that saves the step.
// Run an outbox.Relay on that Outbox to publish them.
type SagaStore struct {
	pool   *pgxpool.Pool
	outbox *Outbox
	table  string
	seen   string
	wake   string
}

// NewSagaStore returns a saga store in pool whose steps' messages go to ob
// (an outbox of the same database), in table ("" for the default). Call
// Migrate once (it migrates ob too).
func NewSagaStore(pool *pgxpool.Pool, ob *Outbox, table string) *SagaStore {
	if table == "" {
		table = "eventkit_sagas"
	}
	return &SagaStore{pool: pool, outbox: ob, table: quoteIdent(table), seen: quoteIdent(table + "_seen"),
		wake: quoteIdent(indexName(table, "wake"))}
}

var _ saga.Store = (*SagaStore)(nil)

// Outbox returns the outbox that receives the messages of saga steps, for
// an outbox.Relay.
func (s *SagaStore) Outbox() *Outbox { return s.outbox }

// Migrate creates the store's tables, and its outbox's, if they do not
// exist.
func (s *SagaStore) Migrate(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (saga text NOT NULL, id text NOT NULL,
			version bigint NOT NULL, status text NOT NULL, wake timestamptz, data jsonb NOT NULL, PRIMARY KEY (saga, id));
		CREATE INDEX IF NOT EXISTS `+s.wake+` ON `+s.table+` (saga, wake) WHERE wake IS NOT NULL;
		CREATE TABLE IF NOT EXISTS `+s.seen+` (saga text NOT NULL, id text NOT NULL, event_id text NOT NULL,
			PRIMARY KEY (saga, id, event_id))`)
	if err != nil {
		return fmt.Errorf("postgres: saga migrate: %w", err)
	}
	return s.outbox.Migrate(ctx)
}

// Load implements saga.Store.
func (s *SagaStore) Load(ctx context.Context, name, id string) (saga.Record, error) {
	var r saga.Record
	err := s.pool.QueryRow(ctx, `SELECT data FROM `+s.table+` WHERE saga = $1 AND id = $2`, name, id).Scan(&r)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("postgres: saga %s %q: %w", name, id, saga.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("postgres: saga load: %w", err)
	}
	return r, nil
}

// Seen implements saga.Store.
func (s *SagaStore) Seen(ctx context.Context, name, id, eventID string) (bool, error) {
	var seen bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+s.seen+` WHERE saga = $1 AND id = $2 AND event_id = $3)`,
		name, id, eventID).Scan(&seen)
	if err != nil {
		return false, fmt.Errorf("postgres: saga seen: %w", err)
	}
	return seen, nil
}

// pgWake is a wake time as stored (NULL for none).
func pgWake(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Save implements saga.Store: one transaction. The outgoing messages are
// written in the order of their outbox partitions (the order of each
// partition's messages kept), so that saves never wait for each other's
// partition locks in a cycle.
func (s *SagaStore) Save(ctx context.Context, c saga.Change) error {
	r := c.Record
	data, err := saga.MarshalRecord(r)
	if err != nil {
		return fmt.Errorf("postgres: saga save: %w", err)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var tag pgconn.CommandTag
		if r.Version == 1 {
			tag, err = tx.Exec(ctx, `INSERT INTO `+s.table+` (saga, id, version, status, wake, data) VALUES ($1, $2, 1, $3, $4, $5)
				ON CONFLICT DO NOTHING`, r.Saga, r.ID, string(r.Status), pgWake(r.Wake), data)
		} else {
			tag, err = tx.Exec(ctx, `UPDATE `+s.table+` SET version = $1, status = $2, wake = $3, data = $4
				WHERE saga = $5 AND id = $6 AND version = $7`, int64(r.Version), string(r.Status), pgWake(r.Wake), data,
				r.Saga, r.ID, int64(r.Version-1))
		}
		if err := pgOneRow(tag, err, "version", r); err != nil {
			return err
		}
		if c.EventID != "" {
			tag, err = tx.Exec(ctx, `INSERT INTO `+s.seen+` (saga, id, event_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
				r.Saga, r.ID, c.EventID)
			if err := pgOneRow(tag, err, "event "+c.EventID, r); err != nil {
				return err
			}
		}
		if r.Status.Final() { // a final instance handles no event: forget their ids
			if _, err := tx.Exec(ctx, `DELETE FROM `+s.seen+` WHERE saga = $1 AND id = $2`, r.Saga, r.ID); err != nil {
				return fmt.Errorf("postgres: saga save: %w", err)
			}
		}
		out := slices.Clone(c.Outgoing)
		n := s.outbox.Partitions()
		slices.SortStableFunc(out, func(a, b saga.Message) int {
			return outbox.PartitionOf(a.Event, n) - outbox.PartitionOf(b.Event, n)
		})
		for _, m := range out {
			if err := s.outbox.Write(ctx, tx, m.Topic, m.Event); err != nil {
				return fmt.Errorf("postgres: saga save: %w", err)
			}
		}
		return nil
	})
}

// pgOneRow returns nil if the statement changed one row, ErrConflict if it
// changed none.
func pgOneRow(tag pgconn.CommandTag, err error, what string, r saga.Record) error {
	if err != nil {
		return fmt.Errorf("postgres: saga save: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("postgres: saga %s %q version %d (%s): %w", r.Saga, r.ID, r.Version, what, saga.ErrConflict)
	}
	return nil
}

// Due implements saga.Store.
func (s *SagaStore) Due(ctx context.Context, name string, now time.Time, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM `+s.table+` WHERE saga = $1 AND wake IS NOT NULL AND wake <= $2
		ORDER BY wake, id LIMIT $3`, name, now, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: saga due: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: saga due: %w", err)
	}
	return ids, nil
}

// List implements saga.Store.
func (s *SagaStore) List(ctx context.Context, name string, f saga.Filter) ([]saga.Record, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT data FROM `+s.table+` WHERE saga = $1 AND id COLLATE "C" > $2 AND ($3 = '' OR status = $3)
		ORDER BY id COLLATE "C" LIMIT $4`, name, f.After, string(f.Status), f.Limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: saga list: %w", err)
	}
	recs, err := pgx.CollectRows(rows, pgx.RowTo[saga.Record])
	if err != nil {
		return nil, fmt.Errorf("postgres: saga list: %w", err)
	}
	return recs, nil
}
