package pgcdc

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/eventkit/eventkit/cdc"
	"github.com/eventkit/eventkit/postgres/pgcdc/internal/pgrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// snapTable is a published table, as the snapshot reads it.
type snapTable struct{ oid, schema, name string }

// snapshotTables emits every row of the published tables (of only those
// named "schema.table", when only is not nil) in a REPEATABLE READ
// transaction: on the exported snapshot snapshotName at lsn, or, when
// snapshotName is empty, on a new snapshot at the current WAL position.
func (st *replStream) snapshotTables(ctx context.Context, snapshotName string, lsn pgrepl.LSN, only []string) error {
	conn, err := st.src.connectSQL(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if lsn, err = beginSnapshot(ctx, conn, snapshotName, lsn); err != nil {
		return err
	}
	tables, err := st.publishedTables(ctx, conn, only)
	if err != nil {
		return err
	}
	// The snapshot's transaction id is its rows' source.txId, as Debezium's.
	res, err := conn.Exec(ctx, "SELECT txid_current() % 4294967296").ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		return fmt.Errorf("postgres: cdc: snapshot: transaction id: %w", err)
	}
	xid, _ := strconv.ParseUint(string(res[0].Rows[0][0]), 10, 32)
	st.begin(uint32(xid), lsn, time.Now(), true)
	w := &snapshotWriter{st: st}
	for _, t := range tables {
		if err := w.table(ctx, conn, t, lsn); err != nil {
			return err
		}
	}
	if err := w.release(ctx, true); err != nil {
		return err
	}
	if err := w.flush(ctx); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "COMMIT").ReadAll(); err != nil {
		return fmt.Errorf("postgres: cdc: snapshot: %w", err)
	}
	st.logSnapshotDone(tables, only, lsn)
	return nil
}

// beginSnapshot opens the snapshot's transaction on conn: on the exported
// snapshot snapshotName (whose position is lsn), or on a new one, whose
// position it returns.
func beginSnapshot(ctx context.Context, conn *pgconn.PgConn, snapshotName string, lsn pgrepl.LSN) (pgrepl.LSN, error) {
	if snapshotName != "" {
		if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT "+
			pgrepl.QuoteLiteral(snapshotName)).ReadAll(); err != nil {
			return 0, fmt.Errorf("postgres: cdc: snapshot: %w", err)
		}
		return lsn, nil
	}
	// The first query takes the transaction's snapshot; the WAL position
	// read with it names the snapshot's events.
	res, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_current_wal_lsn()::text").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("postgres: cdc: snapshot: %w", err)
	}
	if len(res) != 2 || len(res[1].Rows) != 1 {
		return 0, fmt.Errorf("postgres: cdc: snapshot: no WAL position")
	}
	if lsn, err = pgrepl.ParseLSN(string(res[1].Rows[0][0])); err != nil {
		return 0, fmt.Errorf("postgres: cdc: snapshot: %w", err)
	}
	return lsn, nil
}

// publishedTables lists the publication's tables (those in only, when it
// is not nil), by schema and name.
func (st *replStream) publishedTables(ctx context.Context, conn *pgconn.PgConn, only []string) ([]snapTable, error) {
	rr := conn.ExecParams(ctx, `SELECT c.oid, n.nspname, c.relname FROM pg_publication_tables pt
		JOIN pg_namespace n ON n.nspname = pt.schemaname
		JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
		WHERE pt.pubname = $1 ORDER BY 2, 3`, [][]byte{[]byte(st.src.opts.publication)}, nil, nil, nil)
	var tables []snapTable
	for rr.NextRow() {
		v := rr.Values()
		if only != nil && !slices.Contains(only, string(v[1])+"."+string(v[2])) {
			continue
		}
		tables = append(tables, snapTable{string(v[0]), string(v[1]), string(v[2])})
	}
	if _, err := rr.Close(); err != nil {
		return nil, fmt.Errorf("postgres: cdc: snapshot: %w", err)
	}
	return tables, nil
}

func (st *replStream) logSnapshotDone(tables []snapTable, only []string, lsn pgrepl.LSN) {
	if only == nil {
		st.src.opts.logger.Info("postgres cdc: initial snapshot done", "slot", st.src.opts.slot, "tables", len(tables))
		return
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.schema + "." + t.name
	}
	st.src.opts.logger.Info("postgres cdc: snapshot of the tables added to the publication done", "slot", st.src.opts.slot, "tables", strings.Join(names, ","), "lsn", lsn)
}

// snapshotWriter publishes snapshot rows in batches of one topic. One row
// is held back (its values copied: the result reader reuses its buffers)
// so that the last one is marked "last".
type snapshotWriter struct {
	st         *replStream
	batch      []event.Event
	batchTopic string

	held     changeRow
	heldVals []byte
	heldTup  pgrepl.Tuple
	holding  bool
	rows     int // rows held so far
}

