package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/es"
	"github.com/eventkit/eventkit/internal/sqlstore"
)

// EventStore is an es.EventStore in an SQLite database.
//
// SQLite lets one transaction write at a time; an append runs in a
// BEGIN IMMEDIATE transaction (which takes the write lock first), reads the
// last position and writes its events after it. Positions are therefore
// gapless, become visible in commit order, and a rolled-back append gives
// its positions back: a subscriber following "position > last seen"
// misses nothing. Open the database in WAL mode so that readers do not wait
// for the writer, with a busy timeout so that writers wait for each other:
//
//	db, err := sql.Open("sqlite", "file:events.db?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)")
type EventStore struct {
	db      *sql.DB
	table   string
	writeMu sync.Mutex // one writer of this store at a time in this process
	notify  es.Notifier
}

var (
	_ es.EventStore = (*EventStore)(nil)
	_ es.TxAppender = (*EventStore)(nil)
)

// NewEventStore returns an event store in table (default "eventkit_events")
// of db. Call Migrate once.
func NewEventStore(db *sql.DB, table string) *EventStore {
	if table == "" {
		table = "eventkit_events"
	}
	return &EventStore{db: db, table: esSqlIdent(table)}
}

func esSqlIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// Migrate creates the table and its indexes if they do not exist
// (idempotent).
func (s *EventStore) Migrate(ctx context.Context) error {
	base := strings.Trim(s.table, `"`)
	index := func(suffix string) string { return esSqlIdent(base + suffix) }
	return dialect.Migrate(ctx, sqlstore.Std(s.db), "event store", sqlstore.EventTable(dialect, s.table, index)...)
}

// Append implements es.EventStore.
func (s *EventStore) Append(ctx context.Context, stream string, expected es.ExpectedVersion, events ...event.Event) (es.AppendResult, error) {
	return sqlstore.BeginCommit(ctx, s, stream, expected, events)
}

// BeginAppend implements es.TxAppender: the append's transaction holds
// SQLite's write lock until Commit or Rollback.
func (s *EventStore) BeginAppend(ctx context.Context, stream string, expected es.ExpectedVersion, events ...event.Event) (es.PendingAppend, error) {
	if err := sqlstore.ValidateAppend(stream, expected, events); err != nil {
		return nil, err
	}
	if expected != es.Any {
		// Fast path without the write lock: a stream's events never change
		// once committed, so a version already past the expected one is a
		// conflict (or an idempotent repeat) whatever happens next.
		res, decided, err := s.precheck(ctx, stream, expected, events)
		if err != nil {
			return nil, err
		}
		if decided {
			return &esSqlPending{res: res, repeat: true}, nil
		}
	}
	s.writeMu.Lock()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		s.writeMu.Unlock()
		return nil, fmt.Errorf("sqlite: append: %w", err)
	}
	p := &esSqlPending{s: s, conn: conn}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		p.release()
		return nil, fmt.Errorf("sqlite: append: %w", err)
	}
	res, write, err := s.write(ctx, conn, stream, expected, events)
	if err != nil || !write {
		_ = p.Rollback(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		return &esSqlPending{res: res, repeat: true}, nil
	}
	p.res = res
	return p, nil
}

// precheck decides an append whose expected version the stream has
// already passed, reading without the write lock.
func (s *EventStore) precheck(ctx context.Context, stream string, expected es.ExpectedVersion, events []event.Event) (es.AppendResult, bool, error) {
	var cur uint64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+s.table+` WHERE stream_id = ?`, stream).Scan(&cur); err != nil {
		return es.AppendResult{}, false, fmt.Errorf("sqlite: append: %w", err)
	}
	if cur <= uint64(expected) {
		return es.AppendResult{}, false, nil // may match now or later: take the lock
	}
	existing, err := s.lookupIDs(ctx, s.db, stream, events)
	if err != nil {
		return es.AppendResult{}, false, err
	}
	res, write, err := es.CheckAppend(stream, expected, cur, events, existing)
	if write { // cannot happen: cur > expected
		return es.AppendResult{}, false, nil
	}
	return res, true, err
}

type esSqlQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *EventStore) lookupIDs(ctx context.Context, db esSqlQueryer, stream string, events []event.Event) (map[string][2]uint64, error) {
	var existing map[string][2]uint64
	for i := range events {
		var v, p uint64
		err := db.QueryRowContext(ctx, `SELECT version, position FROM `+s.table+` WHERE stream_id = ? AND event_id = ?`, stream, events[i].ID()).Scan(&v, &p)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: append: %w", err)
		}
		if existing == nil {
			existing = map[string][2]uint64{}
		}
		existing[events[i].ID()] = [2]uint64{v, p}
	}
	return existing, nil
}