func (w *snapshotWriter) flush(ctx context.Context) error {
	if len(w.batch) == 0 {
		return nil
	}
	if err := w.st.src.pub.Publish(ctx, w.batchTopic, w.batch...); err != nil {
		return fmt.Errorf("postgres: cdc: snapshot: publish: %w", err)
	}
	w.st.src.stats.events.Add(int64(len(w.batch)))
	clear(w.batch)
	w.batch = w.batch[:0]
	return nil
}

func (w *snapshotWriter) add(ctx context.Context, topic string, ev event.Event) error {
	if len(w.batch) > 0 && (topic != w.batchTopic || len(w.batch) >= w.st.src.opts.batch) {
		if err := w.flush(ctx); err != nil {
			return err
		}
	}
	w.batchTopic = topic
	w.batch = append(w.batch, ev)
	return nil
}

// release adds the held row, if any, marked "last" if last: the
// snapshot's rows are marked as Debezium marks them, "first" (the first
// row), "first_in_data_collection" (the first row of each later table),
// "last_in_data_collection" (the last row of a table), "last" (the last
// row), else "true".
func (w *snapshotWriter) release(ctx context.Context, last bool) error {
	if !w.holding {
		return nil
	}
	w.holding = false
	if last {
		w.held.snapshot = cdc.SnapshotLast
	}
	topic, ev := w.st.rowEvent(&w.held)
	return w.add(ctx, topic, ev)
}

// hold copies the row vals of rel and holds it back.
func (w *snapshotWriter) hold(rel *relInfo, vals [][]byte, lsn pgrepl.LSN, first bool) {
	w.heldVals = w.heldVals[:0]
	for _, v := range vals {
		w.heldVals = append(w.heldVals, v...)
	}
	tup := w.heldTup[:0]
	off := 0
	for _, v := range vals {
		if v == nil {
			tup = append(tup, pgrepl.TupleValue{Kind: pgrepl.ValueNull})
			continue
		}
		tup = append(tup, pgrepl.TupleValue{Kind: pgrepl.ValueText, Data: w.heldVals[off : off+len(v) : off+len(v)]})
		off += len(v)
	}
	w.heldTup = tup
	st := w.st
	mark := cdc.SnapshotTrue
	switch {
	case w.rows == 0:
		mark = cdc.SnapshotFirst
	case first:
		mark = cdc.SnapshotFirstInTable
	}
	w.rows++
	w.held = changeRow{op: cdc.OpRead, rel: rel, snapshot: mark, srcUs: st.txCommit.UnixMicro(),
		txID: int64(st.txID), lsn: int64(lsn), nowNs: time.Now().UnixNano(), new: tup}
	w.holding = true
}

// table emits the rows of t.
func (w *snapshotWriter) table(ctx context.Context, conn *pgconn.PgConn, t snapTable, lsn pgrepl.LSN) error {
	oid, _ := strconv.ParseUint(t.oid, 10, 32)
	pkNames, err := w.st.primaryKey(ctx, uint32(oid))
	if err != nil {
		return err
	}
	mrr := conn.Exec(ctx, "SELECT * FROM "+pgrepl.QuoteIdent(t.schema)+"."+pgrepl.QuoteIdent(t.name))
	for mrr.NextResult() {
		r := mrr.ResultReader()
		var cols []pgrepl.Column
		var pk []int
		for _, f := range r.FieldDescriptions() {
			cols = append(cols, pgrepl.Column{Name: f.Name, TypeOID: f.DataTypeOID, TypeMod: f.TypeModifier, Key: pkNames[f.Name]})
			if pkNames[f.Name] {
				pk = append(pk, len(cols)-1)
			}
		}
		if err := w.st.lookupTypes(ctx, cols); err != nil {
			mrr.Close()
			return err
		}
		rel := w.st.newRelation(t.schema, t.name, cols, pk)
		for first := true; r.NextRow(); first = false {
			if err := w.release(ctx, false); err != nil {
				mrr.Close()
				return err
			}
			w.hold(rel, r.Values(), lsn, first)
		}
		if w.holding && w.held.rel == rel && w.held.snapshot == cdc.SnapshotTrue {
			w.held.snapshot = cdc.SnapshotLastInTable
		}
		if _, err := r.Close(); err != nil {
			mrr.Close()
			return fmt.Errorf("postgres: cdc: snapshot of %s.%s: %w", t.schema, t.name, err)
		}
	}
	if err := mrr.Close(); err != nil {
		return fmt.Errorf("postgres: cdc: snapshot of %s.%s: %w", t.schema, t.name, err)
	}
	return nil
}