func (s *EventStore) write(ctx context.Context, conn *sql.Conn, stream string, expected es.ExpectedVersion, events []event.Event) (es.AppendResult, bool, error) {
	var cur, last uint64
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+s.table+` WHERE stream_id = ?`, stream).Scan(&cur); err != nil {
		return es.AppendResult{}, false, fmt.Errorf("sqlite: append: %w", err)
	}
	existing, err := s.lookupIDs(ctx, conn, stream, events)
	if err != nil {
		return es.AppendResult{}, false, err
	}
	res, write, err := es.CheckAppend(stream, expected, cur, events, existing)
	if err != nil || !write {
		return res, false, err
	}
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM `+s.table).Scan(&last); err != nil {
		return es.AppendResult{}, false, fmt.Errorf("sqlite: append: %w", err)
	}
	stmt, err := conn.PrepareContext(ctx, `INSERT INTO `+s.table+` (position, stream_id, version, event_id, source, type, subject, time, content_type, data_schema, extensions, data, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return es.AppendResult{}, false, fmt.Errorf("sqlite: append: %w", err)
	}
	defer stmt.Close()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	res = es.AppendResult{Version: cur + uint64(len(events)), Positions: make([]uint64, len(events))}
	for i := range events {
		e := &events[i]
		row, err := sqlstore.EncodeEvent(e)
		if err != nil {
			return es.AppendResult{}, false, fmt.Errorf("sqlite: append: %w", err)
		}
		if row[8].([]byte) == nil {
			row[8] = nil // NULL, not an empty blob
		}
		pos := last + uint64(i) + 1
		args := append([]any{int64(pos), stream, int64(cur + uint64(i) + 1)}, row...)
		args = append(args, now)
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return es.AppendResult{}, false, fmt.Errorf("sqlite: append: %w", err)
		}
		res.Positions[i] = pos
	}
	return res, true, nil
}

type esSqlPending struct {
	s      *EventStore
	conn   *sql.Conn
	res    es.AppendResult
	repeat bool
	done   bool
}

func (p *esSqlPending) release() {
	_ = p.conn.Close()
	p.s.writeMu.Unlock()
}

func (p *esSqlPending) Commit(ctx context.Context) (es.AppendResult, error) {
	if p.repeat {
		return p.res, nil
	}
	if p.done {
		return es.AppendResult{}, errors.New("sqlite: pending append already finished")
	}
	p.done = true
	_, err := p.conn.ExecContext(context.WithoutCancel(ctx), "COMMIT")
	if err != nil {
		_, _ = p.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		p.release()
		return es.AppendResult{}, fmt.Errorf("sqlite: append commit: %w", err)
	}
	p.release()
	p.s.notify.Notify()
	return p.res, nil
}

func (p *esSqlPending) Rollback(ctx context.Context) error {
	if p.repeat || p.done {
		return nil
	}
	p.done = true
	_, err := p.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	p.release()
	if err != nil {
		return fmt.Errorf("sqlite: append rollback: %w", err)
	}
	return nil
}

// ReadStream implements es.EventStore.
func (s *EventStore) ReadStream(ctx context.Context, stream string, dir es.Direction, from uint64, limit int) ([]es.RecordedEvent, error) {
	lim := int64(limit)
	if limit <= 0 {
		lim = -1
	}
	switch dir {
	case es.Forward:
		return s.query(ctx, `SELECT `+sqlstore.EventColumns+` FROM `+s.table+` WHERE stream_id = ? AND version >= ? ORDER BY version LIMIT ?`, stream, int64(from), lim)
	case es.Backward:
		if from == 0 {
			from = 1 << 62
		}
		return s.query(ctx, `SELECT `+sqlstore.EventColumns+` FROM `+s.table+` WHERE stream_id = ? AND version <= ? ORDER BY version DESC LIMIT ?`, stream, int64(from), lim)
	}
	return nil, fmt.Errorf("sqlite: invalid direction %d", dir)
}

// ReadAll implements es.EventStore.
func (s *EventStore) ReadAll(ctx context.Context, after uint64, limit int) ([]es.RecordedEvent, error) {
	lim := int64(limit)
	if limit <= 0 {
		lim = -1
	}
	return s.query(ctx, `SELECT `+sqlstore.EventColumns+` FROM `+s.table+` WHERE position > ? ORDER BY position LIMIT ?`, int64(after), lim)
}

func (s *EventStore) query(ctx context.Context, q string, args ...any) ([]es.RecordedEvent, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read events: %w", err)
	}
	defer rows.Close()
	return sqlstore.ReadEvents(dialect, rows, func(at string) (time.Time, error) { return time.Parse(time.RFC3339Nano, at) })
}

// Head implements es.EventStore.
func (s *EventStore) Head(ctx context.Context) (uint64, error) {
	var h uint64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM `+s.table).Scan(&h); err != nil {
		return 0, fmt.Errorf("sqlite: head: %w", err)
	}
	return h, nil
}

// Subscribe implements es.EventStore: it polls the log; appends through
// this EventStore wake it at once, others (another process) are seen
// within the poll interval (es.WithPollInterval).
func (s *EventStore) Subscribe(ctx context.Context, after uint64, opts ...es.SubscribeOption) (es.Subscription, error) {
	return es.PollSubscribe(ctx, s.ReadAll, &s.notify, after, es.NewSubscribeConfig(opts...)), nil
}
